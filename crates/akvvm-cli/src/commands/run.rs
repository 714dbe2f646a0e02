//! `akvvm run`: the daemon. Also the settings source every agent command shares.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use akvvm::agent::AgentOptions;
use akvvm::handler::{self, HandlerEnvironment, HandlerSettings};
use akvvm::logship::{DEFAULT_FLUSH_TIMEOUT, ForwardOptions, Forwarder, ForwardingStatus};
use akvvm::settings::{DEFAULT_STATE_DIRECTORY, Settings};
use akvvm::status::{Report, State, StatusFile};
use akvvm::sync::daemon;
use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Where the settings come from: a plain file, or the VM extension's handler environment.
#[derive(Debug, Clone, clap::Args)]
pub struct SettingsSource {
    /// A settings file: the extension's public settings JSON.
    #[arg(long, value_name = "FILE", conflicts_with = "handler_environment")]
    pub settings: Option<PathBuf>,

    /// The guest agent's HandlerEnvironment.json (default without --settings: in
    /// $AZURE_GUEST_AGENT_EXTENSION_PATH, or beside the executable or one directory up; never
    /// the working directory).
    #[arg(long, value_name = "PATH")]
    pub handler_environment: Option<PathBuf>,
}

/// Settings, and the extension context when they came from the handler environment.
pub struct Loaded {
    pub settings: Settings,
    pub extension: Option<Extension>,
}

/// The handler environment and the sequence number being acted on.
pub struct Extension {
    pub environment: HandlerEnvironment,
    pub sequence: u64,
}

impl Extension {
    pub fn status_file(&self) -> StatusFile {
        StatusFile::new(&self.environment.status_folder, self.sequence)
    }
}

/// Finds and reads `HandlerEnvironment.json` (with retries: the guest agent may be writing it).
pub fn read_environment(explicit: Option<&Path>) -> anyhow::Result<HandlerEnvironment> {
    let extension_path = std::env::var_os(handler::EXTENSION_PATH_ENV).map(PathBuf::from);
    let exe = std::env::current_exe().ok();
    let path = handler::discover_environment(explicit, extension_path.as_deref(), exe.as_deref())?;
    Ok(HandlerEnvironment::read_with_retries(
        &path,
        handler::DEFAULT_READ_ATTEMPTS,
        handler::DEFAULT_READ_DELAY,
    )?)
}

impl SettingsSource {
    /// The settings when a source was given (none otherwise), and the state directory:
    /// `state_dir` when given, else the settings', else [`DEFAULT_STATE_DIRECTORY`].
    pub fn optional_with_state_dir(
        &self,
        state_dir: Option<&Path>,
    ) -> anyhow::Result<(Option<Settings>, PathBuf)> {
        let settings = if self.settings.is_some() || self.handler_environment.is_some() {
            Some(self.load()?.settings)
        } else {
            None
        };
        let state_directory = match (state_dir, &settings) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Some(settings)) => settings.agent.state_directory.clone(),
            (None, None) => PathBuf::from(DEFAULT_STATE_DIRECTORY),
        };
        Ok((settings, state_directory))
    }

    /// Loads and validates the settings.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        if let Some(path) = &self.settings {
            let settings = Settings::load(path)?;
            return Ok(Loaded {
                settings,
                extension: None,
            });
        }
        let environment = read_environment(self.handler_environment.as_deref())?;
        let sequence_env = std::env::var(handler::SEQUENCE_ENV).ok();
        let handler_settings = HandlerSettings::current(&environment, sequence_env.as_deref())?;
        let extension = Extension {
            environment,
            sequence: handler_settings.sequence,
        };
        match handler_settings.validate(extension.environment.running_version()) {
            Ok(settings) => Ok(Loaded {
                settings,
                extension: Some(extension),
            }),
            Err(err) => {
                let report = Report::new(
                    daemon::OPERATION,
                    State::Error,
                    format!("[{}] {err}", err.code()),
                );
                if let Err(e) = extension
                    .status_file()
                    .write(&report, time::OffsetDateTime::now_utc())
                {
                    tracing::error!(error = %e, "failed to write the status file");
                }
                Err(err.into())
            }
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    source: SettingsSource,
}

impl RunArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let loaded = self.source.load()?;
        let forwarder = forward_logs(&loaded.settings);
        let log_shipping = forwarder.as_ref().map(Forwarder::status);
        let runtime = super::runtime()?;
        let result = runtime.block_on(run_daemon(loaded, log_shipping));
        drop(runtime);
        stop_forwarding_logs(forwarder);
        result?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Starts forwarding the log records to Fluentd when the settings have `loggingSettings`.
pub fn forward_logs(settings: &Settings) -> Option<Forwarder> {
    let logging = settings.logging.as_ref()?;
    match Forwarder::start(logging, ForwardOptions::default()) {
        Ok(forwarder) => {
            forwarder.install();
            tracing::info!(
                endpoint = %logging.endpoint,
                tag = %logging.tag,
                "forwarding log records to fluentd"
            );
            Some(forwarder)
        }
        Err(error) => {
            tracing::error!(%error, "cannot start forwarding log records to fluentd; logging to stderr only");
            None
        }
    }
}

/// Stops log forwarding at exit, sending what is buffered within [`DEFAULT_FLUSH_TIMEOUT`].
pub fn stop_forwarding_logs(forwarder: Option<Forwarder>) {
    if let Some(forwarder) = forwarder {
        forwarder.shutdown(DEFAULT_FLUSH_TIMEOUT);
    }
}

/// Wires SIGTERM/SIGINT to a cancellation token and SIGHUP to an immediate sync.
pub fn wire_signals(cancel: CancellationToken, trigger: Arc<Notify>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("failed to listen for SIGHUP")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM: stopping"); cancel.cancel(); break; }
                _ = int.recv() => { tracing::info!("SIGINT: stopping"); cancel.cancel(); break; }
                _ = hup.recv() => trigger.notify_one(),
            }
        }
    });
    Ok(())
}

async fn run_daemon(loaded: Loaded, log_shipping: Option<ForwardingStatus>) -> anyhow::Result<()> {
    let Loaded {
        settings,
        extension,
    } = loaded;
    let shutdown = CancellationToken::new();
    let trigger = Arc::new(Notify::new());
    wire_signals(shutdown.clone(), trigger.clone())?;
    let options = AgentOptions {
        status_file: extension.as_ref().map(Extension::status_file),
        notify_systemd: true,
        pid_file: true,
        engine: None,
        log_shipping,
    };
    akvvm::agent::run(settings, options, shutdown, trigger).await?;
    Ok(())
}
