//! Vaults: creating one, empty or with what a [`VaultSpec`] says it holds (roles, secrets,
//! certificates; the admin API and the seed file both create vaults through it), and granting
//! or revoking roles in it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::State;
use super::certificates::{create_in, import_in};
use super::model::{ChallengeForm, Vault};
use super::rbac::{AuthorizationModel, RoleAssignment, expand_role};
use super::secrets::SecretSpec;
use super::valid_vault_name;
use crate::certs::{CertificateCreated, CertificateImport};
use crate::error::AdminError;

/// A vault to create, with what it holds (admin API and seed file).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VaultSpec {
    pub name: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub authorization: AuthorizationModel,
    /// The form of the 401 challenge (`resource`, the default, or `scope`).
    #[serde(default)]
    pub challenge: ChallengeForm,
    #[serde(default)]
    pub roles: Vec<RoleSpec>,
    #[serde(default)]
    pub secrets: Vec<NamedSecret>,
    #[serde(default)]
    pub certificates: Vec<NamedCertificate>,
}

/// Roles (or permissions) for one principal in a vault.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    /// Object id, client id, `system`, or an app's display name.
    pub principal: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedSecret {
    pub name: String,
    #[serde(flatten)]
    pub spec: SecretSpec,
}

/// A certificate in a vault: imported (`pfx`/`pem`) or self-signed from `policy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedCertificate {
    pub name: String,
    #[serde(default)]
    pub policy: Option<Value>,
    #[serde(flatten)]
    pub import: CertificateImport,
}

impl State {
    /// Creates an empty vault; in the default tenant when `tenant_id` is None.
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
                being_deleted: BTreeMap::new(),
                being_recovered: BTreeMap::new(),
            };
            m.vaults.insert(key, vault.clone());
            Ok(vault)
        })
    }

    /// Creates a vault with its contents.
    pub fn create_vault_from_spec(&self, spec: &VaultSpec) -> Result<Vault, AdminError> {
        self.create_vault(&spec.name, spec.tenant_id.as_deref(), spec.authorization)?;
        self.with_vault(&spec.name, |v| {
            v.challenge = spec.challenge;
            Ok(())
        })?;
        for role in &spec.roles {
            self.assign_roles(&spec.name, &role.principal, &role.roles)?;
        }
        for secret in &spec.secrets {
            self.set_secret(&spec.name, &secret.name, secret.spec.clone())?;
        }
        for cert in &spec.certificates {
            self.add_certificate(&spec.name, cert)?;
        }
        self.with_vault(&spec.name, |v| Ok(v.clone()))
    }

    /// A certificate of a [`VaultSpec`]: imported when it has a PFX or PEM, else self-signed from
    /// its policy.
    fn add_certificate(
        &self,
        vault: &str,
        cert: &NamedCertificate,
    ) -> Result<CertificateCreated, AdminError> {
        let policy = cert.policy.clone().unwrap_or(Value::Null);
        self.with_vault(vault, |v| {
            if cert.import.pfx.is_some() || cert.import.pem.is_some() {
                import_in(v, &cert.name, &cert.import, &policy)
            } else {
                create_in(v, &cert.name, &policy, true, cert.import.tags.clone())
            }
        })
    }

    /// Grants `roles` (role names or permissions, see [`expand_role`]) in `vault`.
    pub fn assign_roles(
        &self,
        vault: &str,
        principal: &str,
        roles: &[impl AsRef<str>],
    ) -> Result<(), AdminError> {
        let mut permissions = BTreeSet::new();
        for role in roles {
            permissions.extend(expand_role(role.as_ref())?);
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
}
