//! Two things about `migrations/` happen at compile time:
//!
//! - `embed_migrations!` compiles the folders in; without `rerun-if-changed`, adding or editing a
//!   migration would not rebuild the binary and it would keep serving the old set.
//! - This script also writes the text of every `up.sql`, `down.sql` and `metadata.toml` into
//!   `$OUT_DIR/migration_files.rs`, because diesel's embedded migrations do not expose their SQL
//!   and the service needs it to checksum applied migrations and to print SQL without running it.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");

    let root = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("migrations");
    let mut folders: Vec<_> = fs::read_dir(&root)
        .expect("read migrations/")
        .map(|entry| entry.expect("read migrations/ entry").path())
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
        let include = |file: &str| {
            format!(
                "include_str!({:?})",
                folder.join(file).display().to_string()
            )
        };
        let optional = |file: &str| match folder.join(file).is_file() {
            true => format!("Some({})", include(file)),
            false => "None".to_owned(),
        };
        writeln!(
            code,
            "    MigrationFiles {{ name: {name:?}, up: {}, down: {}, metadata: {} }},",
            include("up.sql"),
            optional("down.sql"),
            optional("metadata.toml"),
        )
        .unwrap();
    }
    code.push(']');
    let out = Path::new(&env::var("OUT_DIR").expect("set by cargo")).join("migration_files.rs");
    fs::write(out, code).expect("write migration_files.rs");
}
