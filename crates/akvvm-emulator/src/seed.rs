//! The seed file (JSON, or TOML when its name ends in `.toml`): what the emulator holds at start.
//!
//! ```json
//! {
//!   "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
//!   "identities": { "system": {"clientId": "..."}, "user": [{"clientId": "...", "name": "web"}] },
//!   "apps": [{"clientId": "...", "displayName": "paas", "certificatePem": "-----BEGIN CERTIFICATE-----..."}],
//!   "vaults": [{
//!     "name": "myvault",
//!     "roles": [{"principal": "system", "roles": ["Key Vault Secrets User"]}],
//!     "secrets": [{"name": "db", "value": "s3cret"}],
//!     "certificates": [{"name": "web", "policy": {"key_props": {"kty": "EC", "crv": "P-256"},
//!                        "x509_props": {"subject": "CN=web"}}}]
//!   }]
//! }
//! ```
//! The same in TOML has `[[vaults]]` tables, `[[vaults.roles]]`, `[[vaults.certificates]]` and so
//! on. Unknown keys are errors. Identities and apps are created before vaults, so roles may name
//! them.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::state::{AppSpec, IdentitySpec, State, VaultSpec};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// The default tenant; a random one when absent (or kept from the persisted state).
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub identities: SeedIdentities,
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    #[serde(default)]
    pub vaults: Vec<VaultSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedIdentities {
    #[serde(default)]
    pub system: Option<IdentitySpec>,
    #[serde(default)]
    pub user: Vec<IdentitySpec>,
}

impl Seed {
    /// Reads a seed file: TOML when its name ends in `.toml`, JSON otherwise.
    pub fn from_file(path: &Path) -> anyhow::Result<Seed> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read the seed file {}", path.display()))?;
        let is_toml = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("toml"));
        if is_toml {
            toml::from_str(&text)
                .with_context(|| format!("the TOML seed file {} is not valid", path.display()))
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("the JSON seed file {} is not valid", path.display()))
        }
    }
}

/// Applies a seed; objects that already exist (from a persisted state) are left alone.
pub fn apply(state: &State, seed: &Seed) -> anyhow::Result<()> {
    if let Some(tenant) = &seed.tenant_id {
        state
            .write(|m| {
                m.default_tenant = tenant.clone();
                Ok::<_, std::convert::Infallible>(())
            })
            .ok();
    }
    if let Some(system) = &seed.identities.system
        && state.read(|m| m.system_identity.is_none())
    {
        state.set_system_identity(system.clone())?;
    }
    for (index, user) in seed.identities.user.iter().enumerate() {
        let exists = user
            .client_id
            .as_ref()
            .is_some_and(|c| state.read(|m| m.user_identities.iter().any(|i| &i.client_id == c)));
        if !exists {
            state
                .add_user_identity(user.clone())
                .with_context(|| format!("identities.user[{index}]"))?;
        }
    }
    for (index, app) in seed.apps.iter().enumerate() {
        let exists = app
            .client_id
            .as_ref()
            .is_some_and(|c| state.read(|m| m.apps.contains_key(c)));
        if !exists {
            state
                .register_app(app.clone())
                .with_context(|| format!("apps[{index}]"))?;
        }
    }
    for (index, vault) in seed.vaults.iter().enumerate() {
        let exists = state.read(|m| m.vaults.contains_key(&vault.name.to_ascii_lowercase()));
        if !exists {
            state
                .create_vault_from_spec(vault)
                .with_context(|| format!("vaults[{index}] ({})", vault.name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{
        "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "identities": {"system": {"clientId": "c7373ae5-91c2-4165-8ab6-7381d6e75619"}},
        "vaults": [{
            "name": "myvault",
            "roles": [{"principal": "system", "roles": ["Key Vault Secrets User"]}],
            "secrets": [{"name": "db", "value": "s3cret", "contentType": "text/plain"}],
            "certificates": [{"name": "web", "policy": {"key_props": {"kty": "EC", "crv": "P-256"},
                              "x509_props": {"subject": "CN=web"}}}]
        }]
    }"#;

    const TOML: &str = r#"
        tenantId = "72f988bf-86f1-41af-91ab-2d7cd011db47"

        [identities.system]
        clientId = "c7373ae5-91c2-4165-8ab6-7381d6e75619"

        [[vaults]]
        name = "myvault"
        roles = [{ principal = "system", roles = ["Key Vault Secrets User"] }]
        secrets = [{ name = "db", value = "s3cret", contentType = "text/plain" }]

        [[vaults.certificates]]
        name = "web"
        policy = { key_props = { kty = "EC", crv = "P-256" }, x509_props = { subject = "CN=web" } }
    "#;

    fn read(name: &str, text: &str) -> anyhow::Result<Seed> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        Seed::from_file(&path)
    }

    #[test]
    fn a_toml_seed_reads_like_its_json_twin() {
        let from_json = read("seed.json", JSON).unwrap();
        let from_toml = read("seed.toml", TOML).unwrap();
        // Compared without printing: the seeds hold a secret value.
        assert!(
            serde_json::to_value(&from_toml).unwrap() == serde_json::to_value(&from_json).unwrap(),
            "the TOML seed reads differently from its JSON twin"
        );
        assert_eq!(from_toml.vaults[0].name, "myvault");
    }

    #[test]
    fn unknown_keys_are_errors_in_both_formats() {
        let err = read("seed.toml", "tenantId = \"t\"\nvault = []\n").unwrap_err();
        assert!(format!("{err:#}").contains("the TOML seed file"), "{err:#}");
        assert!(format!("{err:#}").contains("vault"), "{err:#}");
        let err = read("seed.json", r#"{"vault": []}"#).unwrap_err();
        assert!(format!("{err:#}").contains("the JSON seed file"), "{err:#}");
    }
}
