SET LOCAL lock_timeout = '5s';

-- PostgreSQL cannot mark a validated constraint NOT VALID again, so put back what step 1 left.
ALTER TABLE student
    DROP CONSTRAINT student_email_check,
    ADD CONSTRAINT student_email_check CHECK (char_length(email) <= 254 AND email ~ '^[^@\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{1,64}@[^@\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+\.[^@\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$') NOT VALID;
