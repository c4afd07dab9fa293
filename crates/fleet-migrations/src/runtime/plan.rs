//! What runs, decided by diesel: its `pending_migrations`, `run_next_migration` and
//! `revert_last_migration`, called on a [`MigrationHarness`] (the real [`super::harness::Harness`]
//! or the SQL-printing [`super::script::Script`]) until the target is reached.

use diesel::migration::{Migration, MigrationVersion};
use diesel::pg::Pg;
use diesel_migrations::MigrationHarness;

use super::error::MigrateError;
use super::source::{EmbeddedMigration, Migrations};
use super::targets::{ApplyTarget, PostDeploy, RevertTarget};

fn find(set: Migrations, spec: &str) -> Result<&'static EmbeddedMigration, MigrateError> {
    set.find(spec)
        .ok_or_else(|| MigrateError::UnknownVersion(spec.to_owned()))
}

/// The migration diesel hands a harness, as this binary embeds it.
pub(super) fn embedded(
    set: Migrations,
    migration: &dyn Migration<Pg>,
) -> Result<&'static EmbeddedMigration, MigrateError> {
    find(set, &migration.name().version().to_string())
}

/// Applies pending migrations of `set`, oldest first, all of them or through the target; with
/// `PostDeploy::Skip`, stops before the first post-deploy one, as diesel applies in order.
pub fn apply<H: MigrationHarness<Pg>>(
    harness: &mut H,
    set: Migrations,
    target: &ApplyTarget,
    post_deploy: PostDeploy,
) -> Result<Vec<&'static str>, MigrateError> {
    let last = match target {
        ApplyTarget::All => None,
        ApplyTarget::Through(spec) => Some(find(set, spec)?),
    };
    let mut targeted: Vec<&'static EmbeddedMigration> = (harness.pending_migrations(set))
        .map_err(MigrateError::Database)?
        .iter()
        .map(|migration| embedded(set, migration.as_ref()))
        .collect::<Result<_, _>>()?;
    // A database with nothing applied has no replica serving it, so no release for an earlier
    // release's contract steps to wait for: a first install applies them on its way to the
    // migrations the binary needs.
    let fresh = targeted.len() == set.list.len();
    if let Some(last) = last {
        targeted.retain(|migration| migration.version() <= last.version());
    }
    let mut applied = Vec::new();
    for (at, migration) in targeted.iter().enumerate() {
        if post_deploy == PostDeploy::Skip && migration.post_deploy {
            // Stopping here is the point, unless a migration this binary needs is behind it:
            // the rollout would then wait on /ready for good, so say why now.
            let behind = &targeted[at..];
            match behind.iter().find(|m| !m.post_deploy) {
                Some(_) if fresh => {}
                Some(needed) if last.is_none() => {
                    return Err(MigrateError::PostDeployFirst {
                        program: set.program,
                        needed: needed.name,
                        blocking: (behind.iter().take_while(|m| m.post_deploy))
                            .map(|m| m.name)
                            .collect(),
                    });
                }
                _ => break,
            }
        }
        if let Err(source) = harness.run_next_migration(set) {
            return Err(MigrateError::Failed {
                name: migration.name,
                transactional: migration.run_in_transaction,
                source,
            });
        }
        applied.push(migration.name);
    }
    Ok(applied)
}

/// Reverts applied migrations, newest first, as `target` says.
pub fn revert<H: MigrationHarness<Pg>>(
    harness: &mut H,
    set: Migrations,
    target: &RevertTarget,
) -> Result<Vec<&'static str>, MigrateError> {
    let applied = harness
        .applied_migrations()
        .map_err(MigrateError::Database)?;
    let count = match target {
        RevertTarget::Last(n) => *n,
        RevertTarget::All => applied.len(),
        RevertTarget::To(spec) => {
            let keep = find(set, spec)?;
            let version = MigrationVersion::from(keep.version());
            if !applied.contains(&version) {
                return Err(MigrateError::NotApplied(keep.name));
            }
            (applied.iter())
                .take_while(|applied| **applied > version)
                .count()
        }
    };
    let mut reverted = Vec::new();
    for newest in applied.iter().take(count) {
        let name = find(set, &newest.to_string())?.name;
        if let Err(source) = harness.revert_last_migration(set) {
            return Err(MigrateError::RevertFailed { name, source });
        }
        reverted.push(name);
    }
    Ok(reverted)
}
