//! The emulator's state: vaults and their secrets and certificates, identities, app
//! registrations, role assignments (all persisted when asked), plus faults and request counters
//! (memory only).
//!
//! Every change goes through a method of [`State`], used by both the Rust admin API
//! ([`crate::RunningEmulator`]) and the HTTP admin API ([`crate::admin`]). To add a kind of
//! object, add it to [`Model`] and give it create/read methods here.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::token::{TokenIssuer, now_unix};

/// Soft-deleted secrets are kept this many days, as Key Vault's default.
pub const RECOVERABLE_DAYS: i64 = 90;
/// The recovery level Key Vault reports for a vault with soft delete and purge protection off.
pub const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";

/// An error from an admin operation.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{what} {name:?} does not exist")]
    NotFound { what: &'static str, name: String },
    #[error("{what} {name:?} already exists")]
    Conflict { what: &'static str, name: String },
    #[error("{0}")]
    Invalid(String),
}

impl AdminError {
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NotFound { .. } => "NotFound",
            AdminError::Conflict { .. } => "Conflict",
            AdminError::Invalid(_) => "BadParameter",
        }
    }
    pub fn status(&self) -> u16 {
        match self {
            AdminError::NotFound { .. } => 404,
            AdminError::Conflict { .. } => 409,
            AdminError::Invalid(_) => 400,
        }
    }
}

/// What an identity may do in a vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "secrets/get")]
    SecretsGet,
    #[serde(rename = "secrets/list")]
    SecretsList,
    #[serde(rename = "secrets/set")]
    SecretsSet,
    #[serde(rename = "secrets/delete")]
    SecretsDelete,
    #[serde(rename = "certificates/get")]
    CertificatesGet,
    #[serde(rename = "certificates/list")]
    CertificatesList,
    #[serde(rename = "certificates/create")]
    CertificatesCreate,
    #[serde(rename = "certificates/import")]
    CertificatesImport,
    #[serde(rename = "certificates/delete")]
    CertificatesDelete,
}

impl Permission {
    pub const ALL: [Permission; 9] = [
        Permission::SecretsGet,
        Permission::SecretsList,
        Permission::SecretsSet,
        Permission::SecretsDelete,
        Permission::CertificatesGet,
        Permission::CertificatesList,
        Permission::CertificatesCreate,
        Permission::CertificatesImport,
        Permission::CertificatesDelete,
    ];

    /// The RBAC data action Key Vault names in its 403 message.
    pub fn data_action(self) -> &'static str {
        match self {
            Permission::SecretsGet => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            Permission::SecretsList => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            Permission::SecretsSet => "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            Permission::SecretsDelete => "Microsoft.KeyVault/vaults/secrets/delete",
            Permission::CertificatesGet | Permission::CertificatesList => {
                "Microsoft.KeyVault/vaults/certificates/read"
            }
            Permission::CertificatesCreate => {
                "Microsoft.KeyVault/vaults/certificates/create/action"
            }
            Permission::CertificatesImport => {
                "Microsoft.KeyVault/vaults/certificates/import/action"
            }
            Permission::CertificatesDelete => "Microsoft.KeyVault/vaults/certificates/delete",
        }
    }

    /// The access-policy wording: ("secrets", "get").
    pub fn policy_words(self) -> (&'static str, &'static str) {
        match self {
            Permission::SecretsGet => ("secrets", "get"),
            Permission::SecretsList => ("secrets", "list"),
            Permission::SecretsSet => ("secrets", "set"),
            Permission::SecretsDelete => ("secrets", "delete"),
            Permission::CertificatesGet => ("certificates", "get"),
            Permission::CertificatesList => ("certificates", "list"),
            Permission::CertificatesCreate => ("certificates", "create"),
            Permission::CertificatesImport => ("certificates", "import"),
            Permission::CertificatesDelete => ("certificates", "delete"),
        }
    }
}

