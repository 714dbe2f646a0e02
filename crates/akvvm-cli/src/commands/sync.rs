//! `akvvm sync --once` (one cycle in this process) and `akvvm sync --now` (ask the running
//! daemon for an immediate cycle).

use std::path::PathBuf;
use std::process::ExitCode;

use akvvm::handler::PidFile;
use akvvm::settings::DEFAULT_STATE_DIRECTORY;
use akvvm::sync::{CertOutcome, CycleReport, Engine, EngineOptions};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::run::SettingsSource;
use crate::output;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["once", "now"])))]
pub struct SyncArgs {
    /// Run one cycle here and exit: 0 when every certificate is installed and current, 1 otherwise.
    #[arg(long)]
    once: bool,

    /// Ask the running daemon (through its pid file) for an immediate cycle.
    #[arg(long)]
    now: bool,

    /// The daemon's state directory, for --now without settings (default /var/lib/akvvm).
    #[arg(long, value_name = "DIR", requires = "now")]
    state_dir: Option<PathBuf>,

    #[command(flatten)]
    source: SettingsSource,
}

impl SyncArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.now {
            let state_directory = match (
                &self.state_dir,
                &self.source.settings,
                &self.source.handler_environment,
            ) {
                (Some(dir), _, _) => dir.clone(),
                (None, None, None) => PathBuf::from(DEFAULT_STATE_DIRECTORY),
                _ => self.source.load()?.settings.agent.state_directory,
            };
            let pid = PidFile::in_state_directory(&state_directory).request_sync()?;
            output::line(format!(
                "asked the akvvm daemon (pid {pid}) for an immediate sync"
            ));
            return Ok(ExitCode::SUCCESS);
        }
        let loaded = self.source.load()?;
        let forwarder = super::run::forward_logs(&loaded.settings);
        let runtime = super::runtime()?;
        let report = runtime.block_on(async {
            let settings = loaded.settings;
            let options = EngineOptions::for_settings(&settings);
            let engine =
                Engine::new(settings, options).context("failed to start the sync engine")?;
            let cancel = CancellationToken::new();
            let interrupt = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    interrupt.cancel();
                }
            });
            // Only when `startupJitterInS` is given: a sync run by hand starts at once.
            if let Some(max) = engine.settings().agent.startup_jitter {
                tokio::select! {
                    () = tokio::time::sleep(akvvm::sync::startup_pause(max)) => {}
                    () = cancel.cancelled() => {}
                }
            }
            // A hook an earlier run was killed before finishing runs first, as `akvvm run`
            // does on start: under cron, the next `sync --once` is the restart.
            let finished = engine.finish_interrupted_hooks(&cancel).await;
            let mut report = engine.cycle(|_| true, &cancel).await;
            for interrupted in finished {
                if let Some(cert) = report
                    .certificates
                    .iter_mut()
                    .find(|c| c.url == interrupted.url && !c.hook.ran())
                {
                    cert.hook = interrupted.hook;
                }
            }
            anyhow::Ok(report)
        });
        drop(runtime);
        super::run::stop_forwarding_logs(forwarder);
        let report = report?;
        print_report(&report);
        Ok(if report.complete() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

/// One line per certificate.
pub fn print_report(report: &CycleReport) {
    for cert in &report.certificates {
        let line = match &cert.outcome {
            CertOutcome::Installed(info) => format!(
                "installed  {}  version {}  thumbprint {}  {}",
                cert.url,
                info.version,
                info.thumbprint.as_deref().unwrap_or("-"),
                info.file
                    .as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default()
            ),
            CertOutcome::Unchanged(info) => {
                format!("current    {}  version {}", cert.url, info.version)
            }
            CertOutcome::Failed { code, message, .. } => {
                format!("FAILED     {}  [{code}] {message}", cert.url)
            }
        };
        output::line(line);
        if let Some(hook) = cert.hook.failure() {
            output::line(format!("           reload hook failed: {hook}"));
        }
    }
}
