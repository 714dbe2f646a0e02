//! Running as a VM extension handler (DESIGN.md section 5).
//!
//! The Azure guest agent runs the commands of `HandlerManifest.json` from the extension's
//! directory, beside `HandlerEnvironment.json`, which names the config, status and log folders.
//! This module owns:
//! - [`HandlerEnvironment`]: that file, read with retries (the guest agent may still be writing it);
//! - [`HandlerSettings`]: the highest `<seq>.settings` in the config folder (or the one the
//!   `ConfigSequenceNumber` environment variable names) and its `publicSettings`;
//! - [`ServiceManager`]: the systemd unit that runs `akvvm run` (written and started by `enable`,
//!   stopped by `disable`, removed by `uninstall`); and the daemon's pid file, which
//!   `akvvm sync --now` signals.
//!
//! The handler commands themselves (`akvvm handler install|enable|...`) are thin wiring in the
//! CLI over these pieces; to support a new handler command, add it there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

/// The file the guest agent writes beside the extension.
pub const HANDLER_ENVIRONMENT_FILE: &str = "HandlerEnvironment.json";

/// The environment variable the guest agent sets to the sequence number it is acting on.
pub const SEQUENCE_ENV: &str = "ConfigSequenceNumber";

/// How many times `HandlerEnvironment.json` is read before giving up, by default.
pub const DEFAULT_READ_ATTEMPTS: u32 = 10;

/// The pause between two reads of `HandlerEnvironment.json`, by default.
pub const DEFAULT_READ_DELAY: Duration = Duration::from_millis(500);

/// The name of the systemd unit.
pub const UNIT_NAME: &str = "akvvm.service";

/// The name of the daemon's pid file, in the agent's state directory.
pub const PID_FILE_NAME: &str = "akvvm.pid";

/// Errors of the handler environment.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid handler environment ({detail}); it must be \
         [{{\"name\":..,\"version\":1.0,\"handlerEnvironment\":{{\"logFolder\",\"configFolder\",\"statusFolder\"}}}}]"
    )]
    Malformed { path: PathBuf, detail: String },
    #[error(
        "no {HANDLER_ENVIRONMENT_FILE} found (looked in {searched}); pass --handler-environment PATH"
    )]
    NotFound { searched: String },
    #[error(
        "no <seq>.settings file in the config folder {folder}: the guest agent has not delivered settings yet"
    )]
    NoSettings { folder: PathBuf },
    #[error("{SEQUENCE_ENV}={value} is not a sequence number (expected a non-negative integer)")]
    BadSequence { value: String },
    #[error(
        "{path} has no runtimeSettings[0].handlerSettings.publicSettings object ({detail}); \
         the extension needs its settings there"
    )]
    NoPublicSettings { path: PathBuf, detail: String },
    #[error("`{command}` failed: {detail}")]
    ServiceCommand { command: String, detail: String },
    #[error(
        "{path} does not hold a process id (found {found:?}); remove it if no akvvm daemon runs"
    )]
    BadPidFile { path: PathBuf, found: String },
    #[error("no running akvvm daemon found through {path} ({detail}); is `akvvm run` running?")]
    NoDaemon { path: PathBuf, detail: String },
    #[error("the akvvm daemon (pid {pid}) did not stop within {wait:?} of SIGTERM")]
    StopTimeout { pid: u32, wait: Duration },
    #[error(transparent)]
    WriteFile(#[from] akvvm_cert::store::StoreError),
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HandlerError {
    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            HandlerError::Read { .. } => "handler.read",
            HandlerError::Malformed { .. } => "handler.malformed_environment",
            HandlerError::NotFound { .. } => "handler.environment_not_found",
            HandlerError::NoSettings { .. } => "handler.no_settings",
            HandlerError::BadSequence { .. } => "handler.bad_sequence",
            HandlerError::NoPublicSettings { .. } => "handler.no_public_settings",
            HandlerError::ServiceCommand { .. } => "handler.service_command",
            HandlerError::BadPidFile { .. } => "handler.bad_pid_file",
            HandlerError::NoDaemon { .. } => "handler.no_daemon",
            HandlerError::StopTimeout { .. } => "handler.stop_timeout",
            HandlerError::Write { .. } | HandlerError::WriteFile(_) => "handler.write",
        }
    }
}

