-- One batch of the backfill (batched: see metadata.toml): the date each student was created, for
-- at most 2,000 rows still without one. The service runs it again, each time in a transaction of
-- its own, until a run changes no row. A request that writes a row of the batch in progress waits
-- for its commit: under load a batch of 5,000 took about 340 ms, so 2,000 keeps that wait short.
-- - The sub-select reads the previous migration's partial index, so every batch costs the same.
-- - `= ANY (ARRAY(...))` rather than `IN (...)`: the planner then fetches the 2,000 rows by primary
--   key; with IN it may hash-join against a scan of the whole table, once per batch.
-- - The day in UTC whatever the session's TimeZone, as the binary answers it for a row not
--   reached yet.
UPDATE student SET enrolled_on = (created_at AT TIME ZONE 'UTC')::date
WHERE id = ANY (ARRAY(SELECT id FROM student WHERE enrolled_on IS NULL ORDER BY id LIMIT 2000));
