//! The model and every operation on it: vaults and their secrets and certificates, identities,
//! app registrations and role assignments (all persisted when asked), plus faults and request
//! counters (memory only).
//!
//! [`State`] holds the model behind a lock; every change goes through one of its methods (or a
//! function on a [`Vault`] called inside [`State::with_vault`]), used alike by the Rust admin API
//! ([`crate::RunningEmulator`]), the HTTP admin API ([`crate::admin`]), the seed file
//! ([`crate::seed`]) and the Key Vault data plane ([`crate::keyvault`]).
//! - [`model`]: the persisted data;
//! - [`rbac`]: permissions, built-in roles, authorization models;
//! - [`faults`]: faults and request counters ([`Traffic`]);
//! - [`vaults`]: creating vaults (from a [`VaultSpec`]), granting and revoking roles;
//! - [`secrets`]: secret versions, updates, soft delete, purge and recovery;
//! - [`certificates`]: certificate versions with their managed secrets, rotation, deletion;
//! - [`certificate_backup`]: certificate backup blobs and their restore;
//! - [`principals`]: managed identities, app registrations, resolving a principal's name.
//!
//! To add a kind of object, add it to [`Model`] and give it operations in the sibling module
//! that owns its kind (or a new one).

pub mod certificate_backup;
pub mod certificates;
pub mod faults;
pub mod model;
pub mod principals;
pub mod rbac;
pub mod secrets;
pub mod vaults;

use std::path::PathBuf;
use std::sync::Mutex;

pub use faults::{
    Booting, CallerCount, FaultAction, Faults, InFlightGuard, KEY_VAULT_SECRETS_LIMIT,
    KEY_VAULT_SECRETS_WINDOW_MS, ListPaging, NetworkDenial, RequestCount, RequestStats, ScopeStats,
    Throttle, ThrottlePreset, Traffic,
};
pub use model::{
    App, Certificate, CertificateVersion, ChallengeForm, DeletedCertificate, DeletedSecret,
    Identity, Model, PendingOperation, RECOVERABLE_DAYS, RECOVERY_LEVEL, RegisteredCertificate,
    Secret, SecretVersion, Vault,
};
pub use principals::{AppCredentials, AppSpec, IdentitySpec};
pub use rbac::{AuthorizationModel, Permission, RoleAssignment, expand_role};
pub use secrets::{SecretSpec, SecretUpdate};
pub use vaults::{NamedCertificate, NamedSecret, RoleSpec, VaultSpec};

use crate::error::{AdminError, not_found};
use crate::token::TokenIssuer;
use akvvm_cert::locks::MutexExt;

/// The shared state behind every listener and the admin API.
pub struct State {
    model: Mutex<Model>,
    /// Faults and request counters (memory only).
    pub traffic: Traffic,
    pub issuer: TokenIssuer,
    /// Where the model is saved after each change, when persisting.
    persist_path: Option<PathBuf>,
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn new_version() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Key Vault object names: `^[0-9a-zA-Z-]{1,127}$`.
pub fn valid_object_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Vault names: 3-24 characters, letters, digits and dashes, starting with a letter.
pub fn valid_vault_name(name: &str) -> bool {
    (3..=24).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl State {
    pub fn new(mut model: Model, issuer: TokenIssuer, persist_path: Option<PathBuf>) -> Self {
        if model.default_tenant.is_empty() {
            model.default_tenant = new_id();
        }
        State {
            model: Mutex::new(model),
            traffic: Traffic::default(),
            issuer,
            persist_path,
        }
    }

    /// Reads the model.
    pub fn read<R>(&self, f: impl FnOnce(&Model) -> R) -> R {
        f(&self.model.lock_or_recover())
    }

    /// Changes the model and saves it when persisting.
    pub fn write<R, E>(&self, f: impl FnOnce(&mut Model) -> Result<R, E>) -> Result<R, E> {
        let mut model = self.model.lock_or_recover();
        let result = f(&mut model)?;
        if let Some(path) = &self.persist_path {
            match serde_json::to_vec(&*model) {
                Ok(bytes) => {
                    let tmp = path.with_extension("json.tmp");
                    if let Err(e) = crate::tls::write_private(&tmp, &bytes)
                        .and_then(|()| std::fs::rename(&tmp, path).map_err(Into::into))
                    {
                        tracing::error!(path = %path.display(), error = %e, "failed to persist the state");
                    }
                }
                Err(e) => tracing::error!(error = %e, "failed to serialize the state"),
            }
        }
        Ok(result)
    }

    /// The default tenant (vaults, identities and apps without one are in it).
    pub fn default_tenant(&self) -> String {
        self.read(|m| m.default_tenant.clone())
    }

    /// Changes one vault (named in any case) and saves the model when persisting.
    pub fn with_vault<R>(
        &self,
        vault: &str,
        f: impl FnOnce(&mut Vault) -> Result<R, AdminError>,
    ) -> Result<R, AdminError> {
        self.write(|m| {
            let v = m
                .vaults
                .get_mut(&vault.to_ascii_lowercase())
                .ok_or_else(|| not_found("vault", vault))?;
            f(v)
        })
    }
}
