//! Secrets in the model: new versions ([`SecretSpec`]), enabling and updating a version, soft
//! delete, purging or recovering a deleted secret, and backup blobs and their restore. A
//! certificate's managed secret is made here too ([`insert_secret_version`] with `managed`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{DeletedSecret, RECOVERABLE_DAYS, Secret, SecretVersion, Vault, version_index};
use super::{State, new_version, valid_object_name};
use crate::error::{AdminError, not_found};
use crate::redact::Redacted;
use crate::token::now_unix;

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

/// Changes to a secret version's attributes (the data plane's update); `None` leaves a field as
/// it is.
#[derive(Debug, Default)]
pub struct SecretUpdate {
    pub content_type: Option<String>,
    pub enabled: Option<bool>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub tags: Option<BTreeMap<String, String>>,
}

impl State {
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
                .ok_or_else(|| not_found("secret", name))?;
            let sv = match version {
                Some(ver) => secret.versions.iter_mut().find(|s| s.version == ver),
                None => secret.versions.last_mut(),
            }
            .ok_or_else(|| {
                not_found(
                    "secret version",
                    format!("{name}/{}", version.unwrap_or("")),
                )
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
}

/// Adds a version to a secret in `v` (creating the secret), refused while a deleted secret or
/// certificate of that name is kept; `managed` marks a certificate's secret.
pub fn insert_secret_version(
    v: &mut Vault,
    name: &str,
    spec: SecretSpec,
    managed: bool,
) -> Result<SecretVersion, AdminError> {
    let key = name.to_ascii_lowercase();
    // A deleted certificate keeps its secret's name too.
    if v.deleted_secrets.contains_key(&key) || v.deleted_certificates.contains_key(&key) {
        return Err(v.deleted_conflict("secret", name));
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

/// Soft-deletes a secret: it is kept under its name until purged or recovered.
pub fn soft_delete_secret(v: &mut Vault, name: &str) -> Result<DeletedSecret, AdminError> {
    let key = name.to_ascii_lowercase();
    let secret = v
        .secrets
        .remove(&key)
        .ok_or_else(|| not_found("secret", name))?;
    let now = now_unix();
    let deleted = DeletedSecret {
        secret,
        deleted_date: now,
        scheduled_purge_date: now + RECOVERABLE_DAYS * 86_400,
    };
    v.deleted_secrets.insert(key, deleted.clone());
    Ok(deleted)
}

/// Updates one version of a secret (the current one when `version` is None; version ids compare
/// without case); returns the secret and the updated version, or None when either is missing.
pub fn update_secret_version(
    vault: &mut Vault,
    name: &str,
    version: Option<&str>,
    update: SecretUpdate,
) -> Option<(Secret, SecretVersion)> {
    let s = vault.secrets.get_mut(&name.to_ascii_lowercase())?;
    let i = version_index(&s.versions, version, |v| &v.version)?;
    let v = &mut s.versions[i];
    if let Some(ct) = update.content_type {
        v.content_type = Some(ct);
    }
    if let Some(e) = update.enabled {
        v.enabled = e;
    }
    if update.nbf.is_some() {
        v.nbf = update.nbf;
    }
    if update.exp.is_some() {
        v.exp = update.exp;
    }
    if let Some(tags) = update.tags {
        v.tags = tags;
    }
    v.updated = now_unix();
    let v = v.clone();
    Some((s.clone(), v))
}

/// Removes a deleted secret for good; None when there is none of that name.
pub fn purge_deleted_secret(v: &mut Vault, name: &str) -> Option<DeletedSecret> {
    v.deleted_secrets.remove(&name.to_ascii_lowercase())
}

/// Brings a deleted secret back under its name; None when there is none of that name.
pub fn recover_deleted_secret(v: &mut Vault, name: &str) -> Option<Secret> {
    let key = name.to_ascii_lowercase();
    v.deleted_secrets.remove(&key).map(|d| {
        v.secrets.insert(key, d.secret.clone());
        d.secret
    })
}

/// What a backup blob of the local vault starts with; anything else is a malformed blob.
const BACKUP_MAGIC: &[u8] = b"akvvm-secret-backup-v1\n";

/// A secret with all its versions as a backup blob (opaque to clients, as Key Vault's are:
/// `BACKUP_MAGIC` then the secret as JSON).
pub fn backup_blob(secret: &Secret) -> Vec<u8> {
    let mut blob = BACKUP_MAGIC.to_vec();
    // A `Secret` is plain data: serializing it cannot fail.
    blob.extend(serde_json::to_vec(secret).unwrap_or_default());
    blob
}

/// The secret a backup blob holds; `None` for anything [`backup_blob`] did not make.
pub fn secret_from_backup(blob: &[u8]) -> Option<Secret> {
    let secret: Secret = serde_json::from_slice(blob.strip_prefix(BACKUP_MAGIC)?).ok()?;
    (valid_object_name(&secret.name) && !secret.versions.is_empty()).then_some(secret)
}

/// Restores a backed-up secret with all its versions into `v`: refused while a secret of that
/// name exists, or a deleted secret or certificate of that name is kept.
pub fn restore_secret_in(v: &mut Vault, secret: Secret) -> Result<Secret, AdminError> {
    let key = secret.name.to_ascii_lowercase();
    if v.deleted_secrets.contains_key(&key) || v.deleted_certificates.contains_key(&key) {
        return Err(AdminError::Conflict {
            what: "secret (deleted but recoverable)",
            name: secret.name,
        });
    }
    if v.secrets.contains_key(&key) {
        return Err(AdminError::Conflict {
            what: "secret",
            name: secret.name,
        });
    }
    v.secrets.insert(key, secret.clone());
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AuthorizationModel, Model};
    use crate::token::TokenIssuer;

    fn state() -> State {
        State::new(Model::default(), TokenIssuer::generate().unwrap(), None)
    }

    #[test]
    fn a_backup_blob_restores_every_version_once_and_nothing_else_restores() {
        let s = state();
        s.create_vault("vault", None, AuthorizationModel::Rbac)
            .unwrap();
        for value in ["one", "two"] {
            s.set_secret(
                "vault",
                "db",
                SecretSpec {
                    value: value.into(),
                    ..SecretSpec::default()
                },
            )
            .unwrap();
        }
        let secret = s.read(|m| m.vaults["vault"].secrets["db"].clone());
        let blob = backup_blob(&secret);
        let back = secret_from_backup(&blob).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&secret).unwrap()
        );
        for garbage in [&[0u8; 64][..], b"", &blob[1..], &blob[..blob.len() - 1]] {
            assert!(secret_from_backup(garbage).is_none());
        }
        // In use: refused; once gone, restored with both versions.
        assert!(matches!(
            s.with_vault("vault", |v| restore_secret_in(v, back.clone())),
            Err(AdminError::Conflict { what: "secret", .. })
        ));
        s.with_vault("vault", |v| {
            v.secrets.remove("db");
            Ok(())
        })
        .unwrap();
        let restored = s
            .with_vault("vault", |v| restore_secret_in(v, back))
            .unwrap();
        assert_eq!(restored.versions.len(), 2);
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
