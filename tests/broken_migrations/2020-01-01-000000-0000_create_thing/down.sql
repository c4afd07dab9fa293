DROP TABLE thing;