/// `HandlerEnvironment.json`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerEnvironment {
    /// Where this was read from.
    pub path: PathBuf,
    /// The handler's name (`Microsoft.Azure.KeyVault.KeyVaultForLinux`).
    pub name: String,
    pub log_folder: PathBuf,
    pub config_folder: PathBuf,
    pub status_folder: PathBuf,
    pub heartbeat_file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RawEnvironmentEntry {
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "handlerEnvironment")]
    handler_environment: RawEnvironment,
}

#[derive(Deserialize)]
struct RawEnvironment {
    #[serde(rename = "logFolder")]
    log_folder: PathBuf,
    #[serde(rename = "configFolder")]
    config_folder: PathBuf,
    #[serde(rename = "statusFolder")]
    status_folder: PathBuf,
    #[serde(rename = "heartbeatFile", default)]
    heartbeat_file: Option<PathBuf>,
}

impl HandlerEnvironment {
    /// Parses the text of `HandlerEnvironment.json` read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, HandlerError> {
        let malformed = |detail: String| HandlerError::Malformed {
            path: path.to_path_buf(),
            detail,
        };
        let entries: Vec<RawEnvironmentEntry> =
            serde_json::from_str(text.trim_start_matches('\u{feff}'))
                .map_err(|e| malformed(e.to_string()))?;
        let entry = entries
            .into_iter()
            .next()
            .ok_or_else(|| malformed("the array is empty".to_string()))?;
        let env = entry.handler_environment;
        let base = path.parent().unwrap_or(Path::new("."));
        let absolute = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        Ok(HandlerEnvironment {
            path: path.to_path_buf(),
            name: entry
                .name
                .unwrap_or_else(|| crate::status::HANDLER_NAME.to_string()),
            log_folder: absolute(env.log_folder),
            config_folder: absolute(env.config_folder),
            status_folder: absolute(env.status_folder),
            heartbeat_file: env.heartbeat_file.map(absolute),
        })
    }

    /// Reads `path`, retrying up to `attempts` times with `delay` between tries while the file is
    /// missing, empty or not (yet) valid JSON: the guest agent may be writing it.
    pub fn read_with_retries(
        path: &Path,
        attempts: u32,
        delay: Duration,
    ) -> Result<Self, HandlerError> {
        let mut attempt = 1;
        loop {
            let result = std::fs::read_to_string(path)
                .map_err(|source| HandlerError::Read {
                    path: path.to_path_buf(),
                    source,
                })
                .and_then(|text| Self::parse(path, &text));
            match result {
                Ok(env) => return Ok(env),
                Err(err) if attempt >= attempts.max(1) => return Err(err),
                Err(err) => {
                    tracing::debug!(attempt, error = %err, "handler environment not readable yet, retrying");
                    std::thread::sleep(delay);
                    attempt += 1;
                }
            }
        }
    }
}

/// Finds `HandlerEnvironment.json`: the explicit path if given, else the working directory (where
/// the guest agent runs handler commands), else beside the executable or one directory above it.
pub fn discover_environment(
    explicit: Option<&Path>,
    working_dir: &Path,
    executable: Option<&Path>,
) -> Result<PathBuf, HandlerError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let mut candidates = vec![working_dir.join(HANDLER_ENVIRONMENT_FILE)];
    if let Some(exe_dir) = executable.and_then(Path::parent) {
        candidates.push(exe_dir.join(HANDLER_ENVIRONMENT_FILE));
        if let Some(up) = exe_dir.parent() {
            candidates.push(up.join(HANDLER_ENVIRONMENT_FILE));
        }
    }
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    let searched = candidates
        .iter()
        .map(|c| c.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    Err(HandlerError::NotFound { searched })
}

