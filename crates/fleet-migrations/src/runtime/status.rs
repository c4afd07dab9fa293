//! What `migrate status` and `verify` report of each migration.

use chrono::NaiveDateTime;

use super::readiness;

/// One migration as `migrate status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: String,
    /// `None` when the migration is applied but not in this binary.
    pub name: Option<&'static str>,
    /// A post-deploy migration of this binary.
    pub post_deploy: bool,
    pub applied_on: Option<NaiveDateTime>,
    pub checksum: Checksum,
    /// Pending, though this newer migration (its label) is applied.
    pub out_of_order: Option<String>,
    /// The command that steers the migrations, for the problem's advice.
    pub program: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// Pending: nothing to compare yet.
    NotApplied,
    /// Matches what was recorded when it was applied.
    Verified,
    /// Applied without a record (before checksums were kept, or by the diesel CLI): the next
    /// `migrate run` or start records the current files.
    Unrecorded,
    /// Applied, but these of its files in the binary differ from those it was applied with.
    Changed(Vec<&'static str>),
    /// Applied in the database, absent from this binary.
    MissingFromBinary {
        /// Its folder's name, when the binary that applied it recorded one.
        folder: Option<String>,
        /// This binary's newest migration, when the missing one is newer still: the binary is
        /// older than the database. `None`: its folder was deleted, or came from another branch.
        binary_newest: Option<&'static str>,
    },
}

impl MigrationStatus {
    /// The migration's folder name, or its version when neither the binary nor the database
    /// knows the name.
    pub fn label(&self) -> &str {
        match (&self.name, &self.checksum) {
            (Some(name), _) => name,
            (
                None,
                Checksum::MissingFromBinary {
                    folder: Some(folder),
                    ..
                },
            ) => folder,
            _ => &self.version,
        }
    }

    /// What makes this migration and the binary disagree, and what to do about it, if anything.
    pub fn problem(&self) -> Option<String> {
        if let Some(newest) = &self.out_of_order {
            return Some(readiness::out_of_order(self.label(), newest, self.program));
        }
        let applied_on = self.applied_on?.format("%Y-%m-%d %H:%M:%S");
        let label = self.label();
        match &self.checksum {
            Checksum::Changed(files) => Some(format!(
                "migration {label} was applied on {applied_on} but its {} changed since. An \
                 applied migration must not be edited: restore migrations/{label} as it was \
                 and put the change in a new migration",
                files.join(" and ")
            )),
            Checksum::MissingFromBinary {
                binary_newest: Some(newest),
                ..
            } => Some(format!(
                "migration {label} was applied on {applied_on} by a newer build, and this \
                 binary (whose newest migration is {newest}) does not have it. Deploy that \
                 build or a later one, or first revert the migration with it: \
                 `{} migrate revert --to {newest}`",
                self.program
            )),
            Checksum::MissingFromBinary { .. } => Some(format!(
                "migration {label} was applied on {applied_on} but this binary does not have \
                 it, though it has migrations newer than it: its folder was deleted, or came \
                 from another branch. Restore migrations/{label}, or revert it with the build \
                 that has it"
            )),
            _ => None,
        }
    }
}
