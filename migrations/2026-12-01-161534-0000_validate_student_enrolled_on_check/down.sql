-- PostgreSQL cannot mark a validated constraint NOT VALID again, so put back what step 1 left.
ALTER TABLE student
    DROP CONSTRAINT student_enrolled_on_not_null,
    ADD CONSTRAINT student_enrolled_on_not_null CHECK (enrolled_on IS NOT NULL) NOT VALID;
