-- Adding an index without downtime: CONCURRENTLY builds it while reads and writes go on. It cannot
-- run in a transaction (see metadata.toml), so this file holds this one statement and nothing
-- else: a second statement would not be rolled back if this one failed.
-- (major, id) serves GET /students?major=...&after_id=... : equality on major, then keyset order.
-- If the build fails it leaves an INVALID index behind; `DROP INDEX CONCURRENTLY student_major_idx`
-- and run the migration again.
CREATE INDEX CONCURRENTLY student_major_idx ON student (major, id);
