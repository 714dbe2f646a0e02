//! The local vault: Azure Key Vault, Entra ID and IMDS on loopback.
//!
//! Start it in-process with [`Emulator::start`] (listeners on `127.0.0.1:0` by default), or run
//! the `akvvm-emulator serve` binary (`src/bin/akvvm-emulator`, which also has `demo`: the local
//! vault, the akvvm agent and a rotation). Modules, each depending only on those listed before
//! it (besides [`error`] and [`redact`], which every module may use):
//! - [`error`]: [`AdminError`], why an operation on the model was refused (Key Vault wire codes);
//! - [`redact`]: what `Debug` output shows in place of a secret value or key;
//! - [`token`]: the JWTs the emulator signs and checks (access tokens, client assertions);
//! - [`tls`]: the CA and the server certificate of the HTTPS listener;
//! - [`certs`]: what a certificate is made of: policy, self-signed generation, imports, the
//!   managed secret's value;
//! - [`state`]: the model (vaults, secrets, certificates, identities, apps, roles) and every
//!   operation on it, RBAC, and the faults and request counters;
//! - [`persist`]: loading the persisted model and the token signing key;
//! - [`seed`]: the seed file applied at start;
//! - [`keyvault`]: the Key Vault data plane (secrets, certificates, deleted ones) and its auth;
//! - [`entra`]: the Entra ID v2 token endpoint for certificate-authenticated apps;
//! - [`imds`]: the managed identity token endpoint (plain http), Azure Arc's challenge;
//! - [`admin`]: the HTTP admin API under `/_emulator/`;
//! - [`server`]: the listeners, routing, fault injection and counting;
//! - [`emulator`]: starting it, and [`RunningEmulator`] with the Rust admin API as methods.

// Handlers return Key Vault / Entra / IMDS error answers as `Err(Response)` so that `?` ends a
// request early, as axum handlers commonly do; the large error variant is the point.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod certs;
pub mod emulator;
pub mod entra;
pub mod error;
pub mod imds;
pub mod keyvault;
pub mod persist;
pub mod redact;
pub mod seed;
pub mod server;
pub mod state;
pub mod tls;
pub mod token;

pub use emulator::{Emulator, EmulatorConfig, RunningEmulator};
pub use error::AdminError;
pub use state::{
    AppCredentials, AppSpec, AuthorizationModel, Booting, CallerCount, Faults, Identity,
    IdentitySpec, ListPaging, NamedCertificate, NamedSecret, NetworkDenial, RequestCount, RoleSpec,
    SecretSpec, Throttle, VaultSpec,
};
