//! The agent as one call: [`run`] starts the sync engine, the polling daemon (which finishes
//! interrupted reload hooks first), the Event Grid webhook (`akvvm.webhook`) and the metrics
//! listener (`akvvm.metricsAddress`) as the settings ask, and returns once `shutdown` is
//! cancelled and all of them have stopped. `akvvm run`, the test harness and the end-to-end
//! tests call it (or [`Agent::start`], which also tells where the listeners are bound), so the
//! daemon is wired in one place.
//!
//! What is process-wide stays with the caller: signals (the CLI cancels `shutdown` on
//! SIGTERM/SIGINT and notifies `trigger` on SIGHUP and `akvvm sync --now`), and the log
//! forwarder, whose `tracing` layer is installed with logging before the settings are read; the
//! agent is handed its figures ([`AgentOptions::log_shipping`]) for the status file and
//! `/metrics`. To add a listener, start it in `Agent::launch` on `shutdown` and add its task
//! to the ones waited for.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::handler::{HandlerError, PidFile};
use crate::logship::ForwardingStatus;
use crate::settings::Settings;
use crate::status::{Report, State, StatusFile};
use crate::sync::daemon::{self, DaemonOptions, SyncRequests};
use crate::sync::state_dir::{self, StateDirError};
use crate::sync::{Engine, EngineOptions, SetupError};
use crate::webhook::Targets;

/// How long the listeners have to stop once the daemon has: a slow client never holds up the
/// exit.
pub const LISTENER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How the agent runs, besides its settings. [`Default`]: no status file, no systemd, no pid
/// file, the engine's options from the settings, no log forwarding.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// The VM extension status file, when running as an extension. A sync engine that cannot
    /// start is reported there too.
    pub status_file: Option<StatusFile>,
    /// Whether to talk to systemd (`NOTIFY_SOCKET`): `READY=1`, `STATUS=`, `STOPPING=1`.
    pub notify_systemd: bool,
    /// Whether to secure and create the state directory and write the daemon's pid file in it
    /// (`akvvm.pid`, for `akvvm sync --now`), removed at exit: `akvvm run` does.
    pub pid_file: bool,
    /// The sync engine's options; `None`: [`EngineOptions::for_settings`]. Only [`run`] and
    /// [`Agent::start`] use them (an engine given to [`Agent::start_with_engine`] has its own).
    pub engine: Option<EngineOptions>,
    /// The running log forwarder (`loggingSettings`), for the status file's `loggingSettings`
    /// line and the `/metrics` figures of forwarded and dropped records.
    pub log_shipping: Option<ForwardingStatus>,
}

