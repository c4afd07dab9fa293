SET LOCAL lock_timeout = '5s';

ALTER TABLE student DROP CONSTRAINT student_email_check;
