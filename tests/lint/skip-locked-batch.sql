-- Refused: once every row left is locked by a request, a batch changes none, and the migration
-- would be recorded with rows still to change.
UPDATE student SET major = upper(major)
WHERE id IN (SELECT id FROM student WHERE major <> upper(major) LIMIT 1000 FOR UPDATE SKIP LOCKED);
