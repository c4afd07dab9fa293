SET LOCAL lock_timeout = '5s';

-- Expand: a nullable column without a default is a change to the catalog only (no table rewrite,
-- the ACCESS EXCLUSIVE lock is held for milliseconds), and the binaries already serving never
-- name it: they select, insert and update their own columns by name, so they go on working while
-- the binary that reads and writes `email` rolls out. Its format rule comes later, in the two
-- post-deploy migrations after this one.
ALTER TABLE student ADD COLUMN email text;