/// Expands a role or permission name into permissions: a built-in role name
/// ("Key Vault Secrets User", "Key Vault Secrets Officer", "Key Vault Certificates Officer",
/// "Key Vault Certificate User", "Key Vault Reader", "Key Vault Administrator"), a permission
/// ("secrets/get"), or the short forms "get" and "list" (secrets).
pub fn expand_role(name: &str) -> Result<Vec<Permission>, AdminError> {
    use Permission::*;
    let perms = match name.trim().to_ascii_lowercase().as_str() {
        "get" | "secrets/get" => vec![SecretsGet],
        "list" | "secrets/list" => vec![SecretsList],
        "set" | "secrets/set" => vec![SecretsSet],
        "delete" | "secrets/delete" => vec![SecretsDelete],
        "certificates/get" => vec![CertificatesGet],
        "certificates/list" => vec![CertificatesList],
        "certificates/create" => vec![CertificatesCreate],
        "certificates/import" => vec![CertificatesImport],
        "certificates/delete" => vec![CertificatesDelete],
        "key vault secrets user" => vec![SecretsGet, SecretsList],
        "key vault secrets officer" => vec![SecretsGet, SecretsList, SecretsSet, SecretsDelete],
        "key vault certificates officer" => vec![
            CertificatesGet,
            CertificatesList,
            CertificatesCreate,
            CertificatesImport,
            CertificatesDelete,
        ],
        // Reads whole certificates, their secrets (the PFX) included, and changes nothing.
        "key vault certificate user" => {
            vec![CertificatesGet, CertificatesList, SecretsGet, SecretsList]
        }
        "key vault reader" => vec![SecretsList, CertificatesGet, CertificatesList],
        "key vault administrator" | "all" => Permission::ALL.to_vec(),
        other => {
            return Err(AdminError::Invalid(format!(
                "unknown role or permission {other:?}: use a built-in role (\"Key Vault Secrets User\", \
                 \"Key Vault Secrets Officer\", \"Key Vault Certificates Officer\", \"Key Vault Reader\", \
                 \"Key Vault Administrator\"), a permission such as \"secrets/get\", or \"get\"/\"list\""
            )));
        }
    };
    Ok(perms)
}

/// How a vault authorizes callers; it decides the wording of the 403 body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthorizationModel {
    #[default]
    Rbac,
    AccessPolicy,
}

/// The form of the 401 challenge a vault sends: Key Vault's classic `resource=` form, or the newer
/// `scope=` form (`authorization="https://login.microsoftonline.com/{tenant}"`,
/// `scope="https://vault.azure.net/.default"`). Clients must handle both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChallengeForm {
    #[default]
    Resource,
    Scope,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleAssignment {
    /// The principal's object id (or client id).
    pub principal: String,
    pub permissions: BTreeSet<Permission>,
}

/// Stands in for a secret value or key in `Debug` output: its length only.
pub(crate) struct Redacted(pub(crate) usize);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes redacted>", self.0)
    }
}

/// One version of a secret; `Debug` never shows the value.
#[derive(Clone, Serialize, Deserialize)]
pub struct SecretVersion {
    pub version: String,
    pub value: String,
    pub content_type: Option<String>,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
    pub tags: BTreeMap<String, String>,
    /// Set for the secret backing a certificate.
    pub managed: bool,
}

