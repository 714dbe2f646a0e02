//! The persisted model: vaults with their secrets, certificates (and the deleted ones kept for
//! recovery) and role assignments, managed identities and app registrations. Plain data; the
//! operations that change it are in the sibling modules, called through [`super::State`].
//! `Debug` never shows a secret value or a key.
//!
//! To add a kind of object, add it here and give it operations in a sibling module.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rbac::{AuthorizationModel, Permission, RoleAssignment};
use crate::error::AdminError;
use crate::redact::{KeyBytes, Redacted};

/// Soft-deleted secrets are kept this many days, as Key Vault's default.
pub const RECOVERABLE_DAYS: i64 = 90;
/// The recovery level Key Vault reports for a vault with soft delete and purge protection off.
pub const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";

/// Where the version named `version` is among `versions` (oldest first; version ids compare
/// without case), or the current (last) one when `version` is None.
pub fn version_index<V>(
    versions: &[V],
    version: Option<&str>,
    id: impl Fn(&V) -> &str,
) -> Option<usize> {
    match version {
        Some(ver) => versions
            .iter()
            .position(|v| id(v).eq_ignore_ascii_case(ver)),
        None => versions.len().checked_sub(1),
    }
}

/// `versions` in the order Key Vault lists them: by version id, ascending and without case, not
/// by creation (azure-sdk-for-python recordings `test_secrets_client.test_list_versions.yaml`
/// and `test_certificates_client.test_list_certificate_versions.yaml`, azure-sdk-for-js
/// `recording_can_retrieve_all_versions_of_a_secret.js`).
pub fn listing_order<V>(versions: &[V], id: impl Fn(&V) -> &str) -> Vec<&V> {
    let mut listed: Vec<&V> = versions.iter().collect();
    listed.sort_by_cached_key(|v| id(v).to_ascii_lowercase());
    listed
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
    /// When the policy was last changed through `PATCH .../policy`; none since its creation.
    #[serde(default)]
    pub policy_updated: Option<i64>,
    pub versions: Vec<CertificateVersion>,
    /// The certificate operation of the last `POST .../create`, until it is deleted; none for an
    /// imported certificate.
    #[serde(default)]
    pub pending: Option<PendingOperation>,
}

/// A certificate operation (`/certificates/{name}/pending`) as Key Vault keeps it: the CSR of the
/// new key, one `request_id` for its life, and how many more polls read `inProgress`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingOperation {
    pub request_id: String,
    /// The PKCS#10 request (DER) for the key of the version being made.
    pub csr: Vec<u8>,
    /// `GET .../pending` answers still to read `inProgress` before `completed`.
    pub polls_left: u32,
    pub cancellation_requested: bool,
    /// Issuer `Unknown`: the new key (PKCS#8), kept until `POST .../pending/merge` brings its
    /// signed certificate; the operation stays `inProgress` until then.
    #[serde(default)]
    pub awaiting_merge: Option<KeyBytes>,
    /// The attributes and tags the merged version gets (issuer `Unknown`).
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn enabled_default() -> bool {
    true
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
    /// Deletes still in progress (with a deletion delay): lower-case name -> when they complete
    /// (unix milliseconds). Meanwhile `/deleted...` does not show the object yet and writes to
    /// the name are `409 ObjectIsBeingDeleted`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub being_deleted: BTreeMap<String, i64>,
    /// Recoveries still in progress, as `being_deleted`: meanwhile the object reads as not found.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub being_recovered: BTreeMap<String, i64>,
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

impl Vault {
    /// Why `name` cannot be written while a deleted `noun` (`"secret"`, `"certificate"`) keeps
    /// it: still being deleted, or deleted but recoverable.
    pub fn deleted_conflict(&self, noun: &'static str, name: &str) -> AdminError {
        let what = match (noun, self.is_being_deleted(name)) {
            ("certificate", true) => "certificate (being deleted)",
            ("certificate", false) => "certificate (deleted but recoverable)",
            (_, true) => "secret (being deleted)",
            (_, false) => "secret (deleted but recoverable)",
        };
        AdminError::Conflict {
            what,
            name: name.to_owned(),
        }
    }

    /// Whether a delete of `name` (any case) is still in progress.
    pub fn is_being_deleted(&self, name: &str) -> bool {
        self.being_deleted
            .get(&name.to_ascii_lowercase())
            .is_some_and(|&until| until > now_ms())
    }

    /// Whether a recovery of `name` (any case) is still in progress.
    pub fn is_being_recovered(&self, name: &str) -> bool {
        self.being_recovered
            .get(&name.to_ascii_lowercase())
            .is_some_and(|&until| until > now_ms())
    }

    /// Marks the delete of `name` as in progress for `delay_ms` (none with 0); forgets any
    /// recovery of it and every mark that has run out.
    pub fn start_deletion(&mut self, name: &str, delay_ms: u64) {
        let key = name.to_ascii_lowercase();
        self.being_recovered.remove(&key);
        Self::mark(&mut self.being_deleted, key, delay_ms);
    }

    /// Marks the recovery of `name` as in progress for `delay_ms`, as [`Vault::start_deletion`].
    pub fn start_recovery(&mut self, name: &str, delay_ms: u64) {
        let key = name.to_ascii_lowercase();
        self.being_deleted.remove(&key);
        Self::mark(&mut self.being_recovered, key, delay_ms);
    }

    fn mark(marks: &mut BTreeMap<String, i64>, key: String, delay_ms: u64) {
        let now = now_ms();
        marks.retain(|_, until| *until > now);
        if delay_ms > 0 {
            marks.insert(
                key,
                now.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX)),
            );
        }
    }

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
