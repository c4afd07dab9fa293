-- Expand: a nullable column without a default is a change to the catalog only, and the binaries
-- already serving never name it. Then a default for new rows only: set after the column exists,
-- it leaves the rows already there NULL (ADD COLUMN ... DEFAULT CURRENT_DATE would give them all
-- today's date), so the previous binary's inserts get a date while the backfill gives the old
-- rows theirs (created_at::date).
ALTER TABLE student ADD COLUMN enrolled_on date;
ALTER TABLE student ALTER COLUMN enrolled_on SET DEFAULT CURRENT_DATE;
