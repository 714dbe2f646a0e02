//! `akvvm`: keeps Azure Key Vault certificates installed and current on a Linux machine.

mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    output::init_tracing(cli.verbosity());
    match cli.run() {
        Ok(code) => code,
        Err(err) => {
            output::print_error_chain(&err);
            ExitCode::from(2)
        }
    }
}
