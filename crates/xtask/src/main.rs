//! `cargo xtask <task>`: the index of the project's tasks, each the scripts it runs, from the
//! repository's root. Without a task it lists them. Arguments after the task go to its script.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// Name, what it does, and the commands it runs in order, each a program and its arguments; the
/// task's own arguments go to the last one.
type Task = (
    &'static str,
    &'static str,
    &'static [&'static [&'static str]],
);

const TASKS: &[Task] = &[
    (
        "serve",
        "start (or reuse) the project's PostgreSQL, migrate, serve on :8089",
        &[&["scripts/serve.sh"]],
    ),
    (
        "test",
        "every test, against a throwaway PostgreSQL (the README's test command)",
        &[&["scripts/test.sh"]],
    ),
    (
        "ci",
        "everything CI runs, as CI runs it (about 25 minutes)",
        &[&[".ci/run"]],
    ),
    (
        "lint",
        "formatting, clippy, shellcheck, the migration lint, the docs' links",
        &[
            &["cargo", "fmt", "--all", "--", "--check"],
            &[
                "cargo",
                "clippy",
                "--locked",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            &[
                "cargo",
                "clippy",
                "--locked",
                "-p",
                "diesel-fleet-migrations",
                "--no-default-features",
                "--features",
                "build",
                "--",
                "-D",
                "warnings",
            ],
            &["bash", "-c", "shellcheck -x scripts/*.sh .ci/run"],
            &["scripts/lint-migrations.sh"],
            &["python3", "scripts/check-docs.py"],
        ],
    ),
    (
        "bench",
        "the service under wrk and pgbench, release build, throwaway PostgreSQL",
        &[&["scripts/bench.sh"]],
    ),
    (
        "docs",
        "the docs' links, then every shell block of the README and docs/ as written",
        &[
            &["python3", "scripts/check-docs.py"],
            &["python3", "scripts/run-docs.py"],
        ],
    ),
];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(task) = args.next() else {
        println!("cargo xtask <task> [arguments]\n");
        for (name, about, _) in TASKS {
            println!("  {name:<6} {about}");
        }
        return ExitCode::SUCCESS;
    };
    let Some((_, _, commands)) = TASKS.iter().find(|(name, ..)| *name == task) else {
        eprintln!("no task {task:?}; `cargo xtask` lists them");
        return ExitCode::from(2);
    };
    let extra: Vec<String> = args.collect();
    // crates/xtask is two folders below the root.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (at, command) in commands.iter().enumerate() {
        let (program, arguments) = command.split_first().expect("a program");
        let mut run = Command::new(program);
        run.args(arguments).current_dir(&root);
        if at + 1 == commands.len() {
            run.args(&extra);
        }
        match run.status() {
            Ok(status) if status.success() => {}
            Ok(status) => {
                eprintln!("xtask {task}: `{}` failed ({status})", command.join(" "));
                return ExitCode::FAILURE;
            }
            Err(err) => {
                eprintln!("xtask {task}: cannot run `{program}`: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
