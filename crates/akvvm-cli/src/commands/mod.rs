//! The command line: one struct per subcommand, each with its own `run()`.

mod validate;
mod inspect;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// akvvm: keeps Azure Key Vault certificates installed and current on this machine.
#[derive(Debug, Parser)]
#[command(name = "akvvm", version, about, propagate_version = true)]
pub struct Cli {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a settings file, an ARM template or extension resource, or a handler settings file.
    Validate(validate::ValidateArgs),
    /// Show what a PFX, PEM bundle or store entry holds: subject, SANs, thumbprint, chain.
    Inspect(inspect::InspectArgs),
}

impl Cli {
    pub fn verbosity(&self) -> u8 {
        self.verbose
    }

    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Validate(args) => args.run(),
            Command::Inspect(args) => args.run(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
