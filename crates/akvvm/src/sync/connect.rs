//! From settings to connections: one [`VaultClient`] per vault, sharing the HTTP options
//! ([`HttpOptions::from_settings`]: extra CA roots, `resolve`) and the identity
//! ([`Identity::from_settings`]: managed identity or bootstrap certificate).
//!
//! Retry pauses follow the identity and vault modules' policies, but none is longer than the
//! polling interval: a short polling interval (the local vault, tests) retries quickly too.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::http::{HttpOptions, RetryPolicy};
use crate::identity::{Identity, IdentityError};
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
}

impl From<VaultError> for ConnectError {
    fn from(error: VaultError) -> Self {
        ConnectError::Vault(Box::new(error))
    }
}

akvvm_cert::error_codes! {
    ConnectError {}
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

/// One client per vault host of the observed certificates, counting their requests in
/// `metrics` when given.
pub fn vault_clients(
    settings: &Settings,
    metrics: Option<Arc<Metrics>>,
) -> Result<BTreeMap<String, VaultClient>, ConnectError> {
    let (identity, options) = identity_and_options(settings, metrics)?;
    let mut clients = BTreeMap::new();
    for cert in &settings.observed {
        if !clients.contains_key(&cert.url.host) {
            let client = VaultClient::new(&cert.url.vault_url, &identity, &options)?;
            clients.insert(cert.url.host.clone(), client);
        }
    }
    Ok(clients)
}
