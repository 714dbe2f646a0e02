//! `akvvm-emulator`: the local vault.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use akvvm_emulator::seed::Seed;
use akvvm_emulator::{Emulator, EmulatorConfig};

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
    Serve(Serve),
}

#[derive(clap::Args)]
struct Serve {
    /// Answer IMDS as an Azure Arc server does (a 401 naming a key file written in DIR, whose
    /// content the next request must present).
    #[arg(long, value_name = "DIR")]
    arc_key_directory: Option<PathBuf>,

    /// HTTPS listener (Key Vault by host name, Entra ID and the admin API on other hosts).
    #[arg(long, default_value = "127.0.0.1:8443")]
    https: SocketAddr,
    /// Plain-http IMDS listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    imds: SocketAddr,
    /// Where the CA (ca.pem) is written, and the state kept with --persist.
    #[arg(long, default_value = "./akvvm-emulator-data")]
    data_dir: PathBuf,
    /// A seed file applied at start: JSON, or TOML when the name ends in .toml.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Keep the state in DATA_DIR/state.json across restarts.
    #[arg(long)]
    persist: bool,
}

impl Serve {
    async fn run(self) -> anyhow::Result<()> {
        let seed = self.seed.as_deref().map(Seed::from_file).transpose()?;
        let emulator = Emulator::start(EmulatorConfig {
            https_addr: self.https,
            imds_addr: self.imds,
            data_dir: Some(self.data_dir.clone()),
            persist: self.persist,
            seed,
            arc_key_directory: self.arc_key_directory.clone(),
        })
        .await?;
        let ca = self.data_dir.join("ca.pem");
        tracing::info!(
            https = %emulator.https_addr(),
            imds = %emulator.imds_url(),
            authority = %emulator.authority_host(),
            tenant = %emulator.tenant_id(),
            ca = %ca.display(),
            "local vault ready; trust the CA at {}", ca.display()
        );
        wait_for_signal().await?;
        tracing::info!("shutting down");
        emulator.shutdown();
        Ok(())
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("failed to watch SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("failed to watch SIGINT"),
        _ = term.recv() => Ok(()),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "akvvm_emulator=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Serve(serve) => serve.run().await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("akvvm-emulator: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
