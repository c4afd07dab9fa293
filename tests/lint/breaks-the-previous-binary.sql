-- What scripts/lint-migrations.sh must refuse in an up.sql: each step breaks the binary that is
-- still serving while the migration runs (it reads or writes the old shape).
SET LOCAL lock_timeout = '5s';

ALTER TABLE student RENAME COLUMN major TO field_of_study;

ALTER TABLE student ALTER COLUMN first_name TYPE varchar(50);

ALTER TABLE student DROP COLUMN last_name;

ALTER TABLE student ADD COLUMN email text NOT NULL;

ALTER TABLE student ALTER COLUMN major SET NOT NULL;
