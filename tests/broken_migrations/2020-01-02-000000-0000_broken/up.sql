-- The first statement succeeds, the second fails: the first must not survive.
CREATE TABLE half_done (id integer PRIMARY KEY);
INSERT INTO no_such_table VALUES (1);