impl std::fmt::Debug for SecretVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretVersion")
            .field("version", &self.version)
            .field("value", &Redacted(self.value.len()))
            .field("content_type", &self.content_type)
            .field("enabled", &self.enabled)
            .field("nbf", &self.nbf)
            .field("exp", &self.exp)
            .field("managed", &self.managed)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Secret {
    pub name: String,
    /// Oldest first; the last one is the current version.
    pub versions: Vec<SecretVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedSecret {
    pub secret: Secret,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

/// A certificate deleted through Key Vault's API, kept (with its managed secret) until it is
/// purged or recovered, as soft delete does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedCertificate {
    pub certificate: Certificate,
    pub secret: Option<Secret>,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

/// One version of a certificate: the DER certificate and its PKCS#8 key (`Debug` never shows
/// the key).
#[derive(Clone, Serialize, Deserialize)]
pub struct CertificateVersion {
    pub version: String,
    pub cer: Vec<u8>,
    /// The chain above the leaf (DER), as imported.
    pub chain: Vec<Vec<u8>>,
    pub key_pkcs8: Vec<u8>,
    pub enabled: bool,
    pub nbf: i64,
    pub exp: i64,
    pub created: i64,
    pub updated: i64,
    pub tags: BTreeMap<String, String>,
}

impl std::fmt::Debug for CertificateVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateVersion")
            .field("version", &self.version)
            .field("cer", &format_args!("<{} bytes>", self.cer.len()))
            .field("chain", &self.chain.len())
            .field("key_pkcs8", &Redacted(self.key_pkcs8.len()))
            .field("enabled", &self.enabled)
            .field("nbf", &self.nbf)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Certificate {
    pub name: String,
    pub policy: serde_json::Value,
    pub policy_created: i64,
    pub versions: Vec<CertificateVersion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vault {
    pub name: String,
    pub tenant_id: String,
    pub authorization: AuthorizationModel,
    #[serde(default)]
    pub challenge: ChallengeForm,
    pub assignments: Vec<RoleAssignment>,
    pub secrets: BTreeMap<String, Secret>,
    pub deleted_secrets: BTreeMap<String, DeletedSecret>,
    pub certificates: BTreeMap<String, Certificate>,
    #[serde(default)]
    pub deleted_certificates: BTreeMap<String, DeletedCertificate>,
}

impl Vault {
    /// Whether `oid`/`appid` holds `perm` here.
    pub fn allows(&self, oid: &str, appid: &str, perm: Permission) -> bool {
        self.assignments.iter().any(|a| {
            (a.principal.eq_ignore_ascii_case(oid) || a.principal.eq_ignore_ascii_case(appid))
                && a.permissions.contains(&perm)
        })
    }
}

/// A managed identity served by IMDS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub client_id: String,
    pub object_id: String,
    pub tenant_id: String,
    /// `msi_res_id`: the ARM resource id of a user-assigned identity.
    pub resource_id: Option<String>,
}

/// A certificate registered on an app (its public part only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisteredCertificate {
    pub der: Vec<u8>,
    /// The public key (SubjectPublicKeyInfo DER).
    pub spki: Vec<u8>,
    /// base64url SHA-1 of the DER certificate.
    pub x5t: String,
    /// base64url SHA-256 of the DER certificate.
    pub x5t_s256: String,
}

/// An Entra app registration (service principal) that authenticates with a certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    pub client_id: String,
    pub object_id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub certificates: Vec<RegisteredCertificate>,
}

/// Everything that is persisted.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Model {
    pub default_tenant: String,
    pub vaults: BTreeMap<String, Vault>,
    pub system_identity: Option<Identity>,
    pub user_identities: Vec<Identity>,
    pub apps: BTreeMap<String, App>,
}

/// Throttling: at most `limit` requests per `window_ms` pass; the rest get 429.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Throttle {
    pub limit: u32,
    pub window_ms: u64,
    /// `Retry-After` seconds on 429 answers; none when absent (Key Vault often sends none).
    #[serde(default)]
    pub retry_after_s: Option<u64>,
}

/// Faults for one scope (a vault name, `imds` or `entra`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    #[serde(default)]
    pub throttle: Option<Throttle>,
    /// Answer the next requests with these statuses, in order (one entry per request).
    #[serde(default)]
    pub statuses: VecDeque<u16>,
    /// Added before every answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Close the connection without answering the next this many requests.
    #[serde(default)]
    pub drop_next: u32,
}

/// What to do to a request before it reaches its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    Pass,
    Drop,
    Status(u16),
    Throttled { retry_after_s: Option<u64> },
}

