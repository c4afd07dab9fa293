//! The `migrate` subcommands, for a service's binary to offer where no diesel CLI is installed
//! (a container image, say): a clap `Subcommand` to nest under the binary's own command line, and
//! [`run`] to carry one out with a [`Migrator`].
//!
//! ```no_run
//! # use diesel_fleet_migrations::{Migrator, Migrations, Waits, cli::MigrateCommand};
//! # fn example(command: &MigrateCommand, url: &str, migrations: Migrations) -> Result<(), Box<dyn std::error::Error>> {
//! let mut migrator = Migrator::connect(url, migrations, Waits::default())?;
//! let status = diesel_fleet_migrations::cli::run(command, &mut migrator)?;
//! # Ok(()) }
//! ```

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::Migrator;
use super::error::MigrateError;
use super::generate::{self, NewArgs};
use super::readiness::Unready;
use super::status::{Checksum, MigrationStatus};
use super::targets::{ApplyTarget, Order, PostDeploy, RevertTarget};

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Every migration, applied or pending, with when it was applied and whether its checksum
    /// matches (Alembic's `history` and `current`). Exit status 1 when an applied migration was
    /// edited or is missing from this binary, or a pending one is out of order, as with
    /// `verify`; pending ones are not an error otherwise.
    Status,
    /// Apply pending migrations: all, or up to and including --to (Alembic's `upgrade`).
    Run {
        /// Last migration to apply: a version, a folder prefix or a folder name.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Stop before the first post-deploy migration (a contract step): what a fleet applies
        /// before it rolls out the binary; `migrate run` after the rollout applies the rest.
        #[arg(long)]
        skip_post_deploy: bool,
        /// Apply pending migrations older than the newest applied one, which is refused
        /// otherwise: only once you have checked that they do not depend on what came after.
        #[arg(long)]
        allow_out_of_order: bool,
    },
    /// Revert applied migrations, newest first (Alembic's `downgrade`); the last one by default.
    Revert(RevertArgs),
    /// Revert, then apply again, the last migration (or -n N, or --all).
    Redo(RedoArgs),
    /// Print the SQL `run` (or with --down, `revert`) would execute, without executing it.
    Sql {
        /// Stop at this migration: the last to apply, or with --down the one to revert down to.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// The SQL of reverting instead of applying.
        #[arg(long)]
        down: bool,
    },
    /// Check applied migrations against this binary, and the live schema against the one its
    /// queries were compiled against (src/schema.rs), saying what to do about each mismatch;
    /// exit status 1 on any.
    Verify,
    /// Write the chain of migration folders for one change that old and new binaries can serve
    /// through: expand steps, a backfill by key range, and post-deploy contract steps. Reads the
    /// live schema, so the database must have every migration applied.
    New(NewArgs),
}

#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct RevertArgs {
    /// Revert every migration applied after this one, which stays applied.
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,
    /// Revert the last N migrations.
    #[arg(short = 'n', value_name = "N")]
    number: Option<usize>,
    /// Revert every migration.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct RedoArgs {
    /// Redo the last N migrations.
    #[arg(short = 'n', value_name = "N")]
    number: Option<usize>,
    /// Redo every migration.
    #[arg(long)]
    all: bool,
}

impl MigrateCommand {
    fn apply_target(to: &Option<String>) -> ApplyTarget {
        to.clone().map_or(ApplyTarget::All, ApplyTarget::Through)
    }
}

impl RevertArgs {
    fn target(&self) -> RevertTarget {
        match (&self.to, self.number, self.all) {
            (Some(to), _, _) => RevertTarget::To(to.clone()),
            (_, _, true) => RevertTarget::All,
            (_, Some(n), _) => RevertTarget::Last(n),
            _ => RevertTarget::Last(1),
        }
    }
}

impl RedoArgs {
    fn target(&self) -> RevertTarget {
        match (self.number, self.all) {
            (_, true) => RevertTarget::All,
            (Some(n), _) => RevertTarget::Last(n),
            _ => RevertTarget::Last(1),
        }
    }
}

