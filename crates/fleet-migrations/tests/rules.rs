//! The rules no database can check, each shown refusing what breaks it and accepting the fix.

use std::path::Path;
use std::process::Command;

use diesel_fleet_migrations::rules::{contract_steps, history_order};
use diesel_fleet_migrations::{EmbeddedMigration, Migrations};

/// A git repository of its own, removed when the test ends.
struct Repo(std::path::PathBuf);

impl Repo {
    fn new(name: &str) -> Repo {
        let dir = std::env::temp_dir().join(format!("rules-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let repo = Repo(dir);
        repo.git(&["init", "-q"]);
        repo.git(&["config", "user.email", "rules@localhost"]);
        repo.git(&["config", "user.name", "rules"]);
        repo
    }

    fn git(&self, args: &[&str]) {
        let status = Command::new("git")
            .arg("-C")
            .arg(&self.0)
            .args(args)
            .status();
        assert!(status.unwrap().success(), "git {args:?}");
    }

    /// Writes `migrations/<folder>/up.sql`.
    fn write(&self, folder: &str) {
        let dir = self.0.join("migrations").join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("up.sql"), "SELECT 1;\n").unwrap();
    }

    fn commit(&self, folder: &str) {
        self.write(folder);
        self.git(&["add", "-A"]);
        self.git(&["commit", "-qm", folder]);
    }

    fn problems(&self) -> Vec<String> {
        history_order(&self.0, "migrations").unwrap()
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_migration_committed_after_a_newer_one_is_refused_until_renamed_after_it() {
    let repo = Repo::new("late");
    repo.commit("2026-01-01-000000-0000_first");
    repo.commit("2026-01-03-000000-0000_newer");
    assert_eq!(repo.problems(), Vec::<String>::new());

    repo.commit("2026-01-02-000000-0000_merged_late");
    let problems = repo.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("migrations/2026-01-02-000000-0000_merged_late was added by "),
        "{problems:?}"
    );
    assert!(
        problems[0].contains("Rename it with a timestamp after 2026-01-03-000000-0000."),
        "{problems:?}"
    );

    repo.git(&[
        "mv",
        "migrations/2026-01-02-000000-0000_merged_late",
        "migrations/2026-01-04-000000-0000_merged_late",
    ]);
    repo.git(&["commit", "-qm", "rename"]);
    assert_eq!(repo.problems(), Vec::<String>::new());
}

#[test]
fn an_uncommitted_migration_counts_as_added_last_and_one_commit_may_add_several() {
    let repo = Repo::new("uncommitted");
    repo.write("2026-01-02-000000-0000_b");
    repo.write("2026-01-01-000000-0000_a");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-qm", "both"]);
    assert_eq!(repo.problems(), Vec::<String>::new());

    repo.write("2026-01-01-120000-0000_drafted");
    let problems = repo.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("added by the working tree (not committed)"),
        "{problems:?}"
    );
}

#[test]
fn a_shallow_clone_is_refused_rather_than_read_as_a_short_history() {
    let repo = Repo::new("origin");
    repo.commit("2026-01-01-000000-0000_a");
    repo.commit("2026-01-02-000000-0000_b");
    let clone = std::env::temp_dir().join(format!("rules-shallow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&clone);
    let url = format!("file://{}", repo.0.display());
    let status = Command::new("git")
        .args(["clone", "-q", "--depth", "1", &url])
        .arg(&clone)
        .status();
    assert!(status.unwrap().success());
    let err = history_order(&clone, "migrations").unwrap_err();
    std::fs::remove_dir_all(&clone).unwrap();
    assert!(err.to_string().contains("git fetch --unshallow"), "{err}");
    assert!(history_order(Path::new(&repo.0), "migrations").is_ok());
}

const DROP_LAST_NAME: &str = "SET LOCAL lock_timeout = '5s';\n\
    -- contract: no binary since 2026-12-01-000000-0000_add_student_email reads last_name\n\
    -- squawk-ignore ban-drop-column\n\
    ALTER TABLE student DROP COLUMN last_name;\n";

const fn contract(up: &'static str, post_deploy: bool) -> EmbeddedMigration {
    EmbeddedMigration {
        name: "2030-01-01-000000-0000_drop_last_name",
        up,
        down: None,
        run_in_transaction: true,
        post_deploy,
        batch: None,
    }
}

fn set(list: &'static [EmbeddedMigration]) -> Migrations {
    Migrations::new(list, &[], 1, "shop-api")
}

#[test]
fn a_contract_step_must_say_why_and_wait_for_the_rollout() {
    static MARKED: [EmbeddedMigration; 1] = [contract(DROP_LAST_NAME, true)];
    assert_eq!(contract_steps(&set(&MARKED)), Vec::<String>::new());

    static NOT_POST_DEPLOY: [EmbeddedMigration; 1] = [contract(DROP_LAST_NAME, false)];
    let problems = contract_steps(&set(&NOT_POST_DEPLOY));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("add `post_deploy = true`"),
        "{problems:?}"
    );

    static UNEXPLAINED: [EmbeddedMigration; 1] = [contract(
        "-- squawk-ignore ban-drop-column\nALTER TABLE student DROP COLUMN last_name;\n",
        true,
    )];
    let problems = contract_steps(&set(&UNEXPLAINED));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("up.sql:1: ignores ban-drop-column without a `-- contract:` line"),
        "{problems:?}"
    );

    // Ignoring a rule that does not protect the serving binary needs no reason.
    static OTHER_RULE: [EmbeddedMigration; 1] = [contract(
        "-- squawk-ignore prefer-text-field\nCREATE TABLE t (name varchar(10));\n",
        false,
    )];
    assert_eq!(contract_steps(&set(&OTHER_RULE)), Vec::<String>::new());
}