#[derive(Default)]
struct Runtime {
    faults: BTreeMap<String, Faults>,
    throttle_log: BTreeMap<String, VecDeque<Instant>>,
    counters: BTreeMap<(String, String, String, u16), u64>,
    /// Per scope: requests being handled now, and the most there have been at once.
    in_flight: BTreeMap<String, InFlight>,
}

#[derive(Debug, Default, Clone, Copy)]
struct InFlight {
    now: u32,
    peak: u32,
}

/// Counts a request as in flight for its scope until dropped (see [`State::enter`]).
pub struct InFlightGuard {
    state: Arc<State>,
    scope: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut rt = lock(&self.state.runtime);
        if let Some(gauge) = rt.in_flight.get_mut(&self.scope) {
            gauge.now = gauge.now.saturating_sub(1);
        }
    }
}

/// One row of the request counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCount {
    pub scope: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub count: u64,
}

/// The shared state behind every listener and the admin API.
pub struct State {
    model: Mutex<Model>,
    runtime: Mutex<Runtime>,
    pub issuer: TokenIssuer,
    /// Where the model is saved after each change, when persisting.
    persist_path: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

/// Options of a new secret version; `Debug` never shows the value.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    pub value: String,
    #[serde(default, rename = "contentType")]
    pub content_type: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSpec")
            .field("value", &Redacted(self.value.len()))
            .field("content_type", &self.content_type)
            .field("enabled", &self.enabled)
            .field("nbf", &self.nbf)
            .field("exp", &self.exp)
            .field("tags", &self.tags)
            .finish()
    }
}

impl State {
    pub fn new(mut model: Model, issuer: TokenIssuer, persist_path: Option<PathBuf>) -> Self {
        if model.default_tenant.is_empty() {
            model.default_tenant = new_id();
        }
        State {
            model: Mutex::new(model),
            runtime: Mutex::new(Runtime::default()),
            issuer,
            persist_path,
        }
    }

    /// Reads the model.
    pub fn read<R>(&self, f: impl FnOnce(&Model) -> R) -> R {
        f(&lock(&self.model))
    }

