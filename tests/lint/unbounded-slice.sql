-- Refused: a slice with a start and no end changes every row after the start at once.
UPDATE student SET major = upper(major)
WHERE id >= current_setting('fleet_migrations.batch_start')::bigint
  AND major <> upper(major);
