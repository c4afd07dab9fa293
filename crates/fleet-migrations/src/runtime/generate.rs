//! `migrate new <operation>`: the chain of diesel migration folders for one schema change that a
//! fleet can apply while old and new binaries serve together. Each folder is plain SQL in
//! diesel's layout (`up.sql`, `down.sql`, `metadata.toml`), for `diesel migration run` and a
//! reviewer alike: expand steps before the rollout, a backfill by key range where rows must be
//! filled, and the contract steps, post-deploy, after it. Renames and type changes go through a
//! new column kept in step with the old one by a trigger both ways, as pgroll does.
//!
//! The generator reads the live schema (the development database `DATABASE_URL` names, with
//! every migration applied) for what a change must carry over: a column's type, default and
//! `NOT NULL`, its checks and indexes, and the table's key.

mod catalog;
mod chains;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use diesel::prelude::*;

pub use catalog::{Column, Table};
pub use chains::{Chain, Conversion, Step};

use super::{KeyRange, applied};

#[derive(Debug, Args)]
pub struct NewArgs {
    #[command(subcommand)]
    pub operation: Operation,
    /// The folder of migrations to write to.
    #[arg(long, global = true, default_value = "migrations")]
    pub dir: PathBuf,
    /// Keys per batch of a backfill.
    #[arg(long, global = true, default_value_t = KeyRange::DEFAULT_BATCH_SIZE)]
    pub batch_size: u64,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Operation {
    /// A column: nullable; with --default; or --not-null, filled for the rows there by --backfill.
    AddColumn {
        table: String,
        column: String,
        /// Its SQL type, as in CREATE TABLE (`text`, `date`, `numeric(10,2)`).
        sql_type: String,
        #[arg(long, value_name = "EXPR")]
        default: Option<String>,
        #[arg(long)]
        not_null: bool,
        /// For a NOT NULL column without a default: its value for each row there, and for rows
        /// the previous binary inserts, as an expression of the row's columns.
        #[arg(long, value_name = "EXPR")]
        backfill: Option<String>,
    },
    /// An index, built concurrently before the rollout.
    AddIndex {
        table: String,
        #[arg(required = true)]
        columns: Vec<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// A unique index, built concurrently after the rollout.
    AddUnique {
        table: String,
        #[arg(required = true)]
        columns: Vec<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// A foreign key, added NOT VALID then validated, after the rollout.
    AddForeignKey {
        table: String,
        column: String,
        /// The table it refers to, and its column if not `id`: `teacher` or `teacher(id)`.
        #[arg(long, value_name = "TABLE[(COLUMN)]")]
        references: String,
        /// `CASCADE`, `SET NULL`, `RESTRICT`...
        #[arg(long, value_name = "ACTION")]
        on_delete: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// A CHECK constraint, added NOT VALID then validated, after the rollout.
    AddCheck {
        table: String,
        name: String,
        expression: String,
    },
    /// NOT NULL on a column, through a validated CHECK, after the rollout; --backfill fills the
    /// rows that have none first.
    SetNotNull {
        table: String,
        column: String,
        #[arg(long, value_name = "EXPR")]
        backfill: Option<String>,
    },
    /// A new name for a column: the new column kept in step with the old one by a trigger while
    /// binaries of both names serve, then the old one dropped after the rollout.
    RenameColumn {
        table: String,
        column: String,
        new_name: String,
    },
    /// A new type for a column, through a shadow column named --as, converted each way by
    /// --using and --back while binaries of both types serve.
    ChangeType {
        table: String,
        column: String,
        sql_type: String,
        /// The new column's name: the binary that reads the new type reads it.
        #[arg(long = "as", value_name = "NAME")]
        new_name: String,
        /// The new value from the old column's (`price_cents / 100.0`).
        #[arg(long, value_name = "EXPR")]
        using: String,
        /// The old value from the new column's (`(price * 100)::int`).
        #[arg(long, value_name = "EXPR")]
        back: String,
    },
    /// A column dropped after the rollout, once no binary reads it.
    DropColumn {
        table: String,
        column: String,
        /// For a NOT NULL column without a default: what rows inserted by the binary that no
        /// longer writes it get until it goes.
        #[arg(long, value_name = "EXPR")]
        default: Option<String>,
    },
}

/// Why no chain was written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "{0:?} is not a plain SQL identifier (lower case letters, digits and `_`, at most 63 \
         bytes): the generator writes names unquoted"
    )]
    Identifier(String),
    #[error("no table {0} in the database")]
    NoTable(String),
    #[error("no column {column} in table {table}")]
    NoColumn { table: String, column: String },
    #[error(
        "{operation} fills rows batch by batch along the table's key, and {table} has no primary \
         key of one integer column"
    )]
    NoKey { table: String, operation: String },
    #[error(
        "{column} cannot be carried over: it is part of {}; change those by hand",
        .blockers.join(", ")
    )]
    Blocked {
        column: String,
        blockers: Vec<String>,
    },
    #[error(
        "the database lacks migrations of the folder ({0}): apply them first (`migrate run`, or \
         `diesel migration run`), so that the generator reads the schema they make"
    )]
    Pending(String),
    #[error("the chain written breaks the migration rules: {}", .0.join("; "))]
    Rules(Vec<String>),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// `name` when it can be written unquoted, as every name the generator writes is.
