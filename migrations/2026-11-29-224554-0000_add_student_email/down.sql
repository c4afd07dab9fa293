SET LOCAL lock_timeout = '5s';

-- Reverting the expand step breaks every binary that reads `email`: revert only once no
-- replica of such a binary serves (README, "Changing the schema under a running fleet").
ALTER TABLE student DROP COLUMN email;
