-- Contract, step 1 of 3 (post-deploy): no row without a date from now on. NOT VALID checks new and
-- updated rows only, and holds its ACCESS EXCLUSIVE lock just long enough to record the
-- constraint; the next migration checks the rows already there.
ALTER TABLE student
    ADD CONSTRAINT student_enrolled_on_not_null CHECK (enrolled_on IS NOT NULL) NOT VALID;
