//! `akvvm-emulator`: the local vault as a server (`serve`), and the README's first command
//! (`demo`: the local vault, the akvvm agent, a rotation).

mod demo;
mod serve;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "akvvm-emulator",
    version,
    about = "The local vault: Azure Key Vault, Entra ID and IMDS on loopback"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve Key Vault and Entra ID over HTTPS and IMDS over http until interrupted.
    Serve(serve::Serve),
    /// Try akvvm without Azure: the local vault, a sync, a rotation, in one command.
    Demo(demo::Demo),
}

impl Command {
    /// The log filter when `RUST_LOG` is not set: the demo also shows the agent's log lines.
    fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Serve(_) => "akvvm_emulator=info",
            Command::Demo(_) => "akvvm=info,akvvm_cert=info,warn",
        }
    }

    async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Serve(serve) => serve.run().await.map(|()| ExitCode::SUCCESS),
            Command::Demo(demo) => demo.run().await,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let command = Cli::parse().command;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| command.default_log_filter().into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    command.run().await.unwrap_or_else(|e| {
        tracing::error!("{e:#}");
        eprintln!("akvvm-emulator: {e:#}");
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
