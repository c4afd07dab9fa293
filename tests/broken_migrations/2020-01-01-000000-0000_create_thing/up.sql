CREATE TABLE thing (id integer PRIMARY KEY);
