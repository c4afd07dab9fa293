-- Adding a column: when each student was created and last changed.
-- A default of now() is not volatile, so PostgreSQL (11+) records it in the catalog instead of
-- rewriting the table: existing rows get the migration's time and the lock is brief.
SET LOCAL lock_timeout = '5s';

ALTER TABLE student
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- The trigger from the initial setup migration keeps updated_at current on every change.
SELECT diesel_manage_updated_at('student');
