//! `embed_migrations!` reads `migrations/` at compile time; without this, adding or editing a
//! migration would not rebuild the binary and it would keep serving the old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
