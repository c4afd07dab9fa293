SET LOCAL lock_timeout = '5s';

-- Contract, step 1 of 2 (post-deploy, see metadata.toml): the format the service enforces on
-- `email`, now enforced for every writer. It runs once every replica validates the same rule, so
-- no replica ever has a write it accepted refused by the database. NOT VALID checks new and
-- updated rows only and holds its ACCESS EXCLUSIVE lock just long enough to record the constraint;
-- the next migration checks the rows already there.
--
-- The rule (src/students/input.rs, Email): at most 254 characters; no whitespace (the set Rust's
-- str::trim removes); one @; 1 to 64 characters before it; after it, a dot with at least one
-- character on each side. NULL, no email, passes, as CHECK constraints let NULL pass.
ALTER TABLE student
    ADD CONSTRAINT student_email_check CHECK (char_length(email) <= 254 AND email ~ '^[^@\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{1,64}@[^@\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+\.[^@\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$') NOT VALID;
