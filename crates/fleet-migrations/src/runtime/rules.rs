//! Rules a service's migrations must keep that no database can check, for its test suite to run
//! before a change merges:
//! - [`history_order`]: folders added in the order of their timestamps, read from git. A branch
//!   that adds an older-stamped migration and merges after a newer one landed would be refused
//!   by `migrate run` in every database where the newer one already ran; caught here, the fix
//!   is a rename before it merges.
//! - [`contract_steps`]: a step that breaks the binary still serving (dropping or renaming what
//!   it reads) is marked, says why, and waits for the rollout to end.
//!
//! Whether an `UPDATE` or `DELETE` may change a whole table at once needs PostgreSQL's own
//! parser, which no Rust crate carries without compiling it from C; that rule stays with the
//! service's SQL lint.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::Migrations;

/// Rules of squawk (the SQL lint) that protect the binary still serving while a migration runs:
/// ignoring one is a contract step.
pub const COMPATIBILITY_RULES: &[&str] = &[
    "renaming-column",
    "renaming-table",
    "changing-column-type",
    "ban-drop-column",
    "ban-drop-table",
    "adding-required-field",
    "adding-not-nullable-field",
];

/// Why the history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot run git in {repo}: {source}")]
    Git {
        repo: String,
        #[source]
        source: std::io::Error,
    },
    #[error("git {args} failed in {repo}: {stderr}")]
    Failed {
        repo: String,
        args: String,
        stderr: String,
    },
    #[error(
        "{0} is a shallow clone, so the order migrations were added in is unknown: fetch the \
         whole history (git fetch --unshallow)"
    )]
    Shallow(String),
    #[error("cannot list {dir}: {source}")]
    List {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// Each folder of `dir` (relative to the git checkout `repo`) whose timestamp is older than a
/// folder added before it, with what to do; empty when the history keeps the order.
///
/// A folder counts as added by the first-parent commit that last added its `up.sql` (a merge
/// counts as adding what its branch brought), and folders not committed yet as added last.
/// Folders added by the same commit are free among themselves, and deleted ones are gone from
/// every future database, so only those present count.
pub fn history_order(repo: &Path, dir: &str) -> Result<Vec<String>, HistoryError> {
    let git = |args: &[&str]| -> Result<String, HistoryError> {
        let repo_name = repo.display().to_string();
        let output =
            (Command::new("git").arg("-C").arg(repo).args(args).output()).map_err(|source| {
                HistoryError::Git {
                    repo: repo_name.clone(),
                    source,
                }
            })?;
        match output.status.success() {
            true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
            false => Err(HistoryError::Failed {
                repo: repo_name,
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            }),
        }
    };
    if git(&["rev-parse", "--is-shallow-repository"])?.trim() == "true" {
        return Err(HistoryError::Shallow(repo.display().to_string()));
    }
    let pattern = format!("{dir}/*/up.sql");
    let history = git(&[
        "log",
        "--reverse",
        "--first-parent",
        "--diff-merges=first-parent",
        "--no-renames",
        "--diff-filter=A",
        "--name-only",
        "--format=commit %h",
        "--",
        &pattern,
    ])?;
    let uncommitted = git(&["ls-files", "--others", "--exclude-standard", "--", &pattern])?;
    let folder = |path: &str| {
        let path = path
            .strip_prefix(dir)
            .unwrap_or(path)
            .trim_start_matches('/');
        path.strip_suffix("/up.sql").unwrap_or(path).to_owned()
    };

    // Folder -> (position of the commit that last added it, that commit).
    let mut added: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut commit = (0, String::new());
    for line in history.lines().filter(|line| !line.is_empty()) {
        match line.strip_prefix("commit ") {
            Some(hash) => commit = (commit.0 + 1, hash.to_owned()),
            None => {
                added.insert(folder(line), commit.clone());
            }
        }
    }
    let last = (commit.0 + 1, "the working tree (not committed)".to_owned());
    for line in uncommitted.lines().filter(|line| !line.is_empty()) {
        added.insert(folder(line), last.clone());
    }
    let list = |source| HistoryError::List {
        dir: repo.join(dir).display().to_string(),
        source,
    };
    let mut present = Vec::new();
    for entry in std::fs::read_dir(repo.join(dir)).map_err(list)? {
        let name = entry
            .map_err(list)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if added.contains_key(&name) {
            present.push(name);
        }
    }

    let mut problems = Vec::new();
    for late in &present {
        let (late_at, late_by) = &added[late];
        // The newest folder added before it, if that is newer than it.
        let newest = (present.iter())
            .filter(|early| added[*early].0 < *late_at && *early > late)
            .max();
        if let Some(newest) = newest {
            let stamp = newest.split('_').next().unwrap_or_default();
            problems.push(format!(
                "{dir}/{late} was added by {late_by}, after {dir}/{newest} (added by {}), but its \
                 timestamp is older: a database that already ran the newer one refuses it. Rename \
                 it with a timestamp after {stamp}.",
                added[newest].1
            ));
        }
    }
    Ok(problems)
}

/// Each contract step of `set` not made as one must be; empty when every one is.
///
/// A contract step ignores one of the [`COMPATIBILITY_RULES`] on purpose, with squawk's own
/// `-- squawk-ignore <rule>`. It must say why in a `-- contract:` line just above (which binary
/// no longer needs what it removes), and its migration must be post-deploy (`post_deploy = true`
/// in its metadata.toml): `migrate run --skip-post-deploy`, the step before a rollout, would
/// otherwise apply it while the binary it breaks still serves.
pub fn contract_steps(set: &Migrations) -> Vec<String> {
    let mut problems = Vec::new();
    for migration in set.list {
        let comment = |line: &str, word: &str| {
            let text = line.trim_start().strip_prefix("--").map(str::trim_start);
            text.is_some_and(|text| text.starts_with(word))
        };
        let mut previous = "";
        for (number, line) in migration.up.lines().enumerate() {
            let ignored = (COMPATIBILITY_RULES.iter()).find(|rule| line.contains(*rule));
            if let Some(rule) = ignored.filter(|_| comment(line, "squawk-ignore"))
                && !comment(previous, "contract:")
            {
                problems.push(format!(
                    "{migration}/up.sql:{}: ignores {rule} without a `-- contract:` line above it \
                     saying which binary no longer needs what it changes",
                    number + 1
                ));
            }
            previous = line;
        }
        let contract = migration.up.lines().any(|line| comment(line, "contract:"));
        if contract && !migration.post_deploy {
            problems.push(format!(
                "{migration}/up.sql: a contract step in a migration that is not post-deploy: add \
                 `post_deploy = true` (and `run_in_transaction = true`) to its metadata.toml"
            ));
        }
    }
    problems
}
