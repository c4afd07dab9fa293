//! Reads `.env`, builds the service from `Rocket.toml` and the environment, and serves it.

use std::process::ExitCode;

#[rocket::main]
async fn main() -> ExitCode {
    // Same file the diesel CLI reads, so one DATABASE_URL serves both. A missing file is normal;
    // a malformed one is a mistake worth stopping for.
    if let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        eprintln!("error: cannot read .env: {err}");
        return ExitCode::FAILURE;
    }

    match students_api::build(students_api::config::figment())
        .launch()
        .await
    {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            // Ignition failures were already logged with their cause by the failing stage.
            eprintln!("error: students-api did not start: {err}");
            ExitCode::FAILURE
        }
    }
}