/// The handler settings of one sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerSettings {
    pub sequence: u64,
    pub path: PathBuf,
    /// `runtimeSettings[0].handlerSettings.publicSettings`.
    pub public_settings: serde_json::Value,
}

/// The sequence number to act on: `ConfigSequenceNumber` when the guest agent set it, else the
/// highest `<seq>.settings` in `config_folder`.
pub fn sequence_number(config_folder: &Path, from_env: Option<&str>) -> Result<u64, HandlerError> {
    if let Some(value) = from_env.map(str::trim).filter(|v| !v.is_empty()) {
        return value.parse::<u64>().map_err(|_| HandlerError::BadSequence {
            value: value.to_string(),
        });
    }
    let entries = std::fs::read_dir(config_folder).map_err(|source| HandlerError::Read {
        path: config_folder.to_path_buf(),
        source,
    })?;
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(".settings")?.parse::<u64>().ok()
        })
        .max()
        .ok_or_else(|| HandlerError::NoSettings {
            folder: config_folder.to_path_buf(),
        })
}

impl HandlerSettings {
    /// Validates the public settings; warnings are logged.
    pub fn validate(&self) -> Result<crate::settings::Settings, crate::settings::LoadError> {
        match crate::settings::Settings::from_json_value(&self.public_settings) {
            Ok((settings, warnings)) => {
                for warning in warnings {
                    tracing::warn!(path = %warning.path, code = warning.code, "{}", warning.message);
                }
                Ok(settings)
            }
            Err(diagnostics) => Err(crate::settings::LoadError::Invalid {
                path: self.path.clone(),
                diagnostics,
            }),
        }
    }

    /// Reads `<config_folder>/<sequence>.settings`.
    pub fn read(config_folder: &Path, sequence: u64) -> Result<Self, HandlerError> {
        let path = config_folder.join(format!("{sequence}.settings"));
        let text = std::fs::read_to_string(&path).map_err(|source| HandlerError::Read {
            path: path.clone(),
            source,
        })?;
        let public_settings = Self::public_settings(&path, &text)?;
        Ok(HandlerSettings {
            sequence,
            path,
            public_settings,
        })
    }

    /// The sequence number the guest agent asks for (or the highest), and its settings.
    pub fn current(env: &HandlerEnvironment, from_env: Option<&str>) -> Result<Self, HandlerError> {
        let sequence = sequence_number(&env.config_folder, from_env)?;
        Self::read(&env.config_folder, sequence)
    }

    fn public_settings(path: &Path, text: &str) -> Result<serde_json::Value, HandlerError> {
        let missing = |detail: &str| HandlerError::NoPublicSettings {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        };
        let root: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|e| missing(&format!("not JSON: {e}")))?;
        let handler_settings = root
            .get("runtimeSettings")
            .ok_or_else(|| missing("no runtimeSettings"))?
            .get(0)
            .ok_or_else(|| missing("runtimeSettings is not a non-empty array"))?
            .get("handlerSettings")
            .ok_or_else(|| missing("no handlerSettings in runtimeSettings[0]"))?;
        if handler_settings
            .get("protectedSettings")
            .is_some_and(|p| !p.is_null() && p.as_str() != Some(""))
        {
            tracing::warn!(
                path = %path.display(),
                "protectedSettings are ignored: this extension has no protected settings"
            );
        }
        match handler_settings.get("publicSettings") {
            Some(value @ serde_json::Value::Object(_)) => Ok(value.clone()),
            // An escaped JSON string is handed on as is: the settings parser explains that pitfall.
            Some(value @ serde_json::Value::String(_)) => Ok(value.clone()),
            Some(_) => Err(missing("publicSettings is neither an object nor a string")),
            None => Err(missing("no publicSettings in handlerSettings")),
        }
    }
}

/// The systemd side of the handler: the unit file and `systemctl`.
///
/// Paths and the `systemctl` program are fields so that tests and unusual systems can point them
/// elsewhere; [`ServiceManager::system`] is the real machine's.
#[derive(Debug, Clone)]
pub struct ServiceManager {
    /// Where the unit file goes (`/etc/systemd/system`).
    pub unit_dir: PathBuf,
    /// Present when systemd is the running init (`/run/systemd/system`).
    pub systemd_marker: PathBuf,
    /// The `systemctl` program.
    pub systemctl: PathBuf,
}

