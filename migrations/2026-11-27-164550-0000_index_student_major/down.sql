DROP INDEX CONCURRENTLY student_major_idx;
