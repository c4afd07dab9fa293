//! Reads `.env`, then either serves (no subcommand) or runs a subcommand.

use std::process::ExitCode;

use clap::Parser;
use students_api::cli::{Cli, Command};
use students_api::settings::{self, Settings};

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
        Some(Command::Token(command)) => students_api::cli::token(&command),
        Some(Command::Healthcheck) => students_api::cli::healthcheck(),
    }
}

#[rocket::main]
async fn serve() -> ExitCode {
    // Before anything of Rocket's, which would install its own logger.
    students_api::logging::for_service();
    let figment = settings::figment();
    // Read before the service is built, to log at the configured level from the start and to
    // check the port before migrating; the start-up stage takes them from here.
    let settings = match Settings::from_figment(figment.clone()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    students_api::logging::set_level(settings.rocket.log_level);
    if let Err(message) = settings::check_can_listen(settings.listen_address()) {
        log::error!("{message}");
        return ExitCode::FAILURE;
    }
    match students_api::build_with(figment, settings).launch().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            // Ignition failures were already logged with their cause by the failing stage.
            eprintln!("error: students-api did not start: {err}");
            ExitCode::FAILURE
        }
    }
}
