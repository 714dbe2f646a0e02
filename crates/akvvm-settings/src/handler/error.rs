//! [`HandlerError`]: the errors of the handler's files (here) and of its systemd unit and pid
//! file (in `akvvm::handler`), with their `handler.*` codes.

use std::path::PathBuf;
use std::time::Duration;

use super::names::{HANDLER_ENVIRONMENT_FILE, SEQUENCE_ENV};

/// Errors of the handler: its environment, settings, systemd unit and pid file.
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
    /// `HandlerEnvironment.json` or `<seq>.settings` could be written by someone but root.
    #[error(transparent)]
    Untrusted(#[from] crate::trusted::Untrusted),
}

impl HandlerError {
    /// [`HandlerError::Read`] or [`HandlerError::Untrusted`] from [`crate::trusted::read`].
    pub(crate) fn from_trusted_read(path: &std::path::Path, error: crate::trusted::Read) -> Self {
        match error {
            crate::trusted::Read::Io(source) => HandlerError::Read {
                path: path.to_path_buf(),
                source,
            },
            crate::trusted::Read::Untrusted(e) => HandlerError::Untrusted(e),
        }
    }
}

akvvm_cert::error_codes! {
    HandlerError {
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
        HandlerError::Write { .. } => "handler.write",
    }
    passes through {
        HandlerError::WriteFile(e) => e,
        HandlerError::Untrusted(e) => e,
    }
}
