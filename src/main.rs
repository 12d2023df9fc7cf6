//! The `perpdesk` binary: parse the command line, load the configuration, dispatch the subcommand.
//!
//! This is a minimal composition root: only `perpdesk config` is implemented here. The logic lives in the
//! library (`perpdesk::cli`, `perpdesk::config`) so the full application can replace this file and keep
//! calling the same functions. Any configuration error ends the process with
//! [`ConfigError::EXIT_CODE`] (2) and its message on stderr.

use std::{io::Write as _, process::ExitCode};

use clap::Parser as _;
use perpdesk::{
    cli::{Cli, Command},
    config::{self, ConfigError},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = match config::load(&cli, &config::process_env) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(ConfigError::EXIT_CODE);
        }
    };
    match cli.command {
        Some(Command::Config(_)) => match loaded.to_annotated_toml() {
            Ok(text) => {
                let mut stdout = std::io::stdout().lock();
                if stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return ExitCode::FAILURE;
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(ConfigError::EXIT_CODE)
            }
        },
        Some(Command::Sim(_)) | None => {
            eprintln!("error: only `perpdesk config` is available in this build");
            ExitCode::FAILURE
        }
    }
}
