//! From settings to connections: one [`VaultClient`] per vault and identity ([`VaultKey`]),
//! sharing the HTTP options ([`HttpOptions::from_settings`]: extra CA roots, `resolve`) and, per
//! identity, one credential and its token cache: the identity of `authenticationSettings`
//! ([`Identity::from_settings`]: managed identity or bootstrap certificate), and one managed
//! identity per distinct `authenticationOverride` (same `msiEndpoint`).
//!
//! Retry pauses follow the identity and vault modules' policies, but none is longer than the
//! polling interval: a short polling interval (the local vault, tests) retries quickly too.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::http::{HttpOptions, RetryPolicy};
use crate::identity::{Identity, IdentityError, ManagedIdentityCredential, ManagedIdentityId};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::vault::{VaultClient, VaultError, VaultOptions};

/// Why connections could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Vault(Box<VaultError>),
    /// An `authenticationOverride` under bootstrap-certificate authentication.
    #[error(
        "{url} has an authenticationOverride ({identity}), but authenticationSettings uses a \
         bootstrap certificate, which has no managed identity endpoint; remove the override"
    )]
    OverrideWithoutManagedIdentity { url: String, identity: String },
}

impl From<VaultError> for ConnectError {
    fn from(error: VaultError) -> Self {
        ConnectError::Vault(Box::new(error))
    }
}

akvvm_cert::error_codes! {
    ConnectError {
        ConnectError::OverrideWithoutManagedIdentity { .. } => "sync.override_without_managed_identity",
    }
    passes through {
        ConnectError::Identity(e) => e,
        ConnectError::Vault(e) => e,
    }
}

/// The identity and client options of `settings`, counting requests in `metrics` when given.
fn identity_and_options(
    settings: &Settings,
    metrics: Option<Arc<Metrics>>,
) -> Result<(Identity, VaultOptions), ConnectError> {
    let http = HttpOptions::from_settings(&settings.agent);
    let identity = Identity::from_settings(settings, &http)?;
    let options = VaultOptions {
        http,
        retry: RetryPolicy::key_vault().capped(settings.polling_interval),
        metrics,
        // A managed identity's first request carries its token: one request fewer per vault
        // and process (a fleet booting together saves one per machine).
        preauthenticate: true,
        ..VaultOptions::default()
    };
    Ok((identity, options))
}

/// A client for one vault with the identity and HTTP options of `settings` (for a vault the
/// settings need not observe: `akvvm inspect URL`).
pub fn vault_client(
    settings: &Settings,
    vault_url: &url::Url,
) -> Result<VaultClient, ConnectError> {
    let (identity, options) = identity_and_options(settings, None)?;
    Ok(VaultClient::new(vault_url, &identity, &options)?)
}

/// Which client a certificate goes through: its vault's host, and its `authenticationOverride`
/// (`None`: the identity of `authenticationSettings`, also when the override names that same
/// identity).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VaultKey {
    /// The vault's host, e.g. `contoso.vault.azure.net`.
    pub host: String,
    /// The certificate's `authenticationOverride`; `None` for the top-level identity.
    pub identity: Option<ManagedIdentityId>,
}

impl VaultKey {
    /// The key of `cert`'s client: its vault's host, and its identity ([`identity_key`]).
    pub fn of(settings: &Settings, cert: &crate::settings::ObservedCertificate) -> Self {
        VaultKey {
            host: cert.url.host.clone(),
            identity: identity_key(settings, cert),
        }
    }
}

/// The identity key of `cert`'s client: its override, unless that is the top-level identity.
pub fn identity_key(
    settings: &Settings,
    cert: &crate::settings::ObservedCertificate,
) -> Option<ManagedIdentityId> {
    let chosen = cert.authentication_override.as_ref()?;
    let top = match &settings.authentication {
        crate::settings::Authentication::ManagedIdentity {
            client_id: Some(id),
            ..
        } => Some(id),
        _ => None,
    };
    (top != Some(chosen)).then(|| chosen.clone())
}

