//! `HandlerEnvironment.json`, the file the guest agent writes beside the extension: where it is,
//! and what it says (the log, config and status folders), read with retries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::error::HandlerError;
use super::names::{EXTENSION_VERSION_ENV, HANDLER_ENVIRONMENT_FILE, HANDLER_NAME};

/// How many times `HandlerEnvironment.json` is read before giving up, by default.
pub const DEFAULT_READ_ATTEMPTS: u32 = 10;

/// The pause between two reads of `HandlerEnvironment.json`, by default.
pub const DEFAULT_READ_DELAY: Duration = Duration::from_millis(500);

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
    /// The extension's version in the name of the directory holding this file
    /// (`Microsoft.Azure.KeyVault.KeyVaultForLinux-4.0.1`), when it has one.
    pub directory_version: Option<String>,
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
            name: entry.name.unwrap_or_else(|| HANDLER_NAME.to_string()),
            log_folder: absolute(env.log_folder),
            config_folder: absolute(env.config_folder),
            status_folder: absolute(env.status_folder),
            heartbeat_file: env.heartbeat_file.map(absolute),
            directory_version: std::path::absolute(path).ok().and_then(|p| {
                let dir = p.parent()?.file_name()?.to_str()?.to_string();
                crate::settings::mode::version_of_directory(&dir).map(str::to_string)
            }),
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
            let result = crate::trusted::read_to_string("handler environment", path)
                .map_err(|e| HandlerError::from_trusted_read(path, e))
                .and_then(|text| Self::parse(path, &text));
            match result {
                Ok(env) => return Ok(env),
                // Waiting does not make a file root's.
                Err(err @ HandlerError::Untrusted(_)) => return Err(err),
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

impl HandlerEnvironment {
    /// The extension version the guest agent runs: `from_env` (the value of
    /// [`EXTENSION_VERSION_ENV`]) when set, else the version in the extension directory's name.
    /// It chooses akvvm's mode ([`crate::settings::mode`]).
    pub fn extension_version(
        &self,
        from_env: Option<&str>,
    ) -> Option<crate::settings::ExtensionVersion> {
        use crate::settings::{ExtensionVersion, VersionOrigin};
        match from_env.map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => Some(ExtensionVersion::new(v, VersionOrigin::GuestAgentVariable)),
            None => self
                .directory_version
                .as_deref()
                .map(|v| ExtensionVersion::new(v, VersionOrigin::HandlerDirectory)),
        }
    }

    /// [`Self::extension_version`] with [`EXTENSION_VERSION_ENV`] read from this process's
    /// environment (set for handler commands; the daemon the service manager starts goes by the
    /// directory's name).
    pub fn running_version(&self) -> Option<crate::settings::ExtensionVersion> {
        self.extension_version(std::env::var(EXTENSION_VERSION_ENV).ok().as_deref())
    }
}

