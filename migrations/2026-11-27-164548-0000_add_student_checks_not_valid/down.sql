SET LOCAL lock_timeout = '5s';

ALTER TABLE student
    DROP CONSTRAINT student_major_check,
    DROP CONSTRAINT student_last_name_check,
    DROP CONSTRAINT student_first_name_check;