/// What the unit runs and may write to.
#[derive(Debug, Clone)]
pub struct UnitSpec {
    /// The `akvvm` executable.
    pub executable: PathBuf,
    /// The arguments after the executable (`run --handler-environment ...`).
    pub arguments: Vec<String>,
    /// Directories the service writes (stores, state, status and log folders).
    pub writable_paths: Vec<PathBuf>,
}

/// Quotes one word for a systemd `ExecStart=` line.
fn systemd_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@".contains(c))
    {
        word.to_string()
    } else {
        let escaped = word
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%");
        format!("\"{escaped}\"")
    }
}

impl UnitSpec {
    /// The unit file's text: `Type=notify`, restarted on failure, hardened.
    pub fn render(&self) -> String {
        let mut exec = vec![systemd_quote(&self.executable.to_string_lossy())];
        exec.extend(self.arguments.iter().map(|a| systemd_quote(a)));
        let mut writable: Vec<String> = self
            .writable_paths
            .iter()
            .map(|p| format!("-{}", systemd_quote(&p.to_string_lossy())))
            .collect();
        writable.sort();
        writable.dedup();
        let writable_line = if writable.is_empty() {
            String::new()
        } else {
            format!("ReadWritePaths={}\n", writable.join(" "))
        };
        format!(
            "# Written by `akvvm handler enable`; rewritten on every enable.\n\
             [Unit]\n\
             Description=akvvm: keeps Azure Key Vault certificates installed and current\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=notify\n\
             NotifyAccess=main\n\
             ExecStart={exec}\n\
             ExecReload=/bin/kill -HUP $MAINPID\n\
             Restart=on-failure\n\
             RestartSec=10s\n\
             TimeoutStartSec=infinity\n\
             TimeoutStopSec=30s\n\
             UMask=0077\n\
             NoNewPrivileges=yes\n\
             ProtectSystem=strict\n\
             {writable_line}\
             ProtectHome=read-only\n\
             PrivateTmp=yes\n\
             PrivateDevices=yes\n\
             ProtectKernelTunables=yes\n\
             ProtectKernelModules=yes\n\
             ProtectKernelLogs=yes\n\
             ProtectControlGroups=yes\n\
             ProtectClock=yes\n\
             ProtectHostname=yes\n\
             RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n\
             RestrictNamespaces=yes\n\
             RestrictRealtime=yes\n\
             RestrictSUIDSGID=yes\n\
             LockPersonality=yes\n\
             SystemCallArchitectures=native\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            exec = exec.join(" "),
        )
    }
}

impl ServiceManager {
    /// The real machine's systemd.
    pub fn system() -> Self {
        ServiceManager {
            unit_dir: PathBuf::from("/etc/systemd/system"),
            systemd_marker: PathBuf::from("/run/systemd/system"),
            systemctl: PathBuf::from("systemctl"),
        }
    }

    /// Whether systemd runs this machine.
    pub fn available(&self) -> bool {
        self.systemd_marker.is_dir()
    }

    pub fn unit_path(&self) -> PathBuf {
        self.unit_dir.join(UNIT_NAME)
    }

