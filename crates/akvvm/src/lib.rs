//! The akvvm agent library: everything the `akvvm` binary does, as functions and types.
//!
//! Dependencies follow the data: settings are read, an identity gets a token, the vault client
//! reads secrets with it, the sync engine installs them in the store (`akvvm-cert`) and writes
//! the status. No module imports one that imports it back; `metrics` and `status` import
//! nothing of the crate, and the webhook feeds the daemon's queue.
//!
//! Modules, one line each:
//! - [`agent`]: the agent as one call (`agent::run`): the engine, the daemon, the webhook and
//!   metrics listeners, wired once for `akvvm run`, the test harness and the end-to-end tests.
//! - [`settings`], [`validate`], [`cscfg`], [`trusted`]: the settings and their validator,
//!   `akvvm validate`, Cloud Services `.cscfg` checks and the trusted-file reader. They live in
//!   the `akvvm-settings` crate, which never talks to the network, and are re-exported here at
//!   their old paths (as are the handler's file formats in [`handler`] and
//!   [`identity::ManagedIdentityId`]).
//! - [`http`]: the one HTTP client builder (CA roots, host overrides, proxies) and the retry
//!   policy as data.
//! - [`identity`]: Entra ID tokens: the managed identity through IMDS or Azure Arc (`imds`), the
//!   bootstrap certificate with JWT client assertions (`bootstrap`, `assertion`), token
//!   caching (`cache`).
//! - [`vault`]: reading secrets through the official Key Vault SDK (`client`), the transport
//!   with akvvm's retries (`transport`), the 401 challenge (`challenge`), and errors that name
//!   the identity, the vault and the missing right (`errors`).
//! - [`sync`]: the engine that keeps every observed certificate installed and current
//!   (`engine`, `report`, `errors`), one vault client per vault (`connect`), the polling loop and
//!   its push queue (`daemon`), reload hooks and their journal (`hook`).
//! - [`status`]: the VM extension status file.
//! - [`handler`]: running as a VM extension handler: the systemd unit (`systemd`), the pid file
//!   (`pid`), and, re-exported from `akvvm-settings`, `HandlerEnvironment.json` and
//!   `<seq>.settings`.
//! - [`listener`]: the one accept loop (HTTP or TLS) of the webhook, the metrics endpoint and
//!   the local vault.
//! - [`logship`]: `loggingSettings`: the agent's log records sent to Fluentd (Forward
//!   protocol) by a `tracing` layer, a bounded queue and a sender thread.
//! - [`metrics`]: Prometheus metrics and their `/metrics` listener, fed through a
//!   `MetricsSource`.
//! - [`webhook`]: the Event Grid webhook that queues pushed certificates for the daemon.
//! - `fuzzing` (hidden): the fuzz harness of the webhook, shared by `fuzz/` and the tests (those
//!   of the settings, handler and `.cscfg` parsers are in `akvvm_settings::fuzzing`).
//!
//! Certificates and the store live in the `akvvm-cert` crate, re-exported as [`cert`]. Every
//! error type has stable codes (`domain.reason`, see `docs/errors.md`) from
//! [`cert::error_codes!`].

pub use akvvm_cert as cert;

pub use akvvm_settings::{cscfg, settings, trusted, validate};

pub mod agent;
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
pub mod http;
pub mod identity;
pub mod listener;
pub mod logship;
pub mod metrics;
pub mod status;
pub mod sync;
pub mod vault;
pub mod webhook;
