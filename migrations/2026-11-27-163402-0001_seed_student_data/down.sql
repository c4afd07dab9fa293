-- By name, never by id or wholesale: ids differ between databases, and rows added since the seed
-- belong to someone else.
SET LOCAL lock_timeout = '5s';

DELETE FROM student
WHERE (first_name, last_name) IN (
    ('Alice', 'Johnson'),
    ('Bob', 'Smith'),
    ('Carol', 'Williams'),
    ('David', 'Brown'),
    ('Eva', 'Davis')
);
