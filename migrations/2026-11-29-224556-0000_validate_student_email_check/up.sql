SET LOCAL lock_timeout = '5s';

-- Contract, step 2 of 2 (post-deploy): check the rows written before step 1. VALIDATE takes a
-- SHARE UPDATE EXCLUSIVE lock, so reads and writes go on during the scan; in its own migration
-- because diesel runs each in one transaction, which would keep step 1's lock through the scan.
ALTER TABLE student VALIDATE CONSTRAINT student_email_check;
