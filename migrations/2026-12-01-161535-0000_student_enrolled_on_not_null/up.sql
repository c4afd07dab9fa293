-- Contract, step 3 of 3 (post-deploy): the column itself NOT NULL. PostgreSQL 12 and later take
-- the validated CHECK as proof and skip the scan, so the ACCESS EXCLUSIVE lock is brief; the CHECK
-- then says nothing more and goes.
-- contract: every binary since 2026-12-01-161529-0000_add_student_enrolled_on writes a date
-- squawk-ignore adding-not-nullable-field
ALTER TABLE student ALTER COLUMN enrolled_on SET NOT NULL;
-- squawk-ignore ban-drop-constraint
ALTER TABLE student DROP CONSTRAINT student_enrolled_on_not_null;
