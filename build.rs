//! Compiles `migrations/` into the binary: `$OUT_DIR/migrations.rs` holds every folder's
//! `up.sql` and `down.sql` (through `include_str!`) and whether it runs in a transaction (its
//! `metadata.toml`, as diesel reads it). `src/migrate/source.rs` says why this replaces
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
        writeln!(
            code,
            "    MigrationFiles {{ name: {name:?}, up: {}, down: {down}, run_in_transaction: {} }},",
            file("up.sql"),
            run_in_transaction(&folder.join("metadata.toml")),
        )
        .unwrap();
    }
    code.push(']');
    let out = Path::new(&env::var("OUT_DIR").expect("set by cargo")).join("migrations.rs");
    fs::write(out, code).expect("write migrations.rs");
}

/// `run_in_transaction` of a `metadata.toml`; true without one, as in diesel.
fn run_in_transaction(metadata: &Path) -> bool {
    let Ok(text) = fs::read_to_string(metadata) else {
        return true;
    };
    let table: toml::Table = text
        .parse()
        .unwrap_or_else(|err| panic!("{}: {err}", metadata.display()));
    match table.get("run_in_transaction") {
        None => true,
        Some(value) => value.as_bool().unwrap_or_else(|| {
            panic!(
                "{}: run_in_transaction must be a boolean",
                metadata.display()
            )
        }),
    }
}
