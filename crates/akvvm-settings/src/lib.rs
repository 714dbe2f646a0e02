//! What a deployment author's tools need from akvvm: the extension's settings and their
//! validator, `akvvm validate`, the handler's file formats and the `.cscfg` checks. This crate
//! never talks to the network: it depends on no HTTP client, TLS stack or async runtime, only on
//! `akvvm-cert` and plain parsing crates, and sits at the bottom of the agent's dependency graph
//! (the `akvvm` library re-exports its modules at their old paths).
//!
//! Modules, one line each:
//! - [`settings`]: the extension's public settings, validated from JSON (`model` the validated
//!   types, `read` the field reader and diagnostic builder, `parse` the settings object, `keys`
//!   the keys each object accepts, `secrets` observed certificates, `authentication`,
//!   `own_options` akvvm's own options, `secret_url`, `diagnostic`).
//! - [`validate`]: `akvvm validate`: settings inside ARM templates, extension resources and
//!   handler settings files (`input`), ARM expressions and parameters (`arm`), the report
//!   (`report`).
//! - [`handler`]: the handler's file formats: `HandlerEnvironment.json` (`environment`),
//!   `<seq>.settings` (`settings`), and [`handler::HandlerError`], the errors of the handler.
//! - [`identity_id`]: [`identity_id::ManagedIdentityId`], how `msiClientId` names a
//!   user-assigned managed identity.
//! - [`trusted`]: reading a file only when nobody but root could have written it.
//! - [`cscfg`]: Cloud Services `.cscfg` files for `akvvm cscfg check`.
//! - `fuzzing` (hidden): the fuzz harnesses of the settings, handler and `.cscfg` parsers, shared
//!   by `fuzz/` and the tests.
//!
//! No file imports one that imports it back: shared types have files of their own
//! (`settings/model.rs` the validated settings, `settings/ctx.rs` the parser's state,
//! `settings/keys.rs` the key tables, `handler/error.rs`, `handler/names.rs`,
//! `validate/extension.rs`).
//!
//! Every error type has stable codes (`domain.reason`, see `docs/errors.md`) from
//! [`akvvm_cert::error_codes!`].

pub mod cscfg;
#[doc(hidden)]
pub mod fuzzing;
pub mod handler;
pub mod identity_id;
pub mod settings;
pub mod trusted;
pub mod validate;
