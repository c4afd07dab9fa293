-- The five students every fresh database starts with. A data migration, so reverting it removes
-- exactly these rows and nothing that was added since.
SET LOCAL lock_timeout = '5s';

INSERT INTO student (first_name, last_name, major) VALUES
    ('Alice', 'Johnson', 'Computer Science'),
    ('Bob', 'Smith', 'Mathematics'),
    ('Carol', 'Williams', 'Physics'),
    ('David', 'Brown', 'Computer Science'),
    ('Eva', 'Davis', 'Biology');
