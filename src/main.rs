//! Reads `.env`, then either serves (no subcommand) or runs a `migrate` subcommand.

use std::process::ExitCode;

use clap::Parser;
use students_api::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Same file the diesel CLI reads, so one DATABASE_URL serves both. A missing file is normal;
    // a malformed one is a mistake worth stopping for.
    if let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        eprintln!("error: cannot read .env: {err}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        None | Some(Command::Serve) => serve(),
        Some(Command::Migrate(command)) => students_api::cli::migrate(&command),
        Some(Command::Healthcheck) => students_api::cli::healthcheck(),
    }
}

#[rocket::main]
async fn serve() -> ExitCode {
    let figment = students_api::config::figment();
    // Rocket's own default, which depends on the build profile, when nothing sets it.
    let default = rocket::Config::default().log_level;
    students_api::logging::for_service(figment.extract_inner("log_level").unwrap_or(default));
    let listen = students_api::config::listen_address(&figment)
        .map_err(|err| err.to_string())
        .and_then(students_api::config::check_can_listen);
    if let Err(message) = listen {
        log::error!("{message}");
        return ExitCode::FAILURE;
    }
    match students_api::build(figment).launch().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            // Ignition failures were already logged with their cause by the failing stage.
            eprintln!("error: students-api did not start: {err}");
            ExitCode::FAILURE
        }
    }
}
