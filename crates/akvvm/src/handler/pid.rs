//! The daemon's control channel: its pid file, written by `akvvm run`; `akvvm sync --now` sends
//! SIGHUP through it, and the handler's `disable` SIGTERM. A pid is signalled only while it is a
//! running `akvvm` ([`is_akvvm`]): a stale file naming a pid since reused by another process
//! never gets that process signalled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::HandlerError;

/// The name of the daemon's pid file, in the agent's state directory.
pub const PID_FILE_NAME: &str = "akvvm.pid";
/// The name the daemon runs under (`/proc/<pid>/comm`, or the file name of `/proc/<pid>/exe`).
pub const DAEMON_NAME: &str = "akvvm";

/// Why a pid is not the running daemon ([`is_akvvm`]): the `detail` of
/// [`HandlerError::NoDaemon`].
#[derive(Debug, thiserror::Error)]
pub enum NotAkvvm {
    #[error("no process {pid} ({source})")]
    NoProcess { pid: u32, source: std::io::Error },
    #[error("process {pid} has exited")]
    Exited { pid: u32 },
    #[error("process {pid} is `{comm}`, not {DAEMON_NAME}: the pid file is stale")]
    Other { pid: u32, comm: String },
}

/// Whether `pid` is a running process named [`DAEMON_NAME`]; `Err` says what it is instead.
pub fn is_akvvm(pid: u32) -> Result<(), NotAkvvm> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_err(|source| NotAkvvm::NoProcess { pid, source })?;
    let comm = comm.trim_end_matches('\n');
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && matches!(
            stat.rsplit(") ").next().and_then(|s| s.chars().next()),
            Some('Z' | 'X')
        )
    {
        return Err(NotAkvvm::Exited { pid });
    }
    if comm == DAEMON_NAME {
        return Ok(());
    }
    // The executable may have been replaced (an update): "/path/akvvm (deleted)".
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let exe_name = exe.as_deref().and_then(Path::file_name).map(|n| {
        n.to_string_lossy()
            .trim_end_matches(" (deleted)")
            .to_string()
    });
    if exe_name.as_deref() == Some(DAEMON_NAME) {
        return Ok(());
    }
    Err(NotAkvvm::Other {
        pid,
        comm: comm.to_string(),
    })
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
        is_akvvm(pid).map_err(|detail| HandlerError::NoDaemon {
            path: self.path.clone(),
            detail: detail.to_string(),
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
        if let Err(detail) = is_akvvm(pid) {
            tracing::info!(path = %self.path.display(), %detail, "removing a stale pid file");
            let _ = std::fs::remove_file(&self.path);
            return Ok(false);
        }
        if rustix::process::kill_process(target, rustix::process::Signal::TERM).is_err() {
            // Gone already: the file is stale.
            let _ = std::fs::remove_file(&self.path);
            return Ok(false);
        }
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if is_akvvm(pid).is_err() || !self.path.exists() {
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

    /// A `sleep 1000` started under `name` (a copy of the program named so).
    fn sleeper(dir: &Path, name: &str) -> std::process::Child {
        let program = dir.join(name);
        std::fs::copy("/bin/sleep", &program).unwrap();
        std::process::Command::new(&program)
            .arg("1000")
            .spawn()
            .unwrap()
    }

    #[test]
    fn a_pid_that_is_not_akvvm_is_never_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let pid = PidFile::in_state_directory(dir.path());
        let mut other = sleeper(dir.path(), "sleep");
        std::fs::write(pid.path(), other.id().to_string()).unwrap();

        let err = pid.request_sync().unwrap_err();
        assert_eq!(err.code(), "handler.no_daemon");
        assert!(err.to_string().contains("is `sleep`, not akvvm"), "{err}");
        assert!(!pid.stop(Duration::from_secs(5)).unwrap());
        assert!(!pid.path().exists(), "the stale pid file is removed");
        // SIGHUP or SIGTERM would have ended `sleep`.
        assert!(
            other.try_wait().unwrap().is_none(),
            "the other process was signalled"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn a_running_akvvm_is_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let pid = PidFile::in_state_directory(dir.path());
        let mut daemon = sleeper(dir.path(), "akvvm");
        std::fs::write(pid.path(), daemon.id().to_string()).unwrap();
        assert_eq!(pid.request_sync().unwrap(), daemon.id());
        let status = daemon.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(rustix::process::Signal::HUP.as_raw())
        );
    }
}
