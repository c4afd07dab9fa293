-- Contract, step 2 of 3 (post-deploy): check the rows written before step 1 under SHARE UPDATE
-- EXCLUSIVE, so reads and writes go on during the scan.
ALTER TABLE student VALIDATE CONSTRAINT student_enrolled_on_not_null;
