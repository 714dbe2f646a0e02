//! Running as a VM extension handler.
//!
//! The Azure guest agent runs the commands of `HandlerManifest.json` from the extension's
//! directory, beside `HandlerEnvironment.json`, which names the config, status and log folders.
//! This module owns (the first two and the error type live in `akvvm-settings`, re-exported here):
//! - `environment`: [`HandlerEnvironment`], that file, read with retries (the guest agent may
//!   still be writing it), and where to find it ([`discover_environment`]);
//! - `settings`: [`HandlerSettings`], the highest `<seq>.settings` in the config folder (or the
//!   one the `ConfigSequenceNumber` environment variable names) and its `publicSettings`;
//! - `systemd`: [`ServiceManager`], the systemd unit that runs `akvvm run` (written and started
//!   by `enable`, stopped by `disable`, removed by `uninstall`);
//! - `pid`: [`PidFile`], the daemon's pid file, the control channel `akvvm sync --now` signals;
//! - [`HandlerError`], the errors of all of these.
//!
//! The handler commands themselves (`akvvm handler install|enable|...`) are thin wiring in the
//! CLI over these pieces; to support a new handler command, add it there.

mod pid;
mod systemd;

// The file formats (`environment`, `settings`) and the error type live in `akvvm-settings`.
pub use akvvm_settings::handler::{
    DEFAULT_READ_ATTEMPTS, DEFAULT_READ_DELAY, EXTENSION_PATH_ENV, EXTENSION_VERSION_ENV,
    HANDLER_ENVIRONMENT_FILE, HandlerEnvironment, HandlerError, HandlerSettings, SEQUENCE_ENV,
    discover_environment, sequence_number, sequence_numbers,
};
pub use pid::{PID_FILE_NAME, PidFile};
pub use systemd::{ServiceManager, UNIT_NAME, UnitSpec};
