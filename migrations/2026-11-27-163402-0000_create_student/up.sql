-- The table the service serves. Diesel runs this file in a transaction; on a live database a
-- blocked DDL statement must give up quickly rather than queue every query behind it.
SET LOCAL lock_timeout = '5s';

CREATE TABLE student (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_name text NOT NULL,
    last_name text NOT NULL,
    major text NOT NULL
);
