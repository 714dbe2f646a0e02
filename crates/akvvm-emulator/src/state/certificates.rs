//! Certificates in the model: a new version (self-signed from a policy, imported, or rotated)
//! together with its managed secret of the same version id, enabling and retagging a version,
//! updating the policy, soft delete, purge and recovery, and deletion for good (the admin API). What a certificate is
//! made of (policy, generation, the secret's value) is [`crate::certs`].

use std::collections::BTreeMap;

use akvvm_cert::certificate::{CONTENT_TYPE_PEM, CONTENT_TYPE_PKCS12, CertificateBundle};
use serde_json::{Value, json};

use super::State;
use super::model::{
    Certificate, CertificateVersion, DeletedCertificate, PendingOperation, RECOVERABLE_DAYS,
    Secret, Vault, version_index,
};
use super::secrets::{SecretSpec, insert_secret_version};
use crate::certs::{
    CertificateCreated, CertificateImport, csr, decode_import, normalize_policy,
    policy_from_bundle, secret_value, self_signed, self_signed_with_key,
};
use crate::error::{AdminError, invalid, not_found};
use crate::redact::KeyBytes;
use crate::token::now_unix;

impl State {
    /// Imports a certificate version into `vault`.
    pub fn import_certificate(
        &self,
        vault: &str,
        name: &str,
        import: &CertificateImport,
    ) -> Result<CertificateCreated, AdminError> {
        self.with_vault(vault, |v| import_in(v, name, import, &Value::Null))
    }

    /// Creates a self-signed certificate from a Key Vault certificate policy (JSON).
    pub fn create_certificate(
        &self,
        vault: &str,
        name: &str,
        policy: &Value,
    ) -> Result<CertificateCreated, AdminError> {
        self.with_vault(vault, |v| create_in(v, name, policy, true, BTreeMap::new()))
    }

