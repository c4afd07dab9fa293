-- Adding a constraint, step 2 of 2: check the rows that existed before step 1. VALIDATE takes
-- only a SHARE UPDATE EXCLUSIVE lock, so reads and writes continue while the table is scanned.
-- It is a migration of its own because diesel runs each migration in one transaction: in the
-- same transaction as step 1, step 1's ACCESS EXCLUSIVE lock would be held through the scan.
SET LOCAL lock_timeout = '5s';

ALTER TABLE student VALIDATE CONSTRAINT student_first_name_check;
ALTER TABLE student VALIDATE CONSTRAINT student_last_name_check;
ALTER TABLE student VALIDATE CONSTRAINT student_major_check;
