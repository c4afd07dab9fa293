-- The stored answers go with the table: a client retrying after the revert gets a second
-- student instead of its first answer, so revert only once no retry is pending.
DROP TABLE idempotency_key;
