-- A contract step, as scripts/lint-migrations.sh accepts one: the rule it breaks is named in an
-- ignore comment for squawk, with a `-- contract:` line above it saying why no binary that may
-- still be serving needs what it removes.
SET LOCAL lock_timeout = '5s';

-- contract: no binary since 2026-12-01-000000-0000_add_student_email reads last_name
-- squawk-ignore ban-drop-column
ALTER TABLE student DROP COLUMN last_name;
