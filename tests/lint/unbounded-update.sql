-- Refused: every student's row locked until the whole UPDATE commits.
UPDATE student SET major = upper(major);
