//! `akvvm-emulator serve`: the local vault on fixed addresses until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use akvvm_emulator::seed::Seed;
use akvvm_emulator::{Emulator, EmulatorConfig};

#[derive(clap::Args)]
pub struct Serve {
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
    pub async fn run(self) -> anyhow::Result<()> {
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
            tenant = %emulator.default_tenant(),
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
