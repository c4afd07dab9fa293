-- squawk-ignore-file require-lock-timeout
-- (See up.sql: no SET LOCAL outside a transaction, and this lock blocks no reads or writes.)
DROP INDEX CONCURRENTLY IF EXISTS student_enrolled_on_missing_idx;
