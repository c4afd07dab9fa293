-- Accepted in a down.sql: the undoing of a contract step puts back the column it dropped.
ALTER TABLE student ADD COLUMN major text;
-- restore: the values of major, from programme
UPDATE student SET major = programme;
