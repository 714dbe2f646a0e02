//! The handler's file formats: what the Azure guest agent hands a VM extension.
//!
//! The guest agent runs the commands of `HandlerManifest.json` from the extension's directory,
//! beside `HandlerEnvironment.json`, which names the config, status and log folders. This module
//! owns:
//! - `environment`: [`HandlerEnvironment`], that file, read with retries (the guest agent may
//!   still be writing it), and where to find it ([`discover_environment`]);
//! - `settings`: [`HandlerSettings`], the highest `<seq>.settings` in the config folder (or the
//!   one the `ConfigSequenceNumber` environment variable names) and its `publicSettings`;
//! - [`HandlerError`], the errors of the handler: of these files, and of the systemd unit and
//!   the pid file, which stay in `akvvm::handler` with the handler commands.

mod environment;
mod settings;

use std::path::PathBuf;
use std::time::Duration;

pub use environment::{
    DEFAULT_READ_ATTEMPTS, DEFAULT_READ_DELAY, EXTENSION_PATH_ENV, EXTENSION_VERSION_ENV,
    HANDLER_ENVIRONMENT_FILE, HandlerEnvironment, discover_environment,
};
pub use settings::{HandlerSettings, SEQUENCE_ENV, sequence_number, sequence_numbers};

/// The handler name: the default `name` of `HandlerEnvironment.json`, reported in the status
/// file.
pub const HANDLER_NAME: &str = "Microsoft.Azure.KeyVault.KeyVaultForLinux";

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