    /// Adds a new version to a certificate.
    pub fn rotate_certificate(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<CertificateCreated, AdminError> {
        self.with_vault(vault, |v| rotate_in(v, name))
    }

    /// Enables or disables one version (the current one when `version` is None) and its managed
    /// secret; returns the version id.
    pub fn set_certificate_enabled(
        &self,
        vault: &str,
        name: &str,
        version: Option<&str>,
        enabled: bool,
    ) -> Result<String, AdminError> {
        self.with_vault(vault, |v| {
            set_version(v, name, version, Some(enabled), None)
                .ok_or_else(|| not_found("certificate", name))
        })
    }

    /// Deletes a certificate and its managed secret, for good.
    pub fn delete_certificate(&self, vault: &str, name: &str) -> Result<Certificate, AdminError> {
        self.with_vault(vault, |v| delete_in(v, name))
    }
}

/// Adds a version (and its managed secret) to a certificate in `vault`.
pub fn add_version(
    vault: &mut Vault,
    name: &str,
    policy: Value,
    bundle: &CertificateBundle,
    enabled: bool,
    tags: BTreeMap<String, String>,
) -> Result<CertificateCreated, AdminError> {
    let content_type = policy["secret_props"]["contentType"]
        .as_str()
        .unwrap_or(CONTENT_TYPE_PKCS12)
        .to_owned();
    let value = secret_value(&content_type, bundle)?;
    let key = name.to_ascii_lowercase();
    if vault.deleted_certificates.contains_key(&key) {
        return Err(vault.deleted_conflict("certificate", name));
    }
    if vault
        .secrets
        .get(&key)
        .is_some_and(|s| s.versions.last().is_some_and(|v| !v.managed))
    {
        return Err(AdminError::Conflict {
            what: "secret (not a certificate's)",
            name: name.to_owned(),
        });
    }
    let now = now_unix();
    let (nbf, exp) = (
        bundle.leaf.not_before.unix_timestamp(),
        bundle.leaf.not_after.unix_timestamp(),
    );
    let secret = insert_secret_version(
        vault,
        name,
        SecretSpec {
            value,
            content_type: Some(content_type),
            enabled: Some(enabled),
            nbf: Some(nbf),
            exp: Some(exp),
            tags: tags.clone(),
        },
        true,
    )?;
    let version = CertificateVersion {
        version: secret.version.clone(),
        cer: bundle.leaf.der().to_vec(),
        chain: bundle.chain.iter().map(|c| c.der().to_vec()).collect(),
        key_pkcs8: bundle.key.pkcs8_der().to_vec(),
        enabled,
        nbf,
        exp,
        created: now,
        updated: now,
        tags,
    };
    let cert = vault
        .certificates
        .entry(key)
        .or_insert_with(|| Certificate {
            name: name.to_owned(),
            policy: policy.clone(),
            policy_created: now,
            policy_updated: None,
            versions: Vec::new(),
            pending: None,
        });
    cert.policy = policy;
    cert.versions.push(version);
    Ok(CertificateCreated {
        name: cert.name.clone(),
        version: secret.version,
        thumbprint: bundle.leaf.thumbprint(),
        not_after: exp,
    })
}

/// A certificate just made, (DER, PKCS#8 key), as a bundle.
fn new_bundle((cer, key): (Vec<u8>, Vec<u8>)) -> Result<CertificateBundle, AdminError> {
    CertificateBundle::from_parts(&key, &[cer])
        .map_err(|e| invalid(format!("the new certificate does not load: {e}")))
}

/// Creates a self-signed certificate version from a policy.
pub fn create_in(
    vault: &mut Vault,
    name: &str,
    policy: &Value,
    enabled: bool,
    tags: BTreeMap<String, String>,
) -> Result<CertificateCreated, AdminError> {
    let policy = normalize_policy(policy, "Self")?;
    let bundle = new_bundle(self_signed(&policy)?)?;
    add_version(vault, name, policy, &bundle, enabled, tags)
}

/// Updates a certificate's policy (`PATCH .../policy`): the members `patch` names replace the
/// policy's (an object member's keys one by one), the rest stay; the result is checked and
/// completed as a new policy is ([`normalize_policy`]). Versions made afterwards follow it.
pub fn update_policy_in(
    v: &mut Vault,
    name: &str,
    patch: &Value,
) -> Result<Certificate, AdminError> {
    let Some(patch) = patch.as_object() else {
        return Err(AdminError::Invalid(
            "the certificate policy must be a JSON object".into(),
        ));
    };
    let cert = v
        .certificates
        .get_mut(&name.to_ascii_lowercase())
        .ok_or_else(|| not_found("certificate", name))?;
    let mut merged = cert.policy.clone();
    for (member, value) in patch {
        match (merged.get_mut(member), value) {
            (Some(Value::Object(current)), Value::Object(given)) => {
                current.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            _ => merged[member] = value.clone(),
        }
    }
    let issuer = cert.policy["issuer"]["name"]
        .as_str()
        .unwrap_or("Self")
        .to_owned();
    cert.policy = normalize_policy(&merged, &issuer)?;
    cert.policy_updated = Some(now_unix());
    Ok(cert.clone())
}

/// Imports a certificate version.
pub fn import_in(
    vault: &mut Vault,
    name: &str,
    import: &CertificateImport,
    policy: &Value,
) -> Result<CertificateCreated, AdminError> {
    let value = match (&import.pfx, &import.pem) {
        (Some(pfx), None) => pfx,
        (None, Some(pem)) => pem,
        _ => return Err(invalid("give exactly one of pfx (base64) or pem")),
    };
    let bundle = decode_import(value, import.password.as_deref().unwrap_or(""))?;
    let content_type = import
        .content_type
        .as_deref()
        .or_else(|| policy["secret_props"]["contentType"].as_str())
        .unwrap_or(if import.pem.is_some() {
            CONTENT_TYPE_PEM
        } else {
            CONTENT_TYPE_PKCS12
        });
    if content_type != CONTENT_TYPE_PKCS12 && content_type != CONTENT_TYPE_PEM {
        return Err(invalid(format!(
            "content type {content_type:?} is not supported: use {CONTENT_TYPE_PKCS12} or {CONTENT_TYPE_PEM}"
        )));
    }
    let policy = policy_from_bundle(&bundle, content_type, policy);
    add_version(vault, name, policy, &bundle, true, import.tags.clone())
}

/// A new version of an existing certificate: a fresh self-signed one from its policy (the same
/// key when the policy says `reuse_key`).
pub fn rotate_in(vault: &mut Vault, name: &str) -> Result<CertificateCreated, AdminError> {
    let cert = vault
        .certificates
        .get(&name.to_ascii_lowercase())
        .ok_or_else(|| not_found("certificate", name))?;
    let policy = cert.policy.clone();
    let Some(current) = cert.versions.last().cloned() else {
        return Err(not_found("certificate version", name));
    };
    let issuer = policy["issuer"]["name"].as_str().unwrap_or("");
    let bundle = if issuer == "Self" {
        new_bundle(
            if policy["key_props"]["reuse_key"].as_bool() == Some(true) {
                self_signed_with_key(&policy, &current.key_pkcs8)?
            } else {
                self_signed(&policy)?
            },
        )?
    } else {
        // Imported certificates: re-issue a self-signed certificate with the same subject, SANs and key type.
        let mut p = policy.clone();
        p["x509_props"]["basic_constraints"] = json!({"ca": false});
        new_bundle(self_signed(&normalize_policy(&p, "Self")?)?)?
    };
    add_version(vault, name, policy, &bundle, true, current.tags)
}

/// Deletes a certificate as Key Vault's API does with soft delete on: it and its managed secret
/// are kept under `/deletedcertificates` until purged or recovered.
pub fn soft_delete_in(v: &mut Vault, name: &str) -> Result<DeletedCertificate, AdminError> {
    let (certificate, secret) = remove_with_secret(v, name)?;
    let now = now_unix();
    let deleted = DeletedCertificate {
        certificate,
        secret,
        deleted_date: now,
        scheduled_purge_date: now + RECOVERABLE_DAYS * 86_400,
    };
    v.deleted_certificates
        .insert(name.to_ascii_lowercase(), deleted.clone());
    Ok(deleted)
}

/// Deletes a certificate with its managed secret, for good (the admin API).
pub fn delete_in(v: &mut Vault, name: &str) -> Result<Certificate, AdminError> {
    remove_with_secret(v, name).map(|(certificate, _)| certificate)
}

/// Takes a certificate and its managed secret out of the vault.
fn remove_with_secret(
    v: &mut Vault,
    name: &str,
) -> Result<(Certificate, Option<Secret>), AdminError> {
    let key = name.to_ascii_lowercase();
    let certificate = v
        .certificates
        .remove(&key)
        .ok_or_else(|| not_found("certificate", name))?;
    Ok((certificate, v.secrets.remove(&key)))
}

/// Enables/disables (and retags) one version and its managed secret; returns the version id.
pub fn set_version(
    v: &mut Vault,
    name: &str,
    version: Option<&str>,
    enabled: Option<bool>,
    tags: Option<BTreeMap<String, String>>,
) -> Option<String> {
    let key = name.to_ascii_lowercase();
    let cert = v.certificates.get_mut(&key)?;
    let i = version_index(&cert.versions, version, |c| &c.version)?;
    let cv = &mut cert.versions[i];
    let now = now_unix();
    if let Some(e) = enabled {
        cv.enabled = e;
    }
    if let Some(t) = &tags {
        cv.tags = t.clone();
    }
    cv.updated = now;
    let id = cv.version.clone();
    if let Some(sv) = v
        .secrets
        .get_mut(&key)
        .and_then(|s| s.versions.iter_mut().find(|s| s.version == id))
    {
        if let Some(e) = enabled {
            sv.enabled = e;
        }
        sv.updated = now;
    }
    Some(id)
}

/// Removes a deleted certificate (and its kept secret) for good; None when there is none of that
/// name.
pub fn purge_deleted_certificate(v: &mut Vault, name: &str) -> Option<DeletedCertificate> {
    v.deleted_certificates.remove(&name.to_ascii_lowercase())
}

/// Brings a deleted certificate and its managed secret back under their name; None when there is
/// none of that name.
pub fn recover_deleted_certificate(v: &mut Vault, name: &str) -> Option<Certificate> {
    let key = name.to_ascii_lowercase();
    v.deleted_certificates.remove(&key).map(|d| {
        if let Some(secret) = d.secret {
            v.secrets.insert(key.clone(), secret);
        }
        v.certificates.insert(key, d.certificate.clone());
        d.certificate
    })
}

/// Starts the certificate operation of a certificate just created: the CSR of its newest
/// version's key and a fresh `request_id`; `polls` polls read `inProgress` before `completed`.
pub fn start_operation_in(v: &mut Vault, name: &str, polls: u32) -> Result<(), AdminError> {
    let cert = v
        .certificates
        .get_mut(&name.to_ascii_lowercase())
        .ok_or_else(|| not_found("certificate", name))?;
    let key = cert
        .versions
        .last()
        .map(|v| v.key_pkcs8.clone())
        .ok_or_else(|| not_found("certificate version", name))?;
    cert.pending = Some(PendingOperation {
        request_id: super::new_version(),
        csr: csr(&cert.policy, &key)?,
        polls_left: polls,
        cancellation_requested: false,
        awaiting_merge: None,
        enabled: true,
        tags: BTreeMap::new(),
    });
    Ok(())
}

/// Starts a certificate with issuer `Unknown`: a new key and its CSR, and no version until
/// [`merge_in`] brings the certificate an outside CA signed.
pub fn create_unknown_in(
    v: &mut Vault,
    name: &str,
    policy: &Value,
    enabled: bool,
    tags: BTreeMap<String, String>,
) -> Result<(), AdminError> {
    let policy = normalize_policy(policy, "Unknown")?;
    let key = name.to_ascii_lowercase();
    if v.deleted_certificates.contains_key(&key) {
        return Err(AdminError::Conflict {
            what: "certificate (deleted but recoverable)",
            name: name.to_owned(),
        });
    }
    let (_, key_pkcs8) = self_signed(&policy)?;
    let pending = PendingOperation {
        request_id: super::new_version(),
        csr: csr(&policy, &key_pkcs8)?,
        polls_left: 0,
        cancellation_requested: false,
        awaiting_merge: Some(KeyBytes(key_pkcs8)),
        enabled,
        tags,
    };
    let cert = v.certificates.entry(key).or_insert_with(|| Certificate {
        name: name.to_owned(),
        policy: policy.clone(),
        policy_created: now_unix(),
        policy_updated: None,
        versions: Vec::new(),
        pending: None,
    });
    cert.policy = policy;
    cert.pending = Some(pending);
    Ok(())
}

/// Merges the certificate (and chain, DER) signed for the key of `name`'s operation: a new
/// version with that key; the operation then reads `completed`. None when there is no operation
/// waiting for a merge.
pub fn merge_in(
    v: &mut Vault,
    name: &str,
    x5c: &[Vec<u8>],
) -> Result<Option<CertificateCreated>, AdminError> {
    let Some(cert) = v.certificates.get(&name.to_ascii_lowercase()) else {
        return Ok(None);
    };
    let Some(op) = cert.pending.clone() else {
        return Ok(None);
    };
    let Some(key) = &op.awaiting_merge else {
        return Ok(None);
    };
    let policy = cert.policy.clone();
    let bundle = CertificateBundle::from_parts(&key.0, x5c).map_err(|e| invalid(e.to_string()))?;
    let created = add_version(v, name, policy, &bundle, op.enabled, op.tags.clone())?;
    if let Some(pending) = v
        .certificates
        .get_mut(&name.to_ascii_lowercase())
        .and_then(|c| c.pending.as_mut())
    {
        pending.awaiting_merge = None;
        pending.polls_left = 0;
    }
    Ok(Some(created))
}

/// What to do to a certificate operation ([`operation_in`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationChange {
    /// Read it as it is.
    Read,
    /// A poll (`GET .../pending`): one fewer `inProgress` answer to come.
    Poll,
    /// `PATCH .../pending` with `cancellation_requested`.
    Cancel,
    /// `DELETE .../pending`: remove it.
    Delete,
}

/// Reads (and changes) the certificate operation of `name`; None when the certificate or its
/// operation does not exist. Returns the certificate as it was before a poll or a deletion, so
/// that the answer shows the state the caller asked about.
pub fn operation_in(v: &mut Vault, name: &str, change: OperationChange) -> Option<Certificate> {
    let cert = v.certificates.get_mut(&name.to_ascii_lowercase())?;
    cert.pending.as_ref()?;
    if change == OperationChange::Cancel
        && let Some(op) = cert.pending.as_mut()
    {
        op.cancellation_requested = true;
    }
    let seen = cert.clone();
    match change {
        OperationChange::Read | OperationChange::Cancel => {}
        OperationChange::Poll => {
            if let Some(op) = cert.pending.as_mut()
                && !op.cancellation_requested
            {
                op.polls_left = op.polls_left.saturating_sub(1);
            }
        }
        OperationChange::Delete => cert.pending = None,
    }
    Some(seen)
}