    /// Changes the model and saves it when persisting.
    pub fn write<R, E>(&self, f: impl FnOnce(&mut Model) -> Result<R, E>) -> Result<R, E> {
        let mut model = lock(&self.model);
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

    pub fn default_tenant(&self) -> String {
        self.read(|m| m.default_tenant.clone())
    }

    // ---- vaults and principals ----

    pub fn create_vault(
        &self,
        name: &str,
        tenant_id: Option<&str>,
        authorization: AuthorizationModel,
    ) -> Result<Vault, AdminError> {
        if !valid_vault_name(name) {
            return Err(AdminError::Invalid(format!(
                "vault name {name:?} is invalid: use 3-24 letters, digits and dashes, starting with a letter"
            )));
        }
        self.write(|m| {
            let key = name.to_ascii_lowercase();
            if m.vaults.contains_key(&key) {
                return Err(AdminError::Conflict {
                    what: "vault",
                    name: name.to_owned(),
                });
            }
            let vault = Vault {
                name: key.clone(),
                tenant_id: tenant_id.map_or_else(|| m.default_tenant.clone(), str::to_owned),
                authorization,
                challenge: ChallengeForm::default(),
                assignments: Vec::new(),
                secrets: BTreeMap::new(),
                deleted_secrets: BTreeMap::new(),
                certificates: BTreeMap::new(),
                deleted_certificates: BTreeMap::new(),
            };
            m.vaults.insert(key, vault.clone());
            Ok(vault)
        })
    }

    pub fn with_vault<R>(
        &self,
        vault: &str,
        f: impl FnOnce(&mut Vault) -> Result<R, AdminError>,
    ) -> Result<R, AdminError> {
        self.write(|m| {
            let v = m
                .vaults
                .get_mut(&vault.to_ascii_lowercase())
                .ok_or_else(|| AdminError::NotFound {
                    what: "vault",
                    name: vault.to_owned(),
                })?;
            f(v)
        })
    }

    /// Creates (or replaces) the system-assigned identity.
    pub fn set_system_identity(&self, spec: IdentitySpec) -> Result<Identity, AdminError> {
        self.write(|m| {
            let identity = spec.into_identity(&m.default_tenant, false);
            m.system_identity = Some(identity.clone());
            Ok(identity)
        })
    }

    pub fn add_user_identity(&self, spec: IdentitySpec) -> Result<Identity, AdminError> {
        self.write(|m| {
            let identity = spec.into_identity(&m.default_tenant, true);
            if m.user_identities
                .iter()
                .any(|i| i.client_id == identity.client_id)
            {
                return Err(AdminError::Conflict {
                    what: "user-assigned identity",
                    name: identity.client_id,
                });
            }
            m.user_identities.push(identity.clone());
            Ok(identity)
        })
    }

    pub fn add_app(&self, app: App) -> Result<App, AdminError> {
        self.write(|m| {
            if m.apps.contains_key(&app.client_id) {
                return Err(AdminError::Conflict {
                    what: "app",
                    name: app.client_id.clone(),
                });
            }
            m.apps.insert(app.client_id.clone(), app.clone());
            Ok(app)
        })
    }

    /// Resolves a principal named by object id, client id, `system`, or an app's display name
    /// to its object id.
    pub fn resolve_principal(&self, principal: &str) -> Result<String, AdminError> {
        self.read(|m| {
            if principal.eq_ignore_ascii_case("system") {
                return m
                    .system_identity
                    .as_ref()
                    .map(|i| i.object_id.clone())
                    .ok_or_else(|| AdminError::NotFound {
                        what: "system-assigned identity",
                        name: principal.into(),
                    });
            }
            let ids = m.system_identity.iter().chain(m.user_identities.iter());
            for i in ids {
                if i.object_id.eq_ignore_ascii_case(principal)
                    || i.client_id.eq_ignore_ascii_case(principal)
                    || i.resource_id
                        .as_deref()
                        .is_some_and(|r| r.eq_ignore_ascii_case(principal))
                {
                    return Ok(i.object_id.clone());
                }
            }
            for a in m.apps.values() {
                if a.object_id.eq_ignore_ascii_case(principal)
                    || a.client_id.eq_ignore_ascii_case(principal)
                    || a.display_name == principal
                {
                    return Ok(a.object_id.clone());
                }
            }
            // An unknown principal is allowed (tokens from elsewhere may name it).
            Ok(principal.to_owned())
        })
    }

    /// Grants `roles` (role names or permissions, see [`expand_role`]) in `vault`.
    pub fn assign_roles(
        &self,
        vault: &str,
        principal: &str,
        roles: &[String],
    ) -> Result<(), AdminError> {
        let mut permissions = BTreeSet::new();
        for role in roles {
            permissions.extend(expand_role(role)?);
        }
        let principal = self.resolve_principal(principal)?;
        self.with_vault(vault, |v| {
            match v.assignments.iter_mut().find(|a| a.principal == principal) {
                Some(a) => a.permissions.extend(permissions),
                None => v.assignments.push(RoleAssignment {
                    principal,
                    permissions,
                }),
            }
            Ok(())
        })
    }

    /// Removes every permission of `principal` in `vault`.
    pub fn revoke_roles(&self, vault: &str, principal: &str) -> Result<(), AdminError> {
        let principal = self.resolve_principal(principal)?;
        self.with_vault(vault, |v| {
            v.assignments.retain(|a| a.principal != principal);
            Ok(())
        })
    }

    // ---- secrets ----

    /// Adds a version to a secret (creating it); returns the version.
    pub fn set_secret(
        &self,
        vault: &str,
        name: &str,
        spec: SecretSpec,
    ) -> Result<SecretVersion, AdminError> {
        if !valid_object_name(name) {
            return Err(AdminError::Invalid(format!(
                "secret name {name:?} is invalid: use 1-127 letters, digits and dashes"
            )));
        }
        self.with_vault(vault, |v| insert_secret_version(v, name, spec, false))
    }

    /// Enables or disables one version (the current one when `version` is None).
    pub fn set_secret_enabled(
        &self,
        vault: &str,
        name: &str,
        version: Option<&str>,
        enabled: bool,
    ) -> Result<(), AdminError> {
        self.with_vault(vault, |v| {
            let secret = v
                .secrets
                .get_mut(&name.to_ascii_lowercase())
                .ok_or_else(|| AdminError::NotFound {
                    what: "secret",
                    name: name.to_owned(),
                })?;
            let sv = match version {
                Some(ver) => secret.versions.iter_mut().find(|s| s.version == ver),
                None => secret.versions.last_mut(),
            }
            .ok_or_else(|| AdminError::NotFound {
                what: "secret version",
                name: format!("{name}/{}", version.unwrap_or("")),
            })?;
            sv.enabled = enabled;
            sv.updated = now_unix();
            Ok(())
        })
    }

    /// Soft-deletes a secret.
    pub fn delete_secret(&self, vault: &str, name: &str) -> Result<DeletedSecret, AdminError> {
        self.with_vault(vault, |v| soft_delete_secret(v, name))
    }

    // ---- faults and counters ----

    pub fn set_faults(&self, scope: &str, faults: Faults) {
        let scope = scope.to_ascii_lowercase();
        let mut rt = lock(&self.runtime);
        rt.throttle_log.remove(&scope);
        if faults == Faults::default() {
            rt.faults.remove(&scope);
        } else {
            rt.faults.insert(scope, faults);
        }
    }

    pub fn update_faults(&self, scope: &str, f: impl FnOnce(&mut Faults)) {
        let mut rt = lock(&self.runtime);
        let entry = rt.faults.entry(scope.to_ascii_lowercase()).or_default();
        f(entry);
    }

    pub fn faults(&self, scope: &str) -> Faults {
        lock(&self.runtime)
            .faults
            .get(&scope.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// Decides the fault for one request in `scope` and its added latency.
    pub fn take_fault(&self, scope: &str) -> (FaultAction, Duration) {
        let mut guard = lock(&self.runtime);
        let rt = &mut *guard;
        let Some(faults) = rt.faults.get_mut(scope) else {
            return (FaultAction::Pass, Duration::ZERO);
        };
        let latency = Duration::from_millis(faults.latency_ms);
        if faults.drop_next > 0 {
            faults.drop_next -= 1;
            return (FaultAction::Drop, latency);
        }
        if let Some(status) = faults.statuses.pop_front() {
            return (FaultAction::Status(status), latency);
        }
        if let Some(throttle) = &faults.throttle {
            let now = Instant::now();
            let window = Duration::from_millis(throttle.window_ms);
            let log = rt.throttle_log.entry(scope.to_owned()).or_default();
            while log
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                log.pop_front();
            }
            if log.len() >= throttle.limit as usize {
                return (
                    FaultAction::Throttled {
                        retry_after_s: throttle.retry_after_s,
                    },
                    latency,
                );
            }
            log.push_back(now);
        }
        (FaultAction::Pass, latency)
    }

    pub fn count(&self, scope: &str, method: &str, path: &str, status: u16) {
        let mut rt = lock(&self.runtime);
        *rt.counters
            .entry((scope.to_owned(), method.to_owned(), path.to_owned(), status))
            .or_default() += 1;
    }

    pub fn counters(&self) -> Vec<RequestCount> {
        lock(&self.runtime)
            .counters
            .iter()
            .map(|((scope, method, path, status), count)| RequestCount {
                scope: scope.clone(),
                method: method.clone(),
                path: path.clone(),
                status: *status,
                count: *count,
            })
            .collect()
    }

    pub fn reset_counters(&self) {
        let mut rt = lock(&self.runtime);
        rt.counters.clear();
        for gauge in rt.in_flight.values_mut() {
            gauge.peak = gauge.now;
        }
    }

    /// Marks a request of `scope` as in flight until the guard is dropped, keeping the peak.
    pub fn enter(self: &Arc<Self>, scope: &str) -> InFlightGuard {
        let mut rt = lock(&self.runtime);
        let gauge = rt.in_flight.entry(scope.to_owned()).or_default();
        gauge.now += 1;
        gauge.peak = gauge.peak.max(gauge.now);
        InFlightGuard {
            state: Arc::clone(self),
            scope: scope.to_owned(),
        }
    }

    /// The most requests of `scope` handled at the same time since the counters were reset.
    pub fn peak_in_flight(&self, scope: &str) -> u32 {
        lock(&self.runtime)
            .in_flight
            .get(scope)
            .map_or(0, |gauge| gauge.peak)
    }
}

pub(crate) fn insert_secret_version(
    v: &mut Vault,
    name: &str,
    spec: SecretSpec,
    managed: bool,
) -> Result<SecretVersion, AdminError> {
    let key = name.to_ascii_lowercase();
    // A deleted certificate keeps its secret's name too.
    if v.deleted_secrets.contains_key(&key) || v.deleted_certificates.contains_key(&key) {
        return Err(AdminError::Conflict {
            what: "secret (deleted but recoverable)",
            name: name.to_owned(),
        });
    }
    let now = now_unix();
    let version = SecretVersion {
        version: new_version(),
        value: spec.value,
        content_type: spec.content_type,
        enabled: spec.enabled.unwrap_or(true),
        nbf: spec.nbf,
        exp: spec.exp,
        created: now,
        updated: now,
        tags: spec.tags,
        managed,
    };
    v.secrets
        .entry(key)
        .or_insert_with(|| Secret {
            name: name.to_owned(),
            versions: Vec::new(),
        })
        .versions
        .push(version.clone());
    Ok(version)
}

pub(crate) fn soft_delete_secret(v: &mut Vault, name: &str) -> Result<DeletedSecret, AdminError> {
    let key = name.to_ascii_lowercase();
    let secret = v.secrets.remove(&key).ok_or_else(|| AdminError::NotFound {
        what: "secret",
        name: name.to_owned(),
    })?;
    let now = now_unix();
    let deleted = DeletedSecret {
        secret,
        deleted_date: now,
        scheduled_purge_date: now + RECOVERABLE_DAYS * 86_400,
    };
    v.deleted_secrets.insert(key, deleted.clone());
    Ok(deleted)
}

/// A new identity; ids not given are generated.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentitySpec {
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub object_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// For a user-assigned identity: its ARM resource id (`msi_res_id`); a name makes one up.
    #[serde(default)]
    pub resource_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl IdentitySpec {
    fn into_identity(self, default_tenant: &str, user_assigned: bool) -> Identity {
        let resource_id = if user_assigned {
            self.resource_id.or_else(|| {
                Some(format!(
                    "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/akvvm/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
                    self.name.as_deref().unwrap_or("identity")
                ))
            })
        } else {
            None
        };
        Identity {
            client_id: self.client_id.unwrap_or_else(new_id),
            object_id: self.object_id.unwrap_or_else(new_id),
            tenant_id: self.tenant_id.unwrap_or_else(|| default_tenant.to_owned()),
            resource_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(Model::default(), TokenIssuer::generate().unwrap(), None)
    }

    #[test]
    fn debug_output_never_shows_a_secret_value_or_key() {
        let spec = SecretSpec {
            value: "hunter2-secret".into(),
            ..Default::default()
        };
        let shown = format!("{spec:?}");
        assert!(shown.contains("<14 bytes redacted>"), "{shown}");
        assert!(!shown.contains("hunter2"), "the value leaked into Debug");
        let s = state();
        s.create_vault("myvault", None, AuthorizationModel::default())
            .unwrap();
        let version = s.set_secret("myvault", "db", spec).unwrap();
        assert!(
            !format!("{version:?}").contains("hunter2"),
            "the value leaked into Debug"
        );
        let shown = s.read(|m| format!("{m:?}"));
        assert!(!shown.contains("hunter2"), "the value leaked into Debug");
    }

    #[test]
    fn admin_errors_have_codes_and_statuses() {
        let cases = [
            (
                AdminError::NotFound {
                    what: "vault",
                    name: "v".into(),
                },
                "NotFound",
                404,
                "vault \"v\" does not exist",
            ),
            (
                AdminError::Conflict {
                    what: "app",
                    name: "a".into(),
                },
                "Conflict",
                409,
                "app \"a\" already exists",
            ),
            (
                AdminError::Invalid("bad".into()),
                "BadParameter",
                400,
                "bad",
            ),
        ];
        for (error, code, status, message) in cases {
            assert_eq!(
                (error.code(), error.status(), error.to_string().as_str()),
                (code, status, message)
            );
        }
    }

    #[test]
    fn roles_expand_and_unknown_roles_are_refused() {
        assert_eq!(
            expand_role("Key Vault Secrets User").unwrap(),
            vec![Permission::SecretsGet, Permission::SecretsList]
        );
        assert_eq!(expand_role("get").unwrap(), vec![Permission::SecretsGet]);
        let err = expand_role("Owner").unwrap_err().to_string();
        assert!(
            err.contains("unknown role or permission \"owner\""),
            "{err}"
        );
    }

    #[test]
    fn throttle_lets_limit_requests_through_per_window() {
        let s = state();
        s.set_faults(
            "v",
            Faults {
                throttle: Some(Throttle {
                    limit: 2,
                    window_ms: 60_000,
                    retry_after_s: Some(3),
                }),
                ..Faults::default()
            },
        );
        assert_eq!(s.take_fault("v").0, FaultAction::Pass);
        assert_eq!(s.take_fault("v").0, FaultAction::Pass);
        assert_eq!(
            s.take_fault("v").0,
            FaultAction::Throttled {
                retry_after_s: Some(3)
            }
        );
        assert_eq!(s.take_fault("other").0, FaultAction::Pass);
    }

    #[test]
    fn statuses_and_drops_apply_to_the_next_requests_only() {
        let s = state();
        s.set_faults(
            "v",
            Faults {
                statuses: [503, 500].into(),
                drop_next: 1,
                ..Faults::default()
            },
        );
        assert_eq!(s.take_fault("v").0, FaultAction::Drop);
        assert_eq!(s.take_fault("v").0, FaultAction::Status(503));
        assert_eq!(s.take_fault("v").0, FaultAction::Status(500));
        assert_eq!(s.take_fault("v").0, FaultAction::Pass);
    }

    #[test]
    fn secret_versions_and_soft_delete() {
        let s = state();
        s.create_vault("myvault", None, AuthorizationModel::Rbac)
            .unwrap();
        let v1 = s
            .set_secret(
                "myvault",
                "Db",
                SecretSpec {
                    value: "a".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        let v2 = s
            .set_secret(
                "MYVAULT",
                "db",
                SecretSpec {
                    value: "b".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_ne!(v1.version, v2.version);
        let names = s.read(|m| {
            m.vaults["myvault"].secrets["db"]
                .versions
                .iter()
                .map(|v| v.value.clone())
                .collect::<Vec<_>>()
        });
        assert_eq!(names, ["a", "b"]);
        s.delete_secret("myvault", "DB").unwrap();
        let err = s
            .set_secret(
                "myvault",
                "db",
                SecretSpec {
                    value: "c".into(),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(err.status(), 409);
        assert!(matches!(
            s.set_secret("myvault", "bad_name", SecretSpec::default()),
            Err(AdminError::Invalid(_))
        ));
    }
}
