//! `akvvm run`: the daemon. Also the settings source every agent command shares.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use akvvm::handler::{self, HandlerEnvironment, HandlerSettings, PidFile};
use akvvm::logship::{DEFAULT_FLUSH_TIMEOUT, ForwardOptions, Forwarder};
use akvvm::settings::{DEFAULT_STATE_DIRECTORY, Settings};
use akvvm::status::{Report, State, StatusFile};
use akvvm::sync::daemon::{self, DaemonOptions, SyncRequests};
use akvvm::sync::{Engine, EngineOptions};
use akvvm::webhook::Targets;
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
        let runtime = super::runtime()?;
        let result = runtime.block_on(run_daemon(loaded));
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

async fn run_daemon(loaded: Loaded) -> anyhow::Result<()> {
    let Loaded {
        settings,
        extension,
    } = loaded;
    let cancel = CancellationToken::new();
    let trigger = Arc::new(Notify::new());
    wire_signals(cancel.clone(), trigger.clone())?;

    let state_directory = settings.agent.state_directory.clone();
    akvvm::sync::state_dir::secure(&state_directory)?;
    std::fs::create_dir_all(&state_directory).with_context(|| {
        format!(
            "failed to create the state directory {}",
            state_directory.display()
        )
    })?;
    let pid_file = PidFile::in_state_directory(&state_directory);
    pid_file.write_own()?;
    let status_file = extension.as_ref().map(Extension::status_file);

    // What the daemon needs of the settings besides the engine, taken before the settings move
    // into it: one copy of them (10,000 observed certificates are megabytes) rather than three.
    let metrics_address = settings.agent.metrics_address;
    let webhook = settings
        .agent
        .webhook
        .clone()
        .map(|webhook| (webhook, Targets::from_settings(&settings)));
    let engine_options = EngineOptions::for_settings(&settings);
    let engine = match Engine::new(settings, engine_options) {
        Ok(engine) => Arc::new(engine),
        Err(err) => {
            if let Some(file) = &status_file {
                let report = Report::new(
                    daemon::OPERATION,
                    State::Error,
                    format!("[{}] {err}", err.code()),
                );
                if let Err(e) = file.write(&report, time::OffsetDateTime::now_utc()) {
                    tracing::error!(error = %e, "failed to write the status file");
                }
            }
            pid_file.remove_own();
            return Err(anyhow::Error::new(err).context("failed to start the sync engine"));
        }
    };
    let metrics = match metrics_address {
        Some(address) => serve_metrics(address, engine.clone(), cancel.clone()).await,
        None => None,
    };
    let (requests, webhook) = match webhook {
        Some((webhook, targets)) => {
            let requests = SyncRequests::new();
            let metrics = Some(engine.metrics().clone());
            match akvvm::webhook::start(
                &webhook,
                targets,
                requests.clone(),
                metrics,
                cancel.clone(),
            )
            .await
            {
                Ok((_, task)) => (Some(requests), Some(task)),
                Err(error) => {
                    // Polling goes on: the webhook only makes rotations arrive sooner.
                    tracing::error!(
                        code = error.code(),
                        %error,
                        "the Event Grid webhook is not running; certificates are still polled"
                    );
                    (None, None)
                }
            }
        }
        None => (None, None),
    };
    let options = DaemonOptions {
        status_file,
        notify_systemd: true,
        requests,
    };
    daemon::run(engine, options, cancel, trigger).await;
    // The listeners stop with the same cancellation; a slow client never holds up the exit.
    for server in [metrics, webhook].into_iter().flatten() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    }
    pid_file.remove_own();
    Ok(())
}

/// Starts the metrics listener on `address`. A listener that cannot start is logged as an error
/// and the agent goes on without it: keeping certificates current matters more than metrics.
async fn serve_metrics(
    address: std::net::SocketAddr,
    engine: Arc<Engine>,
    cancel: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(
                %address,
                %error,
                "cannot serve metrics on akvvm.metricsAddress; syncing goes on without them \
                 (choose a free address, or stop what listens there)"
            );
            return None;
        }
    };
    let bound = listener.local_addr().unwrap_or(address);
    tracing::info!(url = %format!("http://{bound}/metrics"), "serving Prometheus metrics");
    Some(tokio::spawn(akvvm::metrics::serve(
        listener, engine, cancel,
    )))
}
