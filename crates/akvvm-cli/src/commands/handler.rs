//! `akvvm handler install|enable|disable|uninstall|update`: the commands of
//! `HandlerManifest.json`, run by the Azure guest agent.
//!
//! `enable` is idempotent and returns within seconds: it validates the settings, writes a
//! `transitioning` status, and (re)starts the `akvvm` systemd service, which does the polling.
//! Without systemd it starts `akvvm run` as a detached process instead.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use akvvm::cert::store::Store;
use akvvm::handler::{
    self, HandlerEnvironment, HandlerSettings, PidFile, ServiceManager, UnitSpec,
};
use akvvm::settings::Settings;
use akvvm::status::{Report, State, StatusFile};
use anyhow::Context;
use time::OffsetDateTime;

use super::run::read_environment;
use crate::output;

/// How long `disable`/`uninstall` wait for a daemon started without systemd to stop.
const STOP_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, clap::Args)]
pub struct HandlerArgs {
    #[command(subcommand)]
    operation: Operation,

    /// The guest agent's HandlerEnvironment.json (default: in $AZURE_GUEST_AGENT_EXTENSION_PATH,
    /// or beside the executable or one directory up; never the working directory).
    #[arg(long, value_name = "PATH", global = true)]
    handler_environment: Option<PathBuf>,

