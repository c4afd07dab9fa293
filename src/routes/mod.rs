//! HTTP routes, one module per resource, each exporting `routes()`.

pub mod health;
pub mod students;
