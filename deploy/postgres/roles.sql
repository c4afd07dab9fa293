-- Least privilege for a migrating service (docs/migrations.md, "Least privilege"): the owner role owns the
-- schema and runs the migrations, over the direct URL (the migration Jobs, or
-- migrate_on_start); the app role only reads and writes rows, over the pooled URL, so a
-- compromised or buggy replica cannot change the schema or the migration history.
--
-- Run in psql, connected to the service's database as a superuser (or a role with CREATEROLE
-- that is a member of the owner), once the owner has applied the first migrations:
--
--   createuser --login --pwprompt students_owner
--   createuser --login --pwprompt students_app
--   createdb --owner students_owner students
--   DATABASE_URL=postgres://students_owner:...@db/students students-api migrate run
--   psql -d students -v owner=students_owner -v app=students_app -f deploy/postgres/roles.sql
--
-- (CONNECT on the database is PUBLIC's by default, and PostgreSQL 15 already grants PUBLIC no
-- CREATE on the public schema; the REVOKE keeps older servers to the same rule.)

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";

-- The rows of every table there now, and of those later migrations, run by the owner, create.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE ON SEQUENCES TO :"app";

-- The migration history: read by /ready and /metrics, written only by migrations.
REVOKE INSERT, UPDATE, DELETE ON __diesel_schema_migrations, __migration_checksums FROM :"app";
