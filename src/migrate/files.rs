//! The SQL text of every migration, compiled in by `build.rs` next to diesel's own embedding,
//! which does not expose it. Used to checksum applied migrations and to print SQL unrun.

use sha2::{Digest, Sha256};

/// One migration folder's files.
#[derive(Debug, Clone, Copy)]
pub struct MigrationFiles {
    /// The folder name, e.g. `2026-11-27-163402-0000_create_student`.
    pub name: &'static str,
    pub up: &'static str,
    pub down: Option<&'static str>,
    pub metadata: Option<&'static str>,
}

/// The files of `migrations/`, in version order.
pub static FILES: &[MigrationFiles] = include!(concat!(env!("OUT_DIR"), "/migration_files.rs"));

/// SHA-256 of a file's text, as lowercase hex. A missing `down.sql` hashes as empty.
pub fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl MigrationFiles {
    pub fn up_sha256(&self) -> String {
        sha256(self.up)
    }

    pub fn down_sha256(&self) -> String {
        sha256(self.down.unwrap_or(""))
    }

    /// Diesel's version for this folder: the part before the first `_`, without dashes.
    pub fn version(&self) -> String {
        self.name
            .split_once('_')
            .map_or(self.name, |(version, _)| version)
            .replace('-', "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::EMBEDDED;
    use diesel::migration::MigrationSource;
    use diesel::pg::Pg;

    #[test]
    fn the_compiled_in_files_are_the_migrations_diesel_embeds() {
        let embedded: Vec<(String, String)> = MigrationSource::<Pg>::migrations(&EMBEDDED)
            .unwrap()
            .iter()
            .map(|m| (m.name().to_string(), m.name().version().to_string()))
            .collect();
        let files: Vec<(String, String)> = FILES
            .iter()
            .map(|f| (f.name.to_owned(), f.version()))
            .collect();
        assert_eq!(files, embedded);
    }

    #[test]
    fn sha256_is_the_standard_digest() {
        assert_eq!(
            sha256(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
