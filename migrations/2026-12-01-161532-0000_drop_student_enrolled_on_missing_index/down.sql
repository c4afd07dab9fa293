-- squawk-ignore-file require-lock-timeout, prefer-robust-stmts
-- (See 2026-12-01-161530-0000_index_student_enrolled_on_missing/up.sql.)
CREATE INDEX CONCURRENTLY student_enrolled_on_missing_idx ON student (id) WHERE enrolled_on IS NULL;