/// One client per vault host and identity of the observed certificates, counting their
/// requests in `metrics` when given. Every client of one identity shares its credential, so its
/// tokens are asked for once and cached for all of them.
pub fn vault_clients(
    settings: &Settings,
    metrics: Option<Arc<Metrics>>,
) -> Result<BTreeMap<VaultKey, VaultClient>, ConnectError> {
    let (identity, options) = identity_and_options(settings, metrics)?;
    let mut identities: BTreeMap<ManagedIdentityId, Identity> = BTreeMap::new();
    let mut clients = BTreeMap::new();
    for cert in &settings.observed {
        let key = VaultKey::of(settings, cert);
        if clients.contains_key(&key) {
            continue;
        }
        let identity = match &key.identity {
            None => identity.clone(),
            Some(id) => match identities.get(id) {
                Some(identity) => identity.clone(),
                None => {
                    let made =
                        override_identity(settings, &options.http, id).ok_or_else(|| {
                            ConnectError::OverrideWithoutManagedIdentity {
                                url: cert.url.to_string(),
                                identity: id.to_string(),
                            }
                        })??;
                    identities.insert(id.clone(), made.clone());
                    made
                }
            },
        };
        let client = VaultClient::new(&cert.url.vault_url, &identity, &options)?;
        clients.insert(key, client);
    }
    Ok(clients)
}

/// The managed identity `id` at the settings' `msiEndpoint`, with the top-level identity's
/// retry policy; `None` when the settings use a bootstrap certificate.
fn override_identity(
    settings: &Settings,
    http: &HttpOptions,
    id: &ManagedIdentityId,
) -> Option<Result<Identity, ConnectError>> {
    let crate::settings::Authentication::ManagedIdentity { endpoint, .. } =
        &settings.authentication
    else {
        return None;
    };
    Some(
        ManagedIdentityCredential::new(
            endpoint,
            Some(&id.setting()),
            http,
            crate::identity::ManagedIdentityOptions {
                retry: RetryPolicy::imds().capped(settings.polling_interval),
                ..crate::identity::ManagedIdentityOptions::default()
            },
        )
        .map(|credential| Identity::Managed(Arc::new(credential)))
        .map_err(ConnectError::from),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_naming_the_top_level_identity_shares_its_client() {
        let top = "c7373ae5-91c2-4165-8ab6-7381d6e75619";
        let other = "0b0e8c9d-5b2a-4f3e-9c1d-2a3b4c5d6e7f";
        let json = serde_json::json!({
            "secretsManagementSettings": {"observedCertificates": [
                {"url": "https://v.vault.azure.net/secrets/a"},
                {"url": "https://v.vault.azure.net/secrets/b", "authenticationOverride": {"msiClientId": top}},
                {"url": "https://v.vault.azure.net/secrets/c", "authenticationOverride": {"msiClientId": other}},
                {"url": "https://w.vault.azure.net/secrets/d", "authenticationOverride": {"msiClientId": other}},
            ]},
            "authenticationSettings": {"msiEndpoint": "http://169.254.169.254/metadata/identity", "msiClientId": top},
        });
        let (settings, _) = Settings::from_json_value(&json).unwrap();
        let keys: Vec<Option<ManagedIdentityId>> = settings
            .observed
            .iter()
            .map(|c| identity_key(&settings, c))
            .collect();
        let other_id = Some(ManagedIdentityId::ClientId(other.into()));
        assert_eq!(keys, vec![None, None, other_id.clone(), other_id]);
        let clients = vault_clients(&settings, None).unwrap();
        let mut found: Vec<(String, bool)> = clients
            .keys()
            .map(|key| (key.host.clone(), key.identity.is_some()))
            .collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                ("v.vault.azure.net".to_owned(), false),
                ("v.vault.azure.net".to_owned(), true),
                ("w.vault.azure.net".to_owned(), true),
            ]
        );
    }
}
