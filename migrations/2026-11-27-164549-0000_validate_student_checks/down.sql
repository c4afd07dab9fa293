-- PostgreSQL cannot mark a validated constraint NOT VALID again, so put back exactly what step 1
-- left: the same constraints, not validated.
SET LOCAL lock_timeout = '5s';

ALTER TABLE student
    DROP CONSTRAINT student_major_check,
    DROP CONSTRAINT student_last_name_check,
    DROP CONSTRAINT student_first_name_check,
    ADD CONSTRAINT student_first_name_check CHECK (char_length(first_name) <= 100 AND first_name ~ '^[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](.*[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$') NOT VALID,
    ADD CONSTRAINT student_last_name_check CHECK (char_length(last_name) <= 100 AND last_name ~ '^[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](.*[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$') NOT VALID,
    ADD CONSTRAINT student_major_check CHECK (char_length(major) <= 100 AND major ~ '^[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](.*[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$') NOT VALID;
