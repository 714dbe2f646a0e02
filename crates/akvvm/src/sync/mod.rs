//! The sync engine: keeps every observed certificate installed and current.
//!
//! [`Engine::cycle`] checks certificates concurrently (at most `concurrencyPerVault` requests in
//! flight per vault; one certificate's failure never delays another): one versionless GET per
//! certificate (a pinned version is fetched once and never replaced); a version equal to the one
//! installed is neither parsed nor written; a new one is decoded, installed in the store, recorded
//! in the state file, and followed by its reload hook ([`hook`]).
//!
//! [`daemon::run`] repeats cycles every `pollingIntervalInS` (with jitter), retries failing
//! certificates with a growing backoff, keeps the status file current ([`crate::status`]),
//! honours `requireInitialSync`, tells systemd when it is ready, takes the certificates pushed to
//! it between cycles ([`daemon::SyncRequests`]), and stops cleanly on its cancellation token
//! (never in the middle of a write). [`crate::agent`] starts it with the listeners that feed it.
//!
//! Modules:
//! - `engine`: [`Engine`] and its options, the state file's place, the polling jitter.
//! - `report`: what a cycle found ([`CycleReport`], [`CertReport`], [`CertOutcome`]) and each
//!   certificate's status-file line.
//! - `errors`: [`SyncError`] (one certificate's check) and [`SetupError`] (building the engine).
//! - [`list`]: the list check, one paged list of a vault's secrets instead of a GET per
//!   certificate, and why it cannot miss a version.
//! - [`connect`]: from settings to one vault client per vault.
//! - [`daemon`]: the polling loop of `akvvm run`.
//! - [`hook`]: reload hooks and their journal.
//! - [`state`]: the state file, the agent's record of what it installed for each URL, and its
//!   journal of changed entries ([`state::journal`]).
//!
//! To add a step to a certificate's check, extend `Engine::check_inner`; to report something new,
//! add it to [`CertOutcome`] and to [`CertReport::substatus`].

mod batch_hook;
pub mod connect;
pub mod daemon;
mod engine;
mod errors;
pub mod hook;
pub mod list;
mod prune_removed;
mod report;
pub mod state;
pub mod state_dir;

pub use engine::{
    Engine, EngineOptions, INITIAL_RETRY_DELAY, MAX_RETRY_DELAY, POLL_JITTER, STATE_FILE_NAME,
    jittered_interval, startup_pause, state_file_in, state_file_path,
};
pub use errors::{SetupError, SyncError};
pub use report::{CertOutcome, CertReport, CycleReport, HookOutcome, InstalledInfo};