/// Finds `HandlerEnvironment.json` where the guest agent puts it: the explicit path if given,
/// else in the extension directory the guest agent names in `AZURE_GUEST_AGENT_EXTENSION_PATH`
/// (`extension_path`), else beside the executable or one directory above it (the extension
/// directory holds `bin/akvvm`).
///
/// Never the working directory: the guest agent runs handler commands there, but so does an
/// administrator who types `cd /tmp; sudo akvvm sync --once`, and a file planted in `/tmp` by
/// anyone would name the settings, and so the hooks run as root. The executable's directory
/// and the guest agent's variable point where only root writes; whatever is found is still
/// read only if root owns it ([`crate::trusted`]).
pub fn discover_environment(
    explicit: Option<&Path>,
    extension_path: Option<&Path>,
    executable: Option<&Path>,
) -> Result<PathBuf, HandlerError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let mut candidates = Vec::new();
    if let Some(dir) = extension_path.filter(|d| d.is_absolute()) {
        candidates.push(dir.join(HANDLER_ENVIRONMENT_FILE));
    }
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
                directory_version: None,
            }
        );
    }

    #[test]
    fn the_extension_version_comes_from_the_guest_agent_or_the_directory() {
        let path = Path::new(
            "/var/lib/waagent/Microsoft.Azure.KeyVault.KeyVaultForLinux-4.0.1/HandlerEnvironment.json",
        );
        let env = HandlerEnvironment::parse(path, ENVIRONMENT).unwrap();
        assert_eq!(env.directory_version.as_deref(), Some("4.0.1"));
        let from_directory = env.extension_version(None).unwrap();
        assert_eq!(from_directory.version, "4.0.1");
        assert_eq!(
            from_directory.origin,
            crate::settings::VersionOrigin::HandlerDirectory
        );
        let from_env = env.extension_version(Some("3.0.2")).unwrap();
        assert_eq!(from_env.version, "3.0.2");
        assert_eq!(
            from_env.origin,
            crate::settings::VersionOrigin::GuestAgentVariable
        );
        assert_eq!(env.extension_version(Some(" ")).unwrap().version, "4.0.1");
        let unversioned =
            HandlerEnvironment::parse(Path::new("/x/HandlerEnvironment.json"), ENVIRONMENT)
                .unwrap();
        assert_eq!(unversioned.extension_version(None), None);
    }

    #[test]
    fn relative_folders_are_taken_from_the_files_directory_and_version_may_be_a_string() {
        let text = r#"[{"version":"1.0","handlerEnvironment":{"logFolder":"log","configFolder":"config","statusFolder":"status"}}]"#;
        let env =
            HandlerEnvironment::parse(Path::new("/ext/HandlerEnvironment.json"), text).unwrap();
        assert_eq!(env.config_folder, PathBuf::from("/ext/config"));
        assert_eq!(env.heartbeat_file, None);
        assert_eq!(env.name, HANDLER_NAME);
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
    fn discovery_takes_the_guest_agents_places_never_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let ext = dir.path().join("ext");
        let bin = ext.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let exe = bin.join("akvvm");
        let agent_dir = dir.path().join("agent");
        std::fs::create_dir_all(&agent_dir).unwrap();

        // A file in the working directory is never looked at.
        let cwd = std::env::current_dir().unwrap();
        let err = discover_environment(None, None, Some(&exe)).unwrap_err();
        assert_eq!(err.code(), "handler.environment_not_found");
        assert!(err.to_string().contains("--handler-environment"));
        assert!(
            !err.to_string().contains(&cwd.display().to_string()),
            "{err}"
        );

        std::fs::write(ext.join(HANDLER_ENVIRONMENT_FILE), ENVIRONMENT).unwrap();
        assert_eq!(
            discover_environment(None, None, Some(&exe)).unwrap(),
            ext.join(HANDLER_ENVIRONMENT_FILE)
        );
        // The guest agent's AZURE_GUEST_AGENT_EXTENSION_PATH comes first; a relative one is
        // ignored.
        std::fs::write(agent_dir.join(HANDLER_ENVIRONMENT_FILE), ENVIRONMENT).unwrap();
        assert_eq!(
            discover_environment(None, Some(&agent_dir), Some(&exe)).unwrap(),
            agent_dir.join(HANDLER_ENVIRONMENT_FILE)
        );
        assert_eq!(
            discover_environment(None, Some(Path::new("agent")), Some(&exe)).unwrap(),
            ext.join(HANDLER_ENVIRONMENT_FILE)
        );
        assert_eq!(
            discover_environment(Some(Path::new("/given.json")), Some(&agent_dir), Some(&exe))
                .unwrap(),
            PathBuf::from("/given.json")
        );
    }

    #[test]
    fn an_environment_others_can_write_is_refused_at_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HANDLER_ENVIRONMENT_FILE);
        std::fs::write(&path, ENVIRONMENT).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err =
            HandlerEnvironment::read_with_retries(&path, 1000, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.code(), "file.writable_by_others");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(HandlerEnvironment::read_with_retries(&path, 1, Duration::ZERO).is_ok());
    }
}
