-- Every token goes with the table: a binary that requires tokens then refuses every write, so
-- revert only once no replica of such a binary serves.
DROP TABLE api_token;