    /// Writes the unit file when its text changed; returns whether it did.
    pub fn write_unit(&self, spec: &UnitSpec) -> Result<bool, HandlerError> {
        let path = self.unit_path();
        let text = spec.render();
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.unit_dir).map_err(|source| HandlerError::Write {
            path: self.unit_dir.clone(),
            source,
        })?;
        akvvm_cert::store::write_atomic(&path, text.as_bytes(), 0o644, None)?;
        Ok(true)
    }

    /// Removes the unit file; returns whether there was one.
    pub fn remove_unit(&self) -> Result<bool, HandlerError> {
        let path = self.unit_path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(HandlerError::Write { path, source }),
        }
    }

    /// Runs `systemctl ARGS...`.
    pub fn systemctl(&self, args: &[&str]) -> Result<(), HandlerError> {
        let command = format!("{} {}", self.systemctl.display(), args.join(" "));
        let output = Command::new(&self.systemctl)
            .args(args)
            .output()
            .map_err(|e| HandlerError::ServiceCommand {
                command: command.clone(),
                detail: e.to_string(),
            })?;
        if output.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            Err(HandlerError::ServiceCommand {
                command,
                detail: format!("{} {}", output.status, stderr),
            })
        }
    }

    /// Installs (or refreshes) the unit, enables it, and (re)starts it without waiting for the
    /// initial sync, so the handler's `enable` returns within seconds.
    pub fn enable(&self, spec: &UnitSpec) -> Result<(), HandlerError> {
        if self.write_unit(spec)? {
            self.systemctl(&["daemon-reload"])?;
        }
        self.systemctl(&["enable", UNIT_NAME])?;
        // A restart so that a new sequence number's settings are read.
        self.systemctl(&["restart", "--no-block", UNIT_NAME])
    }

    /// Stops and disables the service (the unit file stays).
    pub fn disable(&self) -> Result<(), HandlerError> {
        if !self.unit_path().exists() {
            return Ok(());
        }
        self.systemctl(&["disable", "--now", "--no-block", UNIT_NAME])
    }

    /// Stops, disables and removes the service.
    pub fn uninstall(&self) -> Result<(), HandlerError> {
        self.disable()?;
        if self.remove_unit()? {
            self.systemctl(&["daemon-reload"])?;
        }
        Ok(())
    }
}

