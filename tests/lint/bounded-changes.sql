-- Accepted: one batch of at most 1,000 rows, as a batched migration's up.sql.
UPDATE student SET major = upper(major)
WHERE id IN (SELECT id FROM student WHERE major <> upper(major) ORDER BY id LIMIT 1000);

-- Accepted: rows named by value.
DELETE FROM student WHERE (first_name, last_name) IN (('Alice', 'Johnson'), ('Bob', 'Smith'));
UPDATE student SET major = 'Mathematics' WHERE id = 3;

-- Accepted: one slice of the key, as a batched migration with a key_range runs it.
UPDATE student SET major = upper(major)
WHERE id >= current_setting('fleet_migrations.batch_start')::bigint
  AND id < current_setting('fleet_migrations.batch_end')::bigint
  AND major <> upper(major);