    /// How the daemon is run: as the systemd service `akvvm.service` (`auto` when systemd runs
    /// this machine), or as a detached `akvvm run` process with a pid file (`none`: containers,
    /// machines without systemd).
    #[arg(long, value_enum, default_value_t = ServiceChoice::Auto, global = true)]
    service_manager: ServiceChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ServiceChoice {
    Auto,
    Systemd,
    None,
}

#[derive(Debug, clap::Subcommand)]
enum Operation {
    /// Prepare the machine (nothing to do until enable).
    Install,
    /// Validate the settings and (re)start the akvvm service; idempotent.
    Enable,
    /// Stop the akvvm service; certificates stay.
    Disable,
    /// Stop and remove the akvvm service; certificates stay unless --remove-certificates.
    Uninstall {
        /// Also remove the installed certificates, their links and akvvm's state.
        #[arg(long)]
        remove_certificates: bool,
    },
    /// Move to a new extension version (the guest agent runs uninstall and install around it).
    Update,
}

impl HandlerArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let environment = read_environment(self.handler_environment.as_deref())?;
        let system = ServiceManager::system();
        let services = match self.service_manager {
            ServiceChoice::Auto if system.available() => Some(system),
            ServiceChoice::Systemd => Some(system),
            ServiceChoice::Auto | ServiceChoice::None => None,
        };
        let services = services.as_ref();
        let sequence_env = std::env::var(handler::SEQUENCE_ENV).ok();
        match self.operation {
            Operation::Install => {
                output::line(format!("akvvm installed for {}", environment.name));
            }
            Operation::Update => {
                output::line("akvvm updated; the next enable restarts the service");
            }
            Operation::Enable => enable(&environment, services, sequence_env.as_deref())?,
            Operation::Disable => {
                stop(&environment, services, sequence_env.as_deref())?;
                write_status(
                    &environment,
                    sequence_env.as_deref(),
                    "Disable",
                    "akvvm is disabled; certificates stay installed",
                );
                output::line("akvvm disabled");
            }
            Operation::Uninstall {
                remove_certificates,
            } => {
                let settings = current_settings(&environment, sequence_env.as_deref()).ok();
                stop(&environment, services, sequence_env.as_deref())?;
                if let Some(services) = services {
                    services.uninstall()?;
                }
                if remove_certificates {
                    let settings = settings.context(
                        "--remove-certificates needs the settings to know which certificates to remove, \
                         and they could not be read",
                    )?;
                    remove_installed(&settings)?;
                }
                output::line(if remove_certificates {
                    "akvvm uninstalled; certificates removed"
                } else {
                    "akvvm uninstalled; certificates stay installed"
                });
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn current_settings(
    environment: &HandlerEnvironment,
    sequence_env: Option<&str>,
) -> anyhow::Result<Settings> {
    let handler_settings = HandlerSettings::current(environment, sequence_env)?;
    Ok(handler_settings.validate(environment.running_version())?)
}

fn write_status(
    environment: &HandlerEnvironment,
    sequence_env: Option<&str>,
    operation: &str,
    message: &str,
) {
    let Ok(sequence) = handler::sequence_number(&environment.config_folder, sequence_env) else {
        return;
    };
    let report = Report::new(operation, State::Success, message);
    if let Err(e) = StatusFile::new(&environment.status_folder, sequence)
        .write(&report, OffsetDateTime::now_utc())
    {
        tracing::error!(error = %e, "failed to write the status file");
    }
}

fn enable(
    environment: &HandlerEnvironment,
    services: Option<&ServiceManager>,
    sequence_env: Option<&str>,
) -> anyhow::Result<()> {
    let handler_settings = HandlerSettings::current(environment, sequence_env)?;
    let status = StatusFile::new(&environment.status_folder, handler_settings.sequence);
    let settings = match handler_settings.validate(environment.running_version()) {
        Ok(settings) => settings,
        Err(err) => {
            let report = Report::new("Enable", State::Error, format!("[{}] {err}", err.code()));
            status.write(&report, OffsetDateTime::now_utc())?;
            return Err(err.into());
        }
    };
    let report = Report::new("Enable", State::Transitioning, "starting the akvvm service");
    status.write(&report, OffsetDateTime::now_utc())?;

    let executable = std::env::current_exe().context("failed to find the akvvm executable")?;
    let environment_path =
        std::fs::canonicalize(&environment.path).unwrap_or_else(|_| environment.path.clone());
    let arguments = vec![
        "run".to_string(),
        "--handler-environment".to_string(),
        environment_path.display().to_string(),
    ];
    // The service may write only where its unit says, and a sandboxed service cannot create
    // those directories itself: make them now (stores 0700, owned by the agent's user).
    for cert in &settings.observed {
        Store::open_layout(&cert.store_dir, settings.mode.mode.store_layout())?;
    }
    akvvm::sync::state_dir::secure(&settings.agent.state_directory)?;
    std::fs::create_dir_all(&settings.agent.state_directory).with_context(|| {
        format!(
            "failed to create the state directory {}",
            settings.agent.state_directory.display()
        )
    })?;
    if let Some(services) = services {
        let mut writable_paths: Vec<PathBuf> = settings
            .observed
            .iter()
            .map(|c| c.store_dir.clone())
            .collect();
        writable_paths.extend([
            settings.agent.state_directory.clone(),
            environment.status_folder.clone(),
            environment.log_folder.clone(),
        ]);
        let spec = UnitSpec {
            executable,
            arguments,
            writable_paths,
        };
        services.enable(&spec)?;
        output::line(format!(
            "akvvm service enabled and (re)started for settings {}",
            handler_settings.path.display()
        ));
    } else {
        let pid_file = PidFile::in_state_directory(&settings.agent.state_directory);
        pid_file.stop(STOP_WAIT)?;
        let pid = spawn_detached(&executable, &arguments, &environment.log_folder)?;
        output::line(format!("started akvvm run without systemd (pid {pid})"));
    }
    Ok(())
}

/// Starts `akvvm run` in its own process group, its output appended to `<logFolder>/akvvm.log`.
fn spawn_detached(
    executable: &Path,
    arguments: &[String],
    log_folder: &Path,
) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(log_folder)
        .with_context(|| format!("failed to create the log folder {}", log_folder.display()))?;
    let log_path = log_folder.join("akvvm.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("failed to open {}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .with_context(|| format!("failed to open {}", log_path.display()))?;
    let child = Command::new(executable)
        .args(arguments)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("failed to start {}", executable.display()))?;
    Ok(child.id())
}

fn stop(
    environment: &HandlerEnvironment,
    services: Option<&ServiceManager>,
    sequence_env: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(services) = services {
        services.disable()?;
        return Ok(());
    }
    let state_directory = daemon_state_directory(environment, sequence_env);
    PidFile::in_state_directory(&state_directory).stop(STOP_WAIT)?;
    Ok(())
}

/// Where the running daemon keeps its pid file: the state directory of the current settings, or,
/// when they are invalid, of the newest earlier sequence whose settings are valid (the daemon
/// that `enable` started from them is still running: bad settings never replace it), else the
/// default. So `disable` after a bad `<seq>.settings` still stops the daemon.
fn daemon_state_directory(environment: &HandlerEnvironment, sequence_env: Option<&str>) -> PathBuf {
    let folder = &environment.config_folder;
    let current = handler::sequence_number(folder, sequence_env).ok();
    let sequences = handler::sequence_numbers(folder).unwrap_or_default();
    let candidates = current.into_iter().chain(
        sequences
            .into_iter()
            .rev()
            .filter(|&s| current.is_none_or(|c| s < c)),
    );
    for sequence in candidates {
        let Ok(handler_settings) = HandlerSettings::read(folder, sequence) else {
            continue;
        };
        if let Ok(settings) = handler_settings.validate(environment.running_version()) {
            return settings.agent.state_directory;
        }
    }
    PathBuf::from(akvvm::settings::DEFAULT_STATE_DIRECTORY)
}

/// Removes every version, link and state akvvm recorded for the observed certificates. The store
/// removes its entries through its directory handle, never following a link
/// ([`Store::remove_certificate`]).
fn remove_installed(settings: &Settings) -> anyhow::Result<()> {
    for cert in &settings.observed {
        let store = Store::open_layout(&cert.store_dir, settings.mode.mode.store_layout())?;
        let removed = store.remove_certificate(
            &cert.url.vault_name,
            &cert.url.name,
            cert.link_name.as_deref(),
        )?;
        for path in removed {
            tracing::info!(path = %path.display(), "removed");
        }
    }
    let state_file = settings
        .agent
        .state_directory
        .join(akvvm::sync::STATE_FILE_NAME);
    for path in [
        akvvm::sync::state::journal::journal_path(&state_file),
        state_file,
        settings
            .agent
            .state_directory
            .join(akvvm::sync::hook::HOOK_JOURNAL_FILE),
    ] {
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e).with_context(|| format!("failed to remove {}", path.display()));
        }
    }
    Ok(())
}
