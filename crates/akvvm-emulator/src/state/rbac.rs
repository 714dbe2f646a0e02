//! Role-based access: the permissions a caller may hold in a vault ([`Permission`], with the
//! data action and access-policy words Key Vault's 403 bodies name), the built-in roles that
//! grant them ([`expand_role`]), a vault's authorization model, and a role assignment.
//!
//! Assigning and revoking roles are vault operations ([`super::vaults`]); the check of a
//! request is [`super::model::Vault::allows`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::AdminError;

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
    #[serde(rename = "secrets/backup")]
    SecretsBackup,
    #[serde(rename = "secrets/restore")]
    SecretsRestore,
    #[serde(rename = "secrets/recover")]
    SecretsRecover,
    #[serde(rename = "secrets/purge")]
    SecretsPurge,
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
    #[serde(rename = "certificates/backup")]
    CertificatesBackup,
    #[serde(rename = "certificates/restore")]
    CertificatesRestore,
    #[serde(rename = "certificates/recover")]
    CertificatesRecover,
    #[serde(rename = "certificates/purge")]
    CertificatesPurge,
}

impl Permission {
    pub const ALL: [Permission; 17] = [
        Permission::SecretsGet,
        Permission::SecretsList,
        Permission::SecretsSet,
        Permission::SecretsDelete,
        Permission::SecretsBackup,
        Permission::SecretsRestore,
        Permission::SecretsRecover,
        Permission::SecretsPurge,
        Permission::CertificatesGet,
        Permission::CertificatesList,
        Permission::CertificatesCreate,
        Permission::CertificatesImport,
        Permission::CertificatesDelete,
        Permission::CertificatesBackup,
        Permission::CertificatesRestore,
        Permission::CertificatesRecover,
        Permission::CertificatesPurge,
    ];

    /// The RBAC data action Key Vault names in its 403 message.
    pub fn data_action(self) -> &'static str {
        match self {
            Permission::SecretsGet => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            Permission::SecretsList => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            Permission::SecretsSet => "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            Permission::SecretsDelete => "Microsoft.KeyVault/vaults/secrets/delete",
            Permission::SecretsBackup => "Microsoft.KeyVault/vaults/secrets/backup/action",
            Permission::SecretsRestore => "Microsoft.KeyVault/vaults/secrets/restore/action",
            Permission::SecretsRecover => "Microsoft.KeyVault/vaults/secrets/recover/action",
            Permission::SecretsPurge => "Microsoft.KeyVault/vaults/secrets/purge/action",
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
            Permission::CertificatesBackup => {
                "Microsoft.KeyVault/vaults/certificates/backup/action"
            }
            Permission::CertificatesRestore => {
                "Microsoft.KeyVault/vaults/certificates/restore/action"
            }
            Permission::CertificatesRecover => {
                "Microsoft.KeyVault/vaults/certificates/recover/action"
            }
            Permission::CertificatesPurge => "Microsoft.KeyVault/vaults/certificates/purge/action",
        }
    }

    /// The access-policy wording: ("secrets", "get").
    pub fn policy_words(self) -> (&'static str, &'static str) {
        match self {
            Permission::SecretsGet => ("secrets", "get"),
            Permission::SecretsList => ("secrets", "list"),
            Permission::SecretsSet => ("secrets", "set"),
            Permission::SecretsDelete => ("secrets", "delete"),
            Permission::SecretsBackup => ("secrets", "backup"),
            Permission::SecretsRestore => ("secrets", "restore"),
            Permission::SecretsRecover => ("secrets", "recover"),
            Permission::SecretsPurge => ("secrets", "purge"),
            Permission::CertificatesGet => ("certificates", "get"),
            Permission::CertificatesList => ("certificates", "list"),
            Permission::CertificatesCreate => ("certificates", "create"),
            Permission::CertificatesImport => ("certificates", "import"),
            Permission::CertificatesDelete => ("certificates", "delete"),
            Permission::CertificatesBackup => ("certificates", "backup"),
            Permission::CertificatesRestore => ("certificates", "restore"),
            Permission::CertificatesRecover => ("certificates", "recover"),
            Permission::CertificatesPurge => ("certificates", "purge"),
        }
    }
}

/// Expands a role or permission name into permissions: a built-in role name
/// ("Key Vault Secrets User", "Key Vault Secrets Officer", "Key Vault Certificates Officer",
/// "Key Vault Certificate User", "Key Vault Reader", "Key Vault Administrator"), a permission
/// ("secrets/get"), or the short forms "get" and "list" (secrets).
pub fn expand_role(name: &str) -> Result<Vec<Permission>, AdminError> {
    use Permission::*;
    let name = name.trim().to_ascii_lowercase();
    // A permission by its name ("secrets/get", "certificates/purge", ...).
    if let Ok(permission) = serde_json::from_value::<Permission>(name.clone().into()) {
        return Ok(vec![permission]);
    }
    let perms = match name.as_str() {
        "get" => vec![SecretsGet],
        "list" => vec![SecretsList],
        "set" => vec![SecretsSet],
        "delete" => vec![SecretsDelete],
        "key vault secrets user" => vec![SecretsGet, SecretsList],
        "key vault secrets officer" => vec![
            SecretsGet,
            SecretsList,
            SecretsSet,
            SecretsDelete,
            SecretsBackup,
            SecretsRestore,
            SecretsRecover,
            SecretsPurge,
        ],
        "key vault certificates officer" => vec![
            CertificatesGet,
            CertificatesList,
            CertificatesCreate,
            CertificatesImport,
            CertificatesDelete,
            CertificatesBackup,
            CertificatesRestore,
            CertificatesRecover,
            CertificatesPurge,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleAssignment {
    /// The principal's object id (or client id).
    pub principal: String,
    pub permissions: BTreeSet<Permission>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
