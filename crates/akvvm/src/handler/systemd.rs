//! The systemd side of the handler: the unit file that runs `akvvm run` ([`UnitSpec`]) and
//! `systemctl` ([`ServiceManager`]).

use std::path::PathBuf;
use std::process::Command;

use super::HandlerError;

/// The name of the systemd unit.
pub const UNIT_NAME: &str = "akvvm.service";
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
             LimitNOFILE=1024\n\
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
             CapabilityBoundingSet=CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_KILL\n\
             SystemCallFilter=@system-service\n\
             SystemCallErrorNumber=EPERM\n\
             ProtectProc=invisible\n\
             MemoryDenyWriteExecute=yes\n\
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

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
}
