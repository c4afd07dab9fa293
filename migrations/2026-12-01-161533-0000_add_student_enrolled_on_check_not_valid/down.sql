ALTER TABLE student DROP CONSTRAINT student_enrolled_on_not_null;