/// Why the agent could not start. Once it has started, it runs until `shutdown`: a webhook or
/// metrics listener that cannot start is logged and the agent goes on without it.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    StateDirectory(#[from] StateDirError),
    #[error("failed to create the state directory {}", path.display())]
    CreateStateDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    PidFile(#[from] HandlerError),
    #[error("failed to start the sync engine")]
    Engine(#[source] SetupError),
}

akvvm_cert::error_codes! {
    AgentError {
        AgentError::CreateStateDirectory { .. } => "state.cannot_create",
    }
    passes through {
        AgentError::StateDirectory(e) => e,
        AgentError::PidFile(e) => e,
        AgentError::Engine(e) => e,
    }
}

/// Runs the agent on `settings` until `shutdown` is cancelled. `trigger` starts a full cycle at
/// once (SIGHUP, `akvvm sync --now`).
pub async fn run(
    settings: Settings,
    options: AgentOptions,
    shutdown: CancellationToken,
    trigger: Arc<Notify>,
) -> Result<(), AgentError> {
    Agent::start(settings, options, shutdown, trigger)
        .await?
        .stopped()
        .await;
    Ok(())
}

/// A started agent: its engine, where its listeners are bound, and the task that ends when
/// everything has stopped.
pub struct Agent {
    engine: Arc<Engine>,
    webhook: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    task: JoinHandle<()>,
}

impl Agent {
    /// Starts the engine on `settings`, then the listeners and the daemon (see [`run`]).
    pub async fn start(
        settings: Settings,
        mut options: AgentOptions,
        shutdown: CancellationToken,
        trigger: Arc<Notify>,
    ) -> Result<Agent, AgentError> {
        let pid_file = if options.pid_file {
            Some(daemon_pid_file(&settings.agent.state_directory)?)
        } else {
            None
        };
        let engine_options = options
            .engine
            .take()
            .unwrap_or_else(|| EngineOptions::for_settings(&settings));
        let engine = match Engine::new(settings, engine_options) {
            Ok(engine) => Arc::new(engine),
            Err(err) => {
                if let Some(file) = &options.status_file {
                    let report = Report::new(
                        daemon::OPERATION,
                        State::Error,
                        format!("[{}] {err}", err.code()),
                    );
                    if let Err(e) = file.write(&report, time::OffsetDateTime::now_utc()) {
                        tracing::error!(error = %e, "failed to write the status file");
                    }
                }
                if let Some(pid_file) = &pid_file {
                    pid_file.remove_own();
                }
                return Err(AgentError::Engine(err));
            }
        };
        Ok(Agent::launch(engine, options, pid_file, shutdown, trigger).await)
    }

    /// Starts the listeners and the daemon around an engine already made (a test's or a
    /// benchmark's, which may have run cycles already).
    pub async fn start_with_engine(
        engine: Arc<Engine>,
        options: AgentOptions,
        shutdown: CancellationToken,
        trigger: Arc<Notify>,
    ) -> Result<Agent, AgentError> {
        let pid_file = if options.pid_file {
            Some(daemon_pid_file(&engine.settings().agent.state_directory)?)
        } else {
            None
        };
        Ok(Agent::launch(engine, options, pid_file, shutdown, trigger).await)
    }

    async fn launch(
        engine: Arc<Engine>,
        options: AgentOptions,
        pid_file: Option<PidFile>,
        shutdown: CancellationToken,
        trigger: Arc<Notify>,
    ) -> Agent {
        if let Some(shipping) = &options.log_shipping {
            engine
                .metrics()
                .show_log_forwarding(shipping.figures().clone());
        }
        let settings = engine.settings();
        let (metrics, metrics_task) = match settings.agent.metrics_address {
            Some(address) => serve_metrics(address, engine.clone(), shutdown.clone()).await,
            None => (None, None),
        };
        let (webhook, requests, webhook_task) = match &settings.agent.webhook {
            Some(webhook) => {
                let requests = SyncRequests::new();
                match crate::webhook::start(
                    webhook,
                    Targets::from_settings(settings),
                    requests.clone(),
                    Some(engine.metrics().clone()),
                    shutdown.clone(),
                )
                .await
                {
                    Ok((address, task)) => (Some(address), Some(requests), Some(task)),
                    Err(error) => {
                        // Polling goes on: the webhook only makes rotations arrive sooner.
                        tracing::error!(
                            code = error.code(),
                            %error,
                            "the Event Grid webhook is not running; certificates are still polled"
                        );
                        (None, None, None)
                    }
                }
            }
            None => (None, None, None),
        };
        let daemon_options = DaemonOptions {
            status_file: options.status_file,
            notify_systemd: options.notify_systemd,
            requests,
            log_shipping: options.log_shipping,
        };
        let listeners: Vec<JoinHandle<()>> =
            [metrics_task, webhook_task].into_iter().flatten().collect();
        let task = tokio::spawn(daemon::run(
            engine.clone(),
            daemon_options,
            shutdown,
            trigger,
        ));
        let task = tokio::spawn(async move {
            let daemon = task.await;
            // The listeners stop with the same cancellation.
            let mut panicked = None;
            for listener in listeners {
                if let Ok(Err(error)) = tokio::time::timeout(LISTENER_STOP_TIMEOUT, listener).await
                    && error.is_panic()
                {
                    panicked.get_or_insert(error.into_panic());
                }
            }
            if let Some(pid_file) = &pid_file {
                pid_file.remove_own();
            }
            if let Err(error) = daemon
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
            if let Some(panic) = panicked {
                std::panic::resume_unwind(panic);
            }
        });
        Agent {
            engine,
            webhook,
            metrics,
            task,
        }
    }

    /// The sync engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Where the Event Grid webhook listens, when it runs.
    pub fn webhook_address(&self) -> Option<SocketAddr> {
        self.webhook
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// Waits until the daemon and the listeners have stopped (after `shutdown`). A panic in one
    /// of them is resumed here.
    pub async fn stopped(self) {
        if let Err(error) = self.task.await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

/// Secures and creates the state directory and writes the daemon's pid file in it.
fn daemon_pid_file(state_directory: &Path) -> Result<PidFile, AgentError> {
    state_dir::secure(state_directory)?;
    std::fs::create_dir_all(state_directory).map_err(|source| {
        AgentError::CreateStateDirectory {
            path: state_directory.to_path_buf(),
            source,
        }
    })?;
    let pid_file = PidFile::in_state_directory(state_directory);
    pid_file.write_own()?;
    Ok(pid_file)
}

/// Starts the metrics listener on `address`. A listener that cannot start is logged as an error
/// and the agent goes on without it: keeping certificates current matters more than metrics.
async fn serve_metrics(
    address: SocketAddr,
    engine: Arc<Engine>,
    shutdown: CancellationToken,
) -> (Option<SocketAddr>, Option<JoinHandle<()>>) {
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(
                %address,
                %error,
                "cannot serve metrics on akvvm.metricsAddress; syncing goes on without them \
                 (choose a free address, or stop what listens there)"
            );
            return (None, None);
        }
    };
    let bound = listener.local_addr().unwrap_or(address);
    tracing::info!(url = %format!("http://{bound}/metrics"), "serving Prometheus metrics");
    (
        Some(bound),
        Some(tokio::spawn(crate::metrics::serve(
            listener, engine, shutdown,
        ))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_code() {
        let create = AgentError::CreateStateDirectory {
            path: PathBuf::from("/var/lib/akvvm"),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(create.code(), "state.cannot_create");
        assert_eq!(
            create.to_string(),
            "failed to create the state directory /var/lib/akvvm"
        );
        let not_a_directory = AgentError::from(StateDirError::NotADirectory {
            path: PathBuf::from("/var/lib/akvvm"),
            what: "a file",
        });
        assert_eq!(not_a_directory.code(), "state.not_a_directory");
        assert_eq!(AgentError::CODES, &["state.cannot_create"]);
    }
}
