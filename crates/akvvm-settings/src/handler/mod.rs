//! The handler's file formats: what the Azure guest agent hands a VM extension.
//!
//! The guest agent runs the commands of `HandlerManifest.json` from the extension's directory,
//! beside `HandlerEnvironment.json`, which names the config, status and log folders. This module
//! owns:
//! - `environment`: [`HandlerEnvironment`], that file, read with retries (the guest agent may
//!   still be writing it), and where to find it ([`discover_environment`]);
//! - `settings`: [`HandlerSettings`], the highest `<seq>.settings` in the config folder (or the
//!   one the `ConfigSequenceNumber` environment variable names) and its `publicSettings`;
//! - `names`: the handler's name, its files and the guest agent's environment variables;
//! - `error`: [`HandlerError`], the errors of the handler: of these files, and of the systemd
//!   unit and the pid file, which stay in `akvvm::handler` with the handler commands.

mod environment;
mod error;
mod names;
mod settings;

pub use environment::{
    DEFAULT_READ_ATTEMPTS, DEFAULT_READ_DELAY, HandlerEnvironment, discover_environment,
};
pub use error::HandlerError;
pub use names::{
    EXTENSION_PATH_ENV, EXTENSION_VERSION_ENV, HANDLER_ENVIRONMENT_FILE, HANDLER_NAME, SEQUENCE_ENV,
};
pub use settings::{HandlerSettings, sequence_number, sequence_numbers};
