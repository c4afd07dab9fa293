//! The migrations of `migrations/`, compiled into the binary, as a diesel `MigrationSource`.
//!
//! diesel_migrations' `embed_migrations!` keeps each migration's SQL private, and the checksums and
//! `migrate sql` need that text. So `build.rs` embeds the migrations, once, and this hands them to
//! diesel's harness; each runs as diesel's embedded ones do: `batch_execute` of its `up.sql`, in a
//! transaction unless its `metadata.toml` says otherwise.

use std::fmt;

use diesel::connection::BoxableConnection;
use diesel::migration::MigrationVersion;
use diesel::migration::{self, Migration, MigrationMetadata, MigrationName, MigrationSource};
use diesel::pg::Pg;
use diesel_migrations::MigrationError;
use sha2::{Digest, Sha256};

use super::drift::SchemaColumn;

/// One migration, as compiled in from its folder.
#[derive(Debug, Clone)]
pub struct EmbeddedMigration {
    /// The folder name, e.g. `2026-11-27-163402-0000_create_student`.
    pub name: &'static str,
    pub up: &'static str,
    pub down: Option<&'static str>,
    pub run_in_transaction: bool,
    /// A contract step (`post_deploy = true` in its metadata.toml), applied once every replica
    /// runs a binary that has it. The binary that ships it serves without it: `/ready` does not
    /// wait for it, and `migrate run --skip-post-deploy` leaves it (and what follows) pending.
    pub post_deploy: bool,
    /// A batched data migration (`batched = true` in its metadata.toml): `up.sql` changes at most
    /// one batch of rows, and is run again, each time in a transaction of its own, until a run
    /// changes none (`Harness` in harness.rs).
    pub batch: Option<Batch>,
}

/// What a batched migration's metadata.toml says besides `batched = true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// `remaining_rows`: a query of one `bigint`, the rows still to change, read once before the
    /// first batch, so that the progress log can say how long is left.
    pub remaining_rows: Option<&'static str>,
    /// `key_range` and `batch_size`: batches walk the key from its lowest to its highest value
    /// when the migration starts, rather than run until one changes no row.
    pub key_range: Option<KeyRange>,
}

/// A batched migration that walks its table's key: the range is read once, before the first
/// batch, so the migration covers the rows that existed when it started and always ends, however
/// many matching rows writers add meanwhile (those are the triggers' and defaults' job). Each
/// batch sees its slice of the key in two settings, [`KeyRange::START`] (inclusive) and
/// [`KeyRange::END`] (exclusive), and changes at most `batch_size` rows of a unique integer key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange {
    /// A query of two `bigint`s, the lowest and the highest key (`SELECT min(id), max(id) FROM
    /// student`); `NULL`s when the table is empty, and then no batch runs.
    pub query: &'static str,
    pub batch_size: u64,
}

impl KeyRange {
    /// The setting that holds the first key of the batch running.
    pub const START: &'static str = "fleet_migrations.batch_start";
    /// The setting that holds the key after the last one of the batch running.
    pub const END: &'static str = "fleet_migrations.batch_end";
    /// `batch_size` when metadata.toml does not say (pgroll's and Reshape's batch).
    pub const DEFAULT_BATCH_SIZE: u64 = 1000;
}

/// A service's migrations, in version order, with what identifies the service to the engine.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// Every migration, oldest first: what [`crate::build`] embeds.
    pub list: &'static [EmbeddedMigration],
    /// Every column of the service's `schema.rs` (also embedded by [`crate::build`]): the live
    /// schema must have them for the service to be ready.
    pub schema: &'static [SchemaColumn],
    /// The advisory lock every process migrating this service's database takes. Advisory locks
    /// are per database, so services on other databases of the same server never contend; two
    /// services sharing a database need different keys.
    pub lock_key: i64,
    /// The command a person runs to steer the migrations (`students-api`), named in messages
    /// that say what to run (`... migrate run --to VERSION`).
    pub program: &'static str,
}

impl EmbeddedMigration {
    /// diesel's version of the folder: the part before the first `_`, without dashes.
    pub fn version(&self) -> String {
        self.name
            .split('_')
            .next()
            .unwrap_or_default()
            .replace('-', "")
    }