pub fn ident(name: &str) -> Result<String, GenerateError> {
    let plain = (name.bytes().next()).is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.len() <= 63;
    match plain {
        true => Ok(name.to_owned()),
        false => Err(GenerateError::Identifier(name.to_owned())),
    }
}

/// The chain for `operation`, read against the schema `conn` sees.
pub fn chain(
    conn: &mut PgConnection,
    operation: &Operation,
    batch_size: u64,
) -> Result<Chain, GenerateError> {
    let table = |conn: &mut PgConnection, name: &str| catalog::table(conn, &ident(name)?);
    match operation {
        Operation::AddColumn {
            table: t,
            column,
            sql_type,
            default,
            not_null,
            backfill,
        } => chains::add_column(
            &table(conn, t)?,
            column,
            sql_type,
            default,
            *not_null,
            backfill,
            batch_size,
        ),
        Operation::AddIndex {
            table: t,
            columns,
            name,
        } => chains::add_index(&table(conn, t)?, columns, name),
        Operation::AddUnique {
            table: t,
            columns,
            name,
        } => chains::add_unique(&table(conn, t)?, columns, name),
        Operation::AddForeignKey {
            table: t,
            column,
            references,
            on_delete,
            name,
        } => chains::add_foreign_key(&table(conn, t)?, column, references, on_delete, name),
        Operation::AddCheck {
            table: t,
            name,
            expression,
        } => chains::add_check(&table(conn, t)?, name, expression),
        Operation::SetNotNull {
            table: t,
            column,
            backfill,
        } => {
            let table = table(conn, t)?;
            let column = catalog::column(conn, &table, &ident(column)?)?;
            chains::set_not_null(&table, &column, backfill, batch_size)
        }
        Operation::RenameColumn {
            table: t,
            column,
            new_name,
        } => {
            let table = table(conn, t)?;
            let old = catalog::column(conn, &table, &ident(column)?)?;
            let conversion = Conversion {
                new_type: &old.sql_type.clone(),
                using: None,
                back: None,
            };
            chains::shadow(&table, &old, new_name, conversion, batch_size)
        }
        Operation::ChangeType {
            table: t,
            column,
            sql_type,
            new_name,
            using,
            back,
        } => {
            let table = table(conn, t)?;
            let old = catalog::column(conn, &table, &ident(column)?)?;
            let conversion = Conversion {
                new_type: sql_type,
                using: Some(using),
                back: Some(back),
            };
            chains::shadow(&table, &old, new_name, conversion, batch_size)
        }
        Operation::DropColumn {
            table: t,
            column,
            default,
        } => {
            let table = table(conn, t)?;
            let column = catalog::column(conn, &table, &ident(column)?)?;
            chains::drop_column(&table, &column, default)
        }
    }
}

