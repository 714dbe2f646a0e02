//! From settings to connections: the HTTP options (extra CA roots, `resolve`), the identity
//! (managed identity or bootstrap certificate) and one [`VaultClient`] per vault.
//!
//! Retry pauses follow the identity and vault modules' policies, but none is longer than the
//! polling interval: a short polling interval (the local vault, tests) retries quickly too.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::http::{HostOverride, HttpError, HttpOptions, RetryPolicy};
use crate::identity::{
    BootstrapCertificateCredential, BootstrapOptions, Identity, IdentityError,
    ManagedIdentityCredential, ManagedIdentityOptions, bootstrap_sources,
    find_bootstrap_certificate,
};
use crate::settings::{Authentication, Settings};
use crate::vault::{VaultClient, VaultError, VaultOptions};

/// Why connections could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("akvvm.resolve: {0}")]
    Resolve(#[source] HttpError),
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

impl ConnectError {
    /// A stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectError::Resolve(e) => e.code(),
            ConnectError::Identity(e) => e.code(),
            ConnectError::Vault(e) => e.code(),
        }
    }
}

/// The HTTP options the settings describe: `akvvm.caCertificates` and `akvvm.resolve`.
pub fn http_options(settings: &Settings) -> Result<HttpOptions, ConnectError> {
    let host_overrides = settings
        .agent
        .resolve
        .iter()
        .map(|(host, target)| HostOverride::parse(host, &target.to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ConnectError::Resolve)?;
    Ok(HttpOptions {
        extra_ca_files: settings.agent.ca_certificates.clone(),
        host_overrides,
        ..HttpOptions::default()
    })
}

/// `policy` with no pause longer than `cap`.
fn capped(mut policy: RetryPolicy, cap: Duration) -> RetryPolicy {
    policy.max_delay = policy.max_delay.min(cap);
    policy.initial_delay = policy.initial_delay.min(cap / 4);
    policy
}

/// The identity the settings name. The bootstrap certificate is looked for in the stores and
/// `akvvm.bootstrapCertificateDirectories`.
pub fn identity(settings: &Settings, http: &HttpOptions) -> Result<Identity, ConnectError> {
    let cap = settings.polling_interval;
    match &settings.authentication {
        Authentication::ManagedIdentity {
            endpoint,
            client_id,
        } => {
            let options = ManagedIdentityOptions {
                retry: capped(RetryPolicy::imds(), cap),
            };
            let credential =
                ManagedIdentityCredential::new(endpoint, client_id.as_deref(), http, options)?;
            Ok(Identity::Managed(credential.into()))
        }
        Authentication::BootstrapCertificate {
            client_id,
            subject_name,
        } => {
            let certificate = find_bootstrap_certificate(
                subject_name,
                &bootstrap_sources(settings),
                OffsetDateTime::now_utc(),
            )?;
            let options = BootstrapOptions {
                retry: capped(RetryPolicy::entra(), cap),
                ..BootstrapOptions::default()
            };
            let credential = BootstrapCertificateCredential::new(
                &settings.agent.authority_host,
                client_id,
                certificate,
                http,
                options,
            )?;
            Ok(Identity::Bootstrap(credential.into()))
        }
    }
}

/// One client per vault host of the observed certificates.
pub fn vault_clients(settings: &Settings) -> Result<BTreeMap<String, VaultClient>, ConnectError> {
    let http = http_options(settings)?;
    let identity = identity(settings, &http)?;
    let options = VaultOptions {
        http,
        retry: capped(RetryPolicy::key_vault(), settings.polling_interval),
        ..VaultOptions::default()
    };
    let mut clients = BTreeMap::new();
    for cert in &settings.observed {
        if !clients.contains_key(&cert.url.host) {
            let client = VaultClient::new(&cert.url.vault_url, &identity, &options)?;
            clients.insert(cert.url.host.clone(), client);
        }
    }
    Ok(clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pauses_never_exceed_the_cap() {
        let policy = capped(RetryPolicy::key_vault(), Duration::from_secs(1));
        assert_eq!(policy.max_delay, Duration::from_secs(1));
        assert_eq!(policy.initial_delay, Duration::from_millis(250));
        let long = capped(RetryPolicy::key_vault(), Duration::from_secs(3600));
        assert_eq!(long, RetryPolicy::key_vault());
    }
}
