//! Compiles `migrations/` into the binary: `$OUT_DIR/migrations.rs` holds every folder's
//! `up.sql` and `down.sql` (through `include_str!`), and from its `metadata.toml` whether it runs
//! in a transaction (diesel's key) and whether it is a post-deploy step (this project's key, which
//! diesel ignores). `src/migrate/source.rs` says why this replaces
//! diesel_migrations' `embed_migrations!`.
//!
//! `rerun-if-changed` makes cargo rebuild when a migration is added or edited, so the binary
//! never serves a stale set.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    println!("cargo:rerun-if-changed=migrations");

    let root = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("migrations");
    let mut folders: Vec<_> = fs::read_dir(&root)
        .expect("read migrations/")
        .map(|entry| entry.expect("read migrations/ entry").path())
        // What diesel counts as a migration: a folder with an up.sql.
        .filter(|path| path.join("up.sql").is_file())
        .collect();
    folders.sort();

    let mut code = String::from("&[\n");
    for folder in folders {
        let name = folder
            .file_name()
            .unwrap()
            .to_str()
            .expect("UTF-8 folder name");
        let version = name.split('_').next().unwrap().replace('-', "");
        // Versions are written into `migrate sql` scripts as SQL literals without quoting.
        assert!(
            !version.is_empty() && version.bytes().all(|b| b.is_ascii_alphanumeric()),
            "migration folder {name:?}: the part before `_` must be a timestamp"
        );
        let file = |file: &str| {
            format!(
                "include_str!({:?})",
                folder.join(file).display().to_string()
            )
        };
        let down = match folder.join("down.sql").is_file() {
            true => format!("Some({})", file("down.sql")),
            false => "None".to_owned(),
        };
        let metadata = Metadata::read(&folder.join("metadata.toml"));
        writeln!(
            code,
            "    EmbeddedMigration {{ name: {name:?}, up: {}, down: {down}, run_in_transaction: {}, \
             post_deploy: {} }},",
            file("up.sql"),
            metadata.run_in_transaction,
            metadata.post_deploy,
        )
        .unwrap();
    }
    code.push(']');
    let out = Path::new(&env::var("OUT_DIR").expect("set by cargo")).join("migrations.rs");
    fs::write(out, code).expect("write migrations.rs");
}

/// What a migration's `metadata.toml` says.
struct Metadata {
    run_in_transaction: bool,
    post_deploy: bool,
}

impl Metadata {
    /// Without a file: in a transaction, not post-deploy, as diesel reads a folder without one.
    fn read(path: &Path) -> Metadata {
        let Ok(text) = fs::read_to_string(path) else {
            return Metadata {
                run_in_transaction: true,
                post_deploy: false,
            };
        };
        let table: toml::Table = text
            .parse()
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let flag = |key: &str| {
            table.get(key).map(|value| {
                value
                    .as_bool()
                    .unwrap_or_else(|| panic!("{}: {key} must be a boolean", path.display()))
            })
        };
        Metadata {
            // diesel reads a metadata.toml without this key as `false` (its serde default), the
            // opposite of a folder without the file; one written for another key would silently
            // take the migration out of its transaction. So it must be spelled out.
            run_in_transaction: flag("run_in_transaction").unwrap_or_else(|| {
                panic!(
                    "{}: say `run_in_transaction = true` (or false): diesel reads a missing key as \
                     false",
                    path.display()
                )
            }),
            post_deploy: flag("post_deploy").unwrap_or(false),
        }
    }
}
