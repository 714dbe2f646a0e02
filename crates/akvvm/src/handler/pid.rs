//! The daemon's control channel: its pid file, written by `akvvm run`; `akvvm sync --now` sends
//! SIGHUP through it, and the handler's `disable` SIGTERM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::HandlerError;

/// The name of the daemon's pid file, in the agent's state directory.
pub const PID_FILE_NAME: &str = "akvvm.pid";
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
