-- A marked contract step in a migration without `post_deploy = true` (no metadata.toml at all):
-- scripts/lint-migrations.sh must refuse it, since `migrate run --skip-post-deploy` would apply
-- it before the rollout, while the binary it breaks still serves.
SET LOCAL lock_timeout = '5s';

-- contract: no binary since 2026-12-01-000000-0000_add_student_email reads last_name
-- squawk-ignore ban-drop-column
ALTER TABLE student DROP COLUMN last_name;
