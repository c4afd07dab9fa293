-- squawk-ignore-file require-lock-timeout
-- (As in the index's own migration: CONCURRENTLY runs outside a transaction and its lock blocks
-- no reads or writes.)
-- The backfill is done, so the index of rows without a date is empty and only costs writes.
DROP INDEX CONCURRENTLY IF EXISTS student_enrolled_on_missing_idx;
