//! The command line: one struct per subcommand, each with its own `run()`.

mod cscfg;
mod handler;
mod inspect;
mod list;
mod run;
mod status;
mod sync;
mod validate;

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
    /// Run the agent: keep the observed certificates installed and current (the daemon).
    Run(run::RunArgs),
    /// One sync cycle here (--once), or an immediate one in the running daemon (--now).
    Sync(sync::SyncArgs),
    /// Per certificate: installed version, thumbprint, expiry, last check, last error.
    Status(status::StatusArgs),
    /// The observed certificates, where they are installed, and their reload hooks.
    List(list::ListArgs),
    /// Cloud Services: check that the certificates a .cscfg names are installed here.
    Cscfg(cscfg::CscfgArgs),
    /// The VM extension's handler commands (run by the Azure guest agent).
    Handler(handler::HandlerArgs),
}

impl Cli {
    pub fn verbosity(&self) -> u8 {
        self.verbose
    }

    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Validate(args) => args.run(),
            Command::Inspect(args) => args.run(),
            Command::Run(args) => args.run(),
            Command::Sync(args) => args.run(),
            Command::Status(args) => args.run(),
            Command::List(args) => args.run(),
            Command::Cscfg(args) => args.run(),
            Command::Handler(args) => args.run(),
        }
    }
}

/// Worker threads of the async runtime: the agent waits on the network, and its CPU work (PFX
/// decoding, installs) runs on the blocking pool.
const WORKER_THREADS: usize = 2;

/// Threads of the blocking pool: decodes and installs at once. Tokio's default (512) lets a
/// cycle of 10,000 certificates start hundreds of threads, each with its own stack and
/// allocator arena, for no gain on a machine with a few cores.
const MAX_BLOCKING_THREADS: usize = 4;

/// The async runtime every command runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