/// Writes the chain `operation` makes into `args.dir`, one folder a step with timestamps after
/// every folder there and after now; returns the folders written and what the service's code
/// must do. Refuses when the database lacks a migration of the folder: the schema read would
/// not be the one the chain follows.
pub fn new(
    conn: &mut PgConnection,
    args: &NewArgs,
    command: &str,
) -> Result<(Vec<PathBuf>, Vec<String>), GenerateError> {
    let on_disk = folders(&args.dir)?;
    let applied: Vec<String> = applied(conn)?
        .into_iter()
        .map(|(version, _)| version)
        .collect();
    let version = |name: &str| name.split('_').next().unwrap_or_default().replace('-', "");
    let pending: Vec<&str> = (on_disk.iter())
        .filter(|name| !applied.contains(&version(name)))
        .map(String::as_str)
        .collect();
    if !pending.is_empty() {
        return Err(GenerateError::Pending(pending.join(", ")));
    }
    let chain = chain(conn, &args.operation, args.batch_size)?;
    let stamps = timestamps(on_disk.last().map(String::as_str), chain.steps.len());
    let mut written = Vec::new();
    let of = chain.steps.len();
    for (at, (step, stamp)) in chain.steps.iter().zip(stamps).enumerate() {
        let folder = args.dir.join(format!("{stamp}_{}", step.name));
        let heading = format!("`{command}`, step {} of {of}", at + 1);
        write(&folder, step, &heading, args.batch_size)?;
        written.push(folder);
    }
    // What was written keeps the rules the service's tests hold every migration to.
    let all = super::read_dir(&args.dir).map_err(GenerateError::Usage)?;
    let ours: Vec<_> = (all.iter())
        .filter(|migration| {
            written
                .iter()
                .any(|folder| folder.ends_with(migration.name))
        })
        .cloned()
        .collect();
    let ours = Box::leak(ours.into_boxed_slice());
    let problems = super::rules::contract_steps(&super::Migrations::new(ours, &[], 0, ""));
    if !problems.is_empty() {
        return Err(GenerateError::Rules(problems));
    }
    Ok((written, chain.advice))
}

/// The migration folders in `dir`, sorted.
fn folders(dir: &Path) -> Result<Vec<String>, GenerateError> {
    let failed = |source| GenerateError::Write {
        path: dir.display().to_string(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let path = entry.map_err(failed)?.path();
        if path.join("up.sql").is_file() {
            names.push(
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    names.sort();
    Ok(names)
}

/// `count` diesel timestamps a second apart, the first after `newest` (a folder name) and not
/// before now.
fn timestamps(newest: Option<&str>, count: usize) -> Vec<String> {
    const FORMAT: &str = "%Y-%m-%d-%H%M%S";
    let now = chrono::Utc::now().naive_utc();
    let after = (newest.and_then(|name| name.get(..17)))
        .and_then(|stamp| chrono::NaiveDateTime::parse_from_str(stamp, FORMAT).ok())
        .map(|newest| newest + chrono::Duration::seconds(1));
    let first = after.map_or(now, |after| after.max(now));
    (0..count)
        .map(|n| {
            let at = first + chrono::Duration::seconds(n as i64);
            format!("{}-0000", at.format(FORMAT))
        })
        .collect()
}

fn write(folder: &Path, step: &Step, heading: &str, batch_size: u64) -> Result<(), GenerateError> {
    let failed = |source| GenerateError::Write {
        path: folder.display().to_string(),
        source,
    };
    std::fs::create_dir_all(folder).map_err(failed)?;
    let mut metadata = format!("# Written by {heading}.\n");
    if step.post_deploy {
        metadata += "# Post-deploy: applied once no binary before the one that ships it serves.\n";
        metadata += "post_deploy = true\n";
    }
    let _ = writeln!(metadata, "run_in_transaction = {}", step.run_in_transaction);
    if let Some(range) = &step.key_range {
        metadata +=
            "# Batched by key: one transaction per slice of the key, up to the highest key\n";
        metadata += "# when the migration starts.\n";
        metadata += "batched = true\n";
        let _ = writeln!(metadata, "key_range = {range:?}");
        let _ = writeln!(metadata, "batch_size = {batch_size}");
    }
    for (file, text) in [
        ("up.sql", step.up.as_str()),
        ("down.sql", step.down.as_str()),
        ("metadata.toml", metadata.as_str()),
    ] {
        std::fs::write(folder.join(file), text).map_err(failed)?;
    }
    Ok(())
}
