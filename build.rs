//! Compiles `migrations/` and the columns of `src/schema.rs` into the binary, through the
//! migration engine's build half (`crates/fleet-migrations/src/build.rs` says what it writes).

fn main() {
    diesel_fleet_migrations::build::embed("migrations", "src/schema.rs");
}
