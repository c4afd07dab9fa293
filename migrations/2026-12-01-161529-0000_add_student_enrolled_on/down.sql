-- Reverting the expand step breaks every binary that reads `enrolled_on`: revert only once no
-- replica of such a binary serves (README, "Changing the schema under a running fleet").
ALTER TABLE student DROP COLUMN enrolled_on;
