-- Refused: a WHERE that may match the whole table, in one transaction.
DELETE FROM student WHERE email IS NULL;
