-- Adding a constraint, step 1 of 2: the rules the service enforces on names and majors, now also
-- enforced for every other writer. NOT VALID makes PostgreSQL check new and updated rows only, so
-- this takes its ACCESS EXCLUSIVE lock just long enough to record the constraints. Existing rows
-- are checked by the next migration, under a lock that lets reads and writes go on.
--
-- The rule: trimmed (no leading or trailing whitespace, Unicode's White_Space set as Rust's
-- str::trim sees it), not empty, at most 100 characters.
SET LOCAL lock_timeout = '5s';

ALTER TABLE student
    ADD CONSTRAINT student_first_name_check CHECK (char_length(first_name) <= 100 AND first_name ~ '^[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](.*[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$') NOT VALID,
    ADD CONSTRAINT student_last_name_check CHECK (char_length(last_name) <= 100 AND last_name ~ '^[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](.*[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$') NOT VALID,
    ADD CONSTRAINT student_major_check CHECK (char_length(major) <= 100 AND major ~ '^[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](.*[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$') NOT VALID;
