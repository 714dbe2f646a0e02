//! The local vault: Azure Key Vault, Entra ID and IMDS on loopback.
//!
//! Start it in-process with [`Emulator::start`] (listeners on `127.0.0.1:0` by default), or run
//! the `akvvm-emulator serve` binary. Modules:
//! - [`keyvault`]: the Key Vault data plane (secrets, deleted secrets) and its auth;
//!   [`certs`]: certificates;
//! - [`imds`]: the managed identity token endpoint (plain http);
//! - [`entra`]: the Entra ID v2 token endpoint for certificate-authenticated apps;
//! - [`admin`]: the admin API (HTTP under `/_emulator/`, and methods on [`RunningEmulator`]);
//! - [`seed`]: the seed file; [`state`]: the model, faults and counters;
//! - [`server`]: listeners, fault injection and counting; [`tls`]: the CA; [`token`]: JWTs.

// Handlers return Key Vault / Entra / IMDS error answers as `Err(Response)` so that `?` ends a
// request early, as axum handlers commonly do; the large error variant is the point.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod certs;
pub mod entra;
pub mod imds;
pub mod keyvault;
pub mod persist;
pub mod seed;
pub mod server;
pub mod state;
pub mod tls;
pub mod token;

pub use entra::{AppCredentials, AppSpec};
pub use server::{Emulator, EmulatorConfig, RunningEmulator};
pub use state::{
    AdminError, AuthorizationModel, Faults, Identity, IdentitySpec, RequestCount, SecretSpec,
    Throttle,
};