/// Runs `command` with `migrator` (which holds the migration lock), printing its result to
/// stdout and problems to stderr: exit status 1 where the command found the database and the
/// binary at odds.
pub fn run(command: &MigrateCommand, migrator: &mut Migrator) -> Result<ExitCode, MigrateError> {
    match command {
        MigrateCommand::Status => {
            let problems = print_status(migrator)?;
            if !problems.is_empty() {
                eprintln!();
                for problem in problems {
                    eprintln!("error: {problem}");
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        MigrateCommand::Run {
            to,
            skip_post_deploy,
            allow_out_of_order,
        } => {
            let post_deploy = match skip_post_deploy {
                true => PostDeploy::Skip,
                false => PostDeploy::Apply,
            };
            let order = match allow_out_of_order {
                true => Order::AllowOutOfOrder,
                false => Order::InOrder,
            };
            let target = MigrateCommand::apply_target(to);
            report("applied", migrator.run(&target, post_deploy, order)?)
        }
        MigrateCommand::Revert(args) => report("reverted", migrator.revert(&args.target())?),
        MigrateCommand::Redo(args) => report("redid", migrator.redo(&args.target())?),
        MigrateCommand::Sql { to, down: false } => {
            print!("{}", migrator.apply_sql(&MigrateCommand::apply_target(to))?)
        }
        MigrateCommand::Sql { to, down: true } => {
            let target = to.clone().map_or(RevertTarget::Last(1), RevertTarget::To);
            print!("{}", migrator.revert_sql(&target)?)
        }
        MigrateCommand::New(args) => {
            let words: Vec<String> = std::env::args().skip(1).collect();
            let command = format!("{} {}", migrator.set.program, words.join(" "));
            let (folders, advice) = generate::new(&mut migrator.conn, args, &command)
                .map_err(|err| MigrateError::Generate(Box::new(err)))?;
            for folder in &folders {
                println!("wrote {}", folder.display());
            }
            println!();
            for line in advice {
                println!("- {line}");
            }
        }
        MigrateCommand::Verify => {
            let problems = migrator.verify()?;
            for problem in problems.iter().filter_map(|row| row.problem()) {
                println!("MISMATCH {problem}");
            }
            // Pending and out-of-order migrations are reported above, or are no mismatch.
            let drift = match migrator.readiness()? {
                Some(Unready::Drift(drift)) => drift,
                _ => Vec::new(),
            };
            for drift in &drift {
                println!("DRIFT {drift}");
            }
            if !problems.is_empty() || !drift.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
            println!(
                "ok: every applied migration matches this binary, and so does the live schema"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(verb: &str, names: Vec<&str>) {
    if names.is_empty() {
        println!("nothing to do");
    }
    for name in names {
        println!("{verb} {name}");
    }
}

/// Prints the status table; returns what makes the database and this binary disagree.
fn print_status(migrator: &mut Migrator) -> Result<Vec<String>, MigrateError> {
    let rows = migrator.status()?;
    let label = |row: &MigrationStatus| match row.post_deploy {
        true => format!("{} (post-deploy)", row.label()),
        false => row.label().to_owned(),
    };
    let width = rows.iter().map(|row| label(row).len()).max().unwrap_or(0);
    println!(
        "{:<width$}  {:<8}  {:<19}  CHECKSUM",
        "MIGRATION", "STATE", "APPLIED AT"
    );
    for row in &rows {
        let state = match (&row.applied_on, &row.checksum) {
            (None, _) => "pending",
            (Some(_), Checksum::MissingFromBinary { .. }) => "unknown",
            (Some(_), _) => "applied",
        };
        let checksum = match (&row.checksum, &row.out_of_order) {
            (_, Some(newest)) => format!("- (OUT OF ORDER: older than {newest})"),
            (checksum, None) => match checksum {
                Checksum::NotApplied => "-".to_owned(),
                Checksum::Verified => "ok".to_owned(),
                Checksum::Unrecorded => "not recorded yet".to_owned(),
                Checksum::Changed(files) => format!("CHANGED: {}", files.join(", ")),
                Checksum::MissingFromBinary { .. } => "MISSING from this binary".to_owned(),
            },
        };
        let applied_on = row
            .applied_on
            .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        println!(
            "{:<width$}  {state:<8}  {applied_on:<19}  {checksum}",
            label(row),
        );
    }
    Ok(rows.iter().filter_map(|row| row.problem()).collect())
}
