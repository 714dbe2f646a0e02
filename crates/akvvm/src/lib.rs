//! The akvvm agent library: everything the `akvvm` binary does, as functions and types.
//!
//! One module per domain:
//! - [`settings`]: the extension's public settings, raw (as documented) and validated.
//! - [`validate`]: `akvvm validate`: finding settings inside ARM templates, extension resources
//!   and handler settings files, resolving ARM parameters, and producing a report.
//!
//! Certificates and the store live in the `akvvm-cert` crate, re-exported as [`cert`].

pub use akvvm_cert as cert;

pub mod handler;
pub mod http;
pub mod identity;
pub mod settings;
pub mod status;
pub mod sync;
pub mod validate;
pub mod vault;