/// The daemon's pid file: written by `akvvm run`, read by `akvvm sync --now`.
#[derive(Debug, Clone)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// `<state_directory>/akvvm.pid`.
    pub fn in_state_directory(state_directory: &Path) -> Self {
        PidFile {
            path: state_directory.join(PID_FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records this process as the daemon.
    pub fn write_own(&self) -> Result<(), HandlerError> {
        let text = format!("{}\n", std::process::id());
        Ok(akvvm_cert::store::write_atomic(
            &self.path,
            text.as_bytes(),
            0o644,
            None,
        )?)
    }

    /// Removes the file if it still names this process.
    pub fn remove_own(&self) {
        if self.read().ok().flatten() == Some(std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Sends SIGHUP to the recorded daemon (an immediate sync); returns its pid.
    pub fn request_sync(&self) -> Result<u32, HandlerError> {
        let pid = self.read()?.ok_or_else(|| HandlerError::NoDaemon {
            path: self.path.clone(),
            detail: "no pid file".to_string(),
        })?;
        let target = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| HandlerError::BadPidFile {
                path: self.path.clone(),
                found: pid.to_string(),
            })?;
        rustix::process::kill_process(target, rustix::process::Signal::HUP).map_err(|e| {
            HandlerError::NoDaemon {
                path: self.path.clone(),
                detail: format!("process {pid}: {e}"),
            }
        })?;
        Ok(pid)
    }

    /// Sends SIGTERM to the recorded daemon and waits up to `wait` for it to exit. Returns
    /// whether a daemon was running.
    pub fn stop(&self, wait: Duration) -> Result<bool, HandlerError> {
        let Some(pid) = self.read()? else {
            return Ok(false);
        };
        let Some(target) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return Err(HandlerError::BadPidFile {
                path: self.path.clone(),
                found: pid.to_string(),
            });
        };
        if rustix::process::kill_process(target, rustix::process::Signal::TERM).is_err() {
            // Gone already: the file is stale.
            let _ = std::fs::remove_file(&self.path);
            return Ok(false);
        }
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if rustix::process::test_kill_process(target).is_err() || !self.path.exists() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(HandlerError::StopTimeout { pid, wait })
    }

    /// The recorded pid, if the file exists.
    pub fn read(&self) -> Result<Option<u32>, HandlerError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                text.trim()
                    .parse::<u32>()
                    .map(Some)
                    .map_err(|_| HandlerError::BadPidFile {
                        path: self.path.clone(),
                        found: text.trim().chars().take(40).collect(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(HandlerError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVIRONMENT: &str = r#"[{"name":"Microsoft.Azure.KeyVault.KeyVaultForLinux","version":1.0,"handlerEnvironment":{"logFolder":"/var/log/azure/kv","configFolder":"/var/lib/waagent/kv/config","statusFolder":"/var/lib/waagent/kv/status","heartbeatFile":"/var/lib/waagent/kv/heartbeat.log"}}]"#;

    #[test]
    fn parses_the_guest_agents_file() {
        let env = HandlerEnvironment::parse(Path::new("/x/HandlerEnvironment.json"), ENVIRONMENT)
            .unwrap();
        assert_eq!(
            env,
            HandlerEnvironment {
                path: PathBuf::from("/x/HandlerEnvironment.json"),
                name: "Microsoft.Azure.KeyVault.KeyVaultForLinux".into(),
                log_folder: "/var/log/azure/kv".into(),
                config_folder: "/var/lib/waagent/kv/config".into(),
                status_folder: "/var/lib/waagent/kv/status".into(),
                heartbeat_file: Some("/var/lib/waagent/kv/heartbeat.log".into()),
            }
        );
    }

    #[test]
    fn relative_folders_are_taken_from_the_files_directory_and_version_may_be_a_string() {
        let text = r#"[{"version":"1.0","handlerEnvironment":{"logFolder":"log","configFolder":"config","statusFolder":"status"}}]"#;
        let env =
            HandlerEnvironment::parse(Path::new("/ext/HandlerEnvironment.json"), text).unwrap();
        assert_eq!(env.config_folder, PathBuf::from("/ext/config"));
        assert_eq!(env.heartbeat_file, None);
        assert_eq!(env.name, crate::status::HANDLER_NAME);
    }

    #[test]
    fn malformed_environment_names_the_file() {
        for text in [
            "",
            "[]",
            "{}",
            r#"[{"handlerEnvironment":{"logFolder":"l"}}]"#,
        ] {
            let err = HandlerEnvironment::parse(Path::new("/e/HandlerEnvironment.json"), text)
                .unwrap_err();
            assert_eq!(err.code(), "handler.malformed_environment", "{text}");
            assert!(
                err.to_string().contains("/e/HandlerEnvironment.json"),
                "{err}"
            );
        }
    }

    #[test]
    fn reading_retries_while_the_guest_agent_writes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HANDLER_ENVIRONMENT_FILE);
        std::fs::write(&path, "[{\"handlerEnv").unwrap();
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(60));
            std::fs::write(&writer_path, ENVIRONMENT).unwrap();
        });
        let env =
            HandlerEnvironment::read_with_retries(&path, 50, Duration::from_millis(10)).unwrap();
        writer.join().unwrap();
        assert_eq!(
            env.status_folder,
            PathBuf::from("/var/lib/waagent/kv/status")
        );
    }

    #[test]
    fn reading_gives_up_after_the_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HANDLER_ENVIRONMENT_FILE);
        let err =
            HandlerEnvironment::read_with_retries(&path, 3, Duration::from_millis(1)).unwrap_err();
        assert_eq!(err.code(), "handler.read");
        assert!(err.to_string().contains("HandlerEnvironment.json"));
    }

    #[test]
    fn discovery_prefers_explicit_then_working_dir_then_beside_the_executable() {
        let dir = tempfile::tempdir().unwrap();
        let ext = dir.path().join("ext");
        let bin = ext.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let exe = bin.join("akvvm");
        let elsewhere = dir.path().join("cwd");
        std::fs::create_dir_all(&elsewhere).unwrap();

        let err = discover_environment(None, &elsewhere, Some(&exe)).unwrap_err();
        assert_eq!(err.code(), "handler.environment_not_found");
        assert!(err.to_string().contains("--handler-environment"));

        std::fs::write(ext.join(HANDLER_ENVIRONMENT_FILE), ENVIRONMENT).unwrap();
        assert_eq!(
            discover_environment(None, &elsewhere, Some(&exe)).unwrap(),
            ext.join(HANDLER_ENVIRONMENT_FILE)
        );
        std::fs::write(elsewhere.join(HANDLER_ENVIRONMENT_FILE), ENVIRONMENT).unwrap();
        assert_eq!(
            discover_environment(None, &elsewhere, Some(&exe)).unwrap(),
            elsewhere.join(HANDLER_ENVIRONMENT_FILE)
        );
        assert_eq!(
            discover_environment(Some(Path::new("/given.json")), &elsewhere, Some(&exe)).unwrap(),
            PathBuf::from("/given.json")
        );
    }

    fn settings_file(public: &str) -> String {
        format!(
            r#"{{"runtimeSettings":[{{"handlerSettings":{{"protectedSettingsCertThumbprint":null,"publicSettings":{public}}}}}]}}"#
        )
    }

    #[test]
    fn the_highest_sequence_number_wins_unless_the_environment_names_one() {
        let dir = tempfile::tempdir().unwrap();
        for seq in [0, 2, 10] {
            std::fs::write(
                dir.path().join(format!("{seq}.settings")),
                settings_file(&format!(r#"{{"seq":{seq}}}"#)),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("HandlerState"), "x").unwrap();
        std::fs::write(dir.path().join("11.settings.tmp"), "x").unwrap();
        assert_eq!(sequence_number(dir.path(), None).unwrap(), 10);
        assert_eq!(sequence_number(dir.path(), Some("2")).unwrap(), 2);
        assert_eq!(sequence_number(dir.path(), Some("")).unwrap(), 10);
        assert_eq!(
            sequence_number(dir.path(), Some("x")).unwrap_err().code(),
            "handler.bad_sequence"
        );

        let settings = HandlerSettings::read(dir.path(), 10).unwrap();
        assert_eq!(settings.public_settings, serde_json::json!({"seq": 10}));
        assert_eq!(settings.path, dir.path().join("10.settings"));
    }

    #[test]
    fn an_empty_config_folder_says_no_settings_yet() {
        let dir = tempfile::tempdir().unwrap();
        let err = sequence_number(dir.path(), None).unwrap_err();
        assert_eq!(err.code(), "handler.no_settings");
    }

    #[test]
    fn settings_without_public_settings_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        for (i, text) in [
            r#"{"runtimeSettings":[]}"#.to_string(),
            r#"{"runtimeSettings":[{"handlerSettings":{}}]}"#.to_string(),
            settings_file("42"),
            "not json".to_string(),
        ]
        .iter()
        .enumerate()
        {
            std::fs::write(dir.path().join(format!("{i}.settings")), text).unwrap();
            let err = HandlerSettings::read(dir.path(), i as u64).unwrap_err();
            assert_eq!(err.code(), "handler.no_public_settings", "{text}");
            assert!(err.to_string().contains(&format!("{i}.settings")), "{err}");
        }
        // An escaped JSON string is passed on for the settings parser to explain.
        std::fs::write(
            dir.path().join("9.settings"),
            settings_file(r#""{\"a\":1}""#),
        )
        .unwrap();
        let settings = HandlerSettings::read(dir.path(), 9).unwrap();
        assert_eq!(settings.public_settings, serde_json::json!("{\"a\":1}"));
    }

    fn spec() -> UnitSpec {
        UnitSpec {
            executable: "/var/lib/waagent/ext dir/bin/akvvm".into(),
            arguments: vec![
                "run".into(),
                "--handler-environment".into(),
                "/x/HandlerEnvironment.json".into(),
            ],
            writable_paths: vec![
                "/var/lib/akvvm".into(),
                "/etc/ssl/kv".into(),
                "/var/lib/akvvm".into(),
            ],
        }
    }

    #[test]
    fn the_unit_is_notify_and_hardened() {
        let text = spec().render();
        assert!(text.contains("Type=notify\n"));
        assert!(text.contains(
            "ExecStart=\"/var/lib/waagent/ext dir/bin/akvvm\" run --handler-environment /x/HandlerEnvironment.json\n"
        ));
        assert!(
            text.contains("ReadWritePaths=-/etc/ssl/kv -/var/lib/akvvm\n"),
            "{text}"
        );
        for line in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "UMask=0077",
            "WantedBy=multi-user.target",
        ] {
            assert!(text.contains(line), "{line}");
        }
    }

    /// Writes the executable shell script `path` from a child `sh`, so that this process never
    /// holds a write descriptor on it. With tests running in parallel, another thread's fork
    /// inherits every descriptor open at that moment (until its exec closes them); had this
    /// process written the script itself, that copy of the write descriptor would make running
    /// the script fail with ETXTBSY ("Text file busy").
    fn write_script(path: &Path, body: &str) {
        let status = Command::new("/bin/sh")
            .args([
                "-c",
                "printf '%s' \"$2\" > \"$1\" && chmod 755 \"$1\"",
                "sh",
            ])
            .arg(path)
            .arg(body)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "writing {} failed: {status}",
            path.display()
        );
    }

    /// A `systemctl` stand-in that records its arguments, so the calls can be checked without
    /// touching the machine's systemd.
    fn recording_systemctl(dir: &Path) -> (ServiceManager, PathBuf) {
        let log = dir.join("systemctl.log");
        let script = dir.join("systemctl");
        write_script(
            &script,
            &format!("#!/bin/sh\necho \"$@\" >> '{}'\n", log.display()),
        );
        let manager = ServiceManager {
            unit_dir: dir.join("units"),
            systemd_marker: dir.to_path_buf(),
            systemctl: script,
        };
        (manager, log)
    }

    #[test]
    fn enable_is_idempotent_and_reloads_only_when_the_unit_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (manager, log) = recording_systemctl(dir.path());
        assert!(manager.available());
        manager.enable(&spec()).unwrap();
        manager.enable(&spec()).unwrap();
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            calls,
            "daemon-reload\nenable akvvm.service\nrestart --no-block akvvm.service\n\
             enable akvvm.service\nrestart --no-block akvvm.service\n"
        );
        assert_eq!(
            std::fs::read_to_string(manager.unit_path()).unwrap(),
            spec().render()
        );

        manager.uninstall().unwrap();
        assert!(!manager.unit_path().exists());
        let calls = std::fs::read_to_string(&log).unwrap();
        assert!(
            calls.ends_with("disable --now --no-block akvvm.service\ndaemon-reload\n"),
            "{calls}"
        );
        // Uninstalling twice is fine and calls nothing more.
        manager.uninstall().unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), calls);
    }

    #[test]
    fn a_failing_systemctl_is_reported_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("systemctl");
        write_script(
            &script,
            "#!/bin/sh\necho 'Unit akvvm.service not found.' >&2\nexit 5\n",
        );
        let manager = ServiceManager {
            unit_dir: dir.path().join("units"),
            systemd_marker: dir.path().join("absent"),
            systemctl: script,
        };
        assert!(!manager.available());
        let err = manager.enable(&spec()).unwrap_err();
        assert_eq!(err.code(), "handler.service_command");
        assert!(err.to_string().contains("daemon-reload"), "{err}");
        assert!(err.to_string().contains("not found"), "{err}");
    }

    #[test]
    fn pid_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let pid = PidFile::in_state_directory(dir.path());
        assert_eq!(pid.read().unwrap(), None);
        pid.write_own().unwrap();
        assert_eq!(pid.read().unwrap(), Some(std::process::id()));
        pid.remove_own();
        assert!(!pid.path().exists());
        // A daemon that is gone is reported as such.
        std::fs::write(pid.path(), "999999999").unwrap();
        assert_eq!(pid.request_sync().unwrap_err().code(), "handler.no_daemon");
        std::fs::remove_file(pid.path()).unwrap();
        assert_eq!(pid.request_sync().unwrap_err().code(), "handler.no_daemon");
        std::fs::write(pid.path(), "garbage").unwrap();
        assert_eq!(pid.read().unwrap_err().code(), "handler.bad_pid_file");
    }
}
