//! The akvvm agent library: everything the `akvvm` binary does, as functions and types.
//!
//! One module per domain:
//! - [`settings`]: the extension's public settings, parsed from the documented JSON and validated.
//! - [`validate`]: `akvvm validate`: finding settings inside ARM templates, extension resources
//!   and handler settings files, resolving ARM parameters, and producing a report.
//! - [`http`]: the one HTTP client builder (extra CA roots, host overrides, proxies) and the
//!   retry policy as data.
//! - [`identity`]: Entra ID tokens: managed identity through IMDS, and the bootstrap
//!   certificate (`KeyVaultForPaaS`) with JWT client assertions; token caching.
//! - [`vault`]: reading secrets through the official Key Vault SDK, with akvvm's credentials,
//!   transport and retries, and errors that name the identity, the vault and the missing right.
//!
//! Certificates and the store live in the `akvvm-cert` crate, re-exported as [`cert`].

pub use akvvm_cert as cert;

pub mod cscfg;
pub mod handler;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod settings;
pub mod status;
pub mod sync;
pub mod validate;
pub mod vault;
pub mod webhook;