    /// SHA-256 of `up.sql` as lowercase hex.
    pub fn up_sha256(&self) -> String {
        sha256(self.up)
    }

    /// SHA-256 of `down.sql`; a missing one hashes as empty.
    pub fn down_sha256(&self) -> String {
        sha256(self.down.unwrap_or(""))
    }
}

fn sha256(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Migrations {
    pub const fn new(
        list: &'static [EmbeddedMigration],
        schema: &'static [SchemaColumn],
        lock_key: i64,
        program: &'static str,
    ) -> Self {
        Migrations {
            list,
            schema,
            lock_key,
            program,
        }
    }

    /// The migration a user's VERSION names: a version (`202611271634020000`), a folder prefix
    /// (`2026-11-27-163402-0000`) or a whole folder name.
    pub fn find(&self, spec: &str) -> Option<&'static EmbeddedMigration> {
        let prefix = |migration: &EmbeddedMigration| migration.name.split('_').next() == Some(spec);
        (self.list.iter()).find(|migration| {
            migration.version() == spec || migration.name == spec || prefix(migration)
        })
    }
}

/// The migration folders of `dir` as the build embeds them, read at run time: for checking a
/// chain just written, and for tests. The text is leaked, as embedded text is `'static`.
pub fn read_dir(dir: &std::path::Path) -> Result<&'static [EmbeddedMigration], String> {
    let failed = |err: &dyn fmt::Display| format!("{}: {err}", dir.display());
    let mut folders: Vec<_> = (std::fs::read_dir(dir).map_err(|err| failed(&err))?)
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.join("up.sql").is_file())
        .collect();
    folders.sort();
    let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
    let mut list = Vec::new();
    for folder in folders {
        let read = |file: &str| std::fs::read_to_string(folder.join(file)).ok();
        let metadata: toml::Table = match read("metadata.toml") {
            Some(text) => text.parse().map_err(|err| failed(&err))?,
            None => toml::Table::new(),
        };
        let flag = |key: &str| metadata.get(key).and_then(toml::Value::as_bool);
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
        };
        let key_range = text("key_range").map(|query| KeyRange {
            query: leak(query),
            batch_size: (metadata.get("batch_size").and_then(toml::Value::as_integer))
                .map_or(KeyRange::DEFAULT_BATCH_SIZE, |size| size.max(1) as u64),
        });
        let name = folder.file_name().unwrap_or_default().to_string_lossy();
        list.push(EmbeddedMigration {
            name: leak(name.into_owned()),
            up: leak(read("up.sql").unwrap_or_default()),
            down: read("down.sql").map(leak),
            run_in_transaction: flag("run_in_transaction").unwrap_or(true),
            post_deploy: flag("post_deploy").unwrap_or(false),
            batch: flag("batched").unwrap_or(false).then(|| Batch {
                remaining_rows: text("remaining_rows").map(leak),
                key_range,
            }),
        });
    }
    Ok(Box::leak(list.into_boxed_slice()))
}

impl MigrationSource<Pg> for Migrations {
    fn migrations(&self) -> migration::Result<Vec<Box<dyn Migration<Pg>>>> {
        Ok(self
            .list
            .iter()
            .map(|migration| Box::new(migration) as _)
            .collect())
    }
}

impl Migration<Pg> for &'static EmbeddedMigration {
    fn run(&self, conn: &mut dyn BoxableConnection<Pg>) -> migration::Result<()> {
        Ok(conn.batch_execute(self.up)?)
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<Pg>) -> migration::Result<()> {
        let down = self.down.ok_or(MigrationError::NoMigrationRevertFile)?;
        Ok(conn.batch_execute(down)?)
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        *self
    }

    fn name(&self) -> &dyn MigrationName {
        *self
    }
}

impl MigrationMetadata for EmbeddedMigration {
    fn run_in_transaction(&self) -> bool {
        self.run_in_transaction
    }
}

impl MigrationName for EmbeddedMigration {
    fn version(&self) -> MigrationVersion<'_> {
        EmbeddedMigration::version(self).into()
    }
}

impl fmt::Display for EmbeddedMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}
