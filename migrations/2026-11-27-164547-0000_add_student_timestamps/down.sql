SET LOCAL lock_timeout = '5s';

DROP TRIGGER set_updated_at ON student;

ALTER TABLE student
    DROP COLUMN updated_at,
    DROP COLUMN created_at;
