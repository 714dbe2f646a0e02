//! Identities: how akvvm gets Entra ID tokens for Key Vault.
//!
//! Two [`azure_core::credentials::TokenCredential`] implementations, both configured entirely
//! from settings (no address is hard-coded, so the local vault and sovereign clouds work):
//! - [`ManagedIdentityCredential`]: the VM's managed identity through IMDS at the settings'
//!   `msiEndpoint`, system-assigned or user-assigned (`msiClientId`).
//! - [`BootstrapCertificateCredential`]: the Cloud Services (`KeyVaultForPaaS`) path: an Entra
//!   application (`clientId`) proving itself with a certificate found on the machine
//!   ([`find_bootstrap_certificate`]) through a signed JWT client assertion. Its tenant is learned
//!   from Key Vault's 401 challenge through a [`TenantSlot`] that the vault transport fills.
//!
//! [`Identity`] wraps either one, names it for error messages ([`Identity::describe`]) and hands
//! the vault module the credential to give the SDK ([`Identity::credential_for`]).
//!
//! Tokens are cached per scope (and tenant) in a [`TokenCache`] and refreshed
//! [`REFRESH_MARGIN`] before they expire; concurrent callers share one refresh. Tokens are never
//! logged: [`azure_core::credentials::Secret`] hides them from `Debug`.
//!
//! To add an identity kind: implement the token request as a function returning
//! [`IdentityError`], wrap it with a [`TokenCache`], implement `TokenCredential` and add an
//! [`Identity`] variant.

mod assertion;
mod bootstrap;
mod cache;
mod imds;

use std::sync::{Arc, RwLock};

use azure_core::credentials::TokenCredential;

use crate::http::RetryPolicy;
use akvvm_cert::locks::RwLockExt;

pub use akvvm_settings::identity_id::{ManagedIdentityId, MsiIdError, OBJECT_ID_PREFIX};
pub use assertion::{
    ASSERTION_LIFETIME, AssertionAlgorithm, ClientAssertion, build_client_assertion,
};
pub use bootstrap::{
    BootstrapCertificate, BootstrapCertificateCredential, BootstrapOptions, CertificateSource,
    DEFAULT_WAAGENT_DIR, TenantBoundCredential, find_bootstrap_certificate,
};
pub use cache::{REFRESH_MARGIN, TokenCache};
pub use imds::{ARC_KEY_DIRECTORY, ManagedIdentityCredential, ManagedIdentityOptions};

/// The Key Vault resource (audience) in the public cloud, as IMDS's `resource` parameter.
pub const KEY_VAULT_RESOURCE: &str = "https://vault.azure.net";

/// The Key Vault scope in the public cloud, as Entra's v2 `scope` parameter.
pub const KEY_VAULT_SCOPE: &str = "https://vault.azure.net/.default";

/// Why a token could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// IMDS answered with an error document (or an unexpected status).
    #[error(
        "the managed identity endpoint {endpoint} refused a token for {identity}: HTTP {status}{}",
        describe_oauth_error(error.as_deref(), description.as_deref())
    )]
    Imds {
        /// The token URL, without query.
        endpoint: String,
        /// Which identity was asked for.
        identity: String,
        /// The HTTP status.
        status: u16,
        /// The `error` field, when the answer had one.
        error: Option<String>,
        /// The `error_description` field, when the answer had one.
        description: Option<String>,
    },
    /// Entra ID answered the client-credentials request with an error.
    #[error(
        "Entra ID at {endpoint} refused a token for application {client_id}: HTTP {status}{}",
        describe_oauth_error(error.as_deref(), description.as_deref())
    )]
    Entra {
        /// The token URL.
        endpoint: String,
        /// The application (client) id.
        client_id: String,
        /// The HTTP status.
        status: u16,
        /// The `error` field, when the answer had one.
        error: Option<String>,
        /// The `error_description` field, when the answer had one.
        description: Option<String>,
    },
    /// The token endpoint could not be reached.
    #[error("could not reach the token endpoint: {0}")]
    Transport(#[from] crate::http::HttpError),
    /// The token endpoint answered 200 with something that is not a token.
    #[error("the token endpoint {endpoint} sent an answer that is not a token: {reason}")]
    InvalidTokenResponse {
        /// The token URL.
        endpoint: String,
        /// What was wrong (never the token itself).
        reason: String,
    },
    /// The caller asked for something this credential cannot give.
    #[error("unsupported token request: {0}")]
    UnsupportedScope(String),
    /// Azure Arc's identity endpoint named a key file akvvm will not read, or cannot.
    #[error(
        "the Azure Arc identity endpoint {endpoint} asked for the key file {path:?}, which {reason}"
    )]
    ArcKey {
        /// The token URL.
        endpoint: String,
        /// The file the challenge named.
        path: String,
        /// Why it was not used, and what to do.
        reason: String,
    },
    /// The bootstrap credential does not know its tenant yet.
    #[error(
        "the tenant of application {client_id} is not known yet: it is learned from Key Vault's \
         401 challenge, so request tokens through akvvm's vault client (or give the tenant \
         explicitly)"
    )]
    TenantUnknown {
        /// The application (client) id.
        client_id: String,
    },
    /// No usable bootstrap certificate was found.
    #[error(
        "no certificate with subject CN={subject} and a private key that is valid now was found \
         in {searched}{}; install the certificate (osProfile.secrets or the certificate store) or \
         correct clientCertificateSubjectName",
        if rejected.is_empty() { String::new() } else { format!(" (rejected: {})", rejected.join("; ")) }
    )]
    CertificateNotFound {
        /// The subject CN looked for.
        subject: String,
        /// The places searched.
        searched: String,
        /// Candidates with the right subject and why they were not used.
        rejected: Vec<String>,
    },
    /// The bootstrap certificate's key cannot sign a client assertion.
    #[error(
        "the certificate {path} has an {algorithm} key, but Entra ID client assertions need an \
         RSA key; issue the bootstrap certificate with an RSA key"
    )]
    NonRsaKey {
        /// The file holding the key.
        path: String,
        /// The key algorithm found.
        algorithm: String,
    },
    /// A certificate or key file could not be decoded.
    #[error("failed to decode {path}: {reason}")]
    InvalidCertificateFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Signing the client assertion failed.
    #[error("failed to sign the client assertion: {0}")]
    Signing(String),
}

akvvm_cert::error_codes! {
    IdentityError {
        IdentityError::Imds { .. } => "identity.imds_refused",
        IdentityError::Entra { .. } => "identity.entra_refused",
        IdentityError::InvalidTokenResponse { .. } => "identity.token_response_invalid",
        IdentityError::UnsupportedScope(_) => "identity.scope_unsupported",
        IdentityError::ArcKey { .. } => "identity.arc_key_refused",
        IdentityError::TenantUnknown { .. } => "identity.tenant_unknown",
        IdentityError::CertificateNotFound { .. } => "identity.bootstrap_certificate_not_found",
        IdentityError::NonRsaKey { .. } => "identity.bootstrap_certificate_not_rsa",
        IdentityError::InvalidCertificateFile { .. } => "identity.bootstrap_certificate_invalid",
        IdentityError::Signing(_) => "identity.assertion_signing_failed",
    }
    passes through {
        IdentityError::Transport(inner) => inner,
    }
}

impl IdentityError {
    /// Wraps the error for the SDK, keeping it reachable through `downcast_ref`.
    pub(crate) fn into_azure(self) -> azure_core::Error {
        let message = self.to_string();
        azure_core::Error::with_error(azure_core::error::ErrorKind::Credential, self, message)
    }
}

fn describe_oauth_error(error: Option<&str>, description: Option<&str>) -> String {
    match (error, description) {
        (Some(e), Some(d)) => format!(" {e}: {d}"),
        (Some(e), None) => format!(" {e}"),
        (None, Some(d)) => format!(": {d}"),
        (None, None) => String::new(),
    }
}

/// Turns the scopes the SDK asks for into the one scope a credential serves.
pub(crate) fn single_scope<'a>(scopes: &[&'a str]) -> Result<&'a str, IdentityError> {
    match scopes {
        [scope] if !scope.trim().is_empty() => Ok(scope),
        _ => Err(IdentityError::UnsupportedScope(format!(
            "exactly one scope is supported, got {scopes:?}"
        ))),
    }
}

/// Where a credential that needs a tenant learns it: the vault transport writes the tenant found
/// in Key Vault's 401 challenge; the bootstrap credential reads it.
#[derive(Debug, Default)]
pub struct TenantSlot(RwLock<Option<String>>);

impl TenantSlot {
    /// An empty slot.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A slot holding a known tenant.
    pub fn with_tenant(tenant: &str) -> Arc<Self> {
        let slot = Self::default();
        slot.set(tenant);
        Arc::new(slot)
    }

    /// Records the tenant.
    pub fn set(&self, tenant: &str) {
        let mut guard = self.0.write_or_recover();
        *guard = Some(tenant.to_owned());
    }

    /// The tenant, once known.
    pub fn get(&self) -> Option<String> {
        self.0.read_or_recover().clone()
    }
}

/// Whether `tenant` looks like an Entra tenant id or domain (GUID or DNS name); anything else
/// from a challenge is refused rather than put into a URL.
pub fn is_valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 256
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

/// The identity akvvm authenticates as.
#[derive(Clone, Debug)]
pub enum Identity {
    /// A managed identity through IMDS.
    Managed(Arc<ManagedIdentityCredential>),
    /// An Entra application with a bootstrap certificate.
    Bootstrap(Arc<BootstrapCertificateCredential>),
}

impl Identity {
    /// The identity the settings' `authenticationSettings` describe, with its HTTP client
    /// built from `http` (see [`crate::http::HttpOptions::from_settings`]).
    ///
    /// Retry pauses follow [`RetryPolicy::imds`] and [`RetryPolicy::entra`], none longer than
    /// the polling interval.
    ///
    /// For the bootstrap certificate, the certificate is looked for now, in the global store,
    /// each observed certificate's store and `akvvm.bootstrapCertificateDirectories`
    /// (`<THUMBPRINT>.crt` + `.prv`); when the platform later installs a newer one, build the
    /// identity again.
    pub fn from_settings(
        settings: &crate::settings::Settings,
        http: &crate::http::HttpOptions,
    ) -> Result<Self, IdentityError> {
        use crate::settings::Authentication;
        match &settings.authentication {
            Authentication::ManagedIdentity {
                endpoint,
                client_id,
            } => Ok(Identity::Managed(Arc::new(
                ManagedIdentityCredential::for_identity(
                    endpoint,
                    client_id.clone(),
                    http,
                    ManagedIdentityOptions {
                        retry: RetryPolicy::imds().capped(settings.polling_interval),
                        ..ManagedIdentityOptions::default()
                    },
                )?,
            ))),
            Authentication::BootstrapCertificate {
                client_id,
                subject_name,
            } => {
                let certificate = find_bootstrap_certificate(
                    subject_name,
                    &bootstrap_sources(settings),
                    time::OffsetDateTime::now_utc(),
                )?;
                Ok(Identity::Bootstrap(Arc::new(
                    BootstrapCertificateCredential::new(
                        &settings.agent.authority_host,
                        client_id,
                        certificate,
                        http,
                        BootstrapOptions {
                            retry: RetryPolicy::entra().capped(settings.polling_interval),
                            ..BootstrapOptions::default()
                        },
                    )?,
                )))
            }
        }
    }

    /// Names the identity for messages: "the system-assigned managed identity",
    /// "the user-assigned managed identity with client id …", "the application … (certificate …)".
    pub fn describe(&self) -> String {
        match self {
            Identity::Managed(credential) => credential.describe(),
            Identity::Bootstrap(credential) => credential.describe(),
        }
    }

    /// The credential to give the Key Vault SDK for one vault; `tenant` is the vault's slot,
    /// filled from its challenge (only the bootstrap credential reads it).
    pub fn credential_for(&self, tenant: Arc<TenantSlot>) -> Arc<dyn TokenCredential> {
        match self {
            Identity::Managed(credential) => credential.clone(),
            Identity::Bootstrap(credential) => Arc::new(credential.bind_tenant(tenant)),
        }
    }

    /// Drops the credential's cached tokens: called when Key Vault rejects a token with 401,
    /// so the next request does not present the same rejected token until it expires.
    pub async fn forget_tokens(&self) {
        match self {
            Identity::Managed(credential) => credential.forget_tokens().await,
            Identity::Bootstrap(credential) => credential.forget_tokens().await,
        }
    }

    /// Whether the credential needs the tenant from the challenge.
    pub fn needs_tenant(&self) -> bool {
        matches!(self, Identity::Bootstrap(_))
    }
}

/// Where the settings say bootstrap certificates may be: every store directory, then the
/// guest agent's directories.
pub fn bootstrap_sources(settings: &crate::settings::Settings) -> Vec<CertificateSource> {
    let mut sources = vec![CertificateSource::Store(settings.store.clone())];
    for observed in &settings.observed {
        let source = CertificateSource::Store(observed.store_dir.clone());
        if !sources.contains(&source) {
            sources.push(source);
        }
    }
    for dir in &settings.agent.bootstrap_certificate_directories {
        sources.push(CertificateSource::Pairs(dir.clone()));
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_scope_accepts_one() {
        assert_eq!(single_scope(&[KEY_VAULT_SCOPE]).unwrap(), KEY_VAULT_SCOPE);
        let err = single_scope(&["a", "b"]).unwrap_err();
        assert_eq!(err.code(), "identity.scope_unsupported");
        assert!(single_scope(&[]).is_err());
    }

    #[test]
    fn tenant_validation() {
        assert!(is_valid_tenant("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(is_valid_tenant("contoso.onmicrosoft.com"));
        assert!(!is_valid_tenant(""));
        assert!(!is_valid_tenant("evil/../x"));
        assert!(!is_valid_tenant("a?b=c"));
    }

    #[test]
    fn tenant_slot_round_trip() {
        let slot = TenantSlot::new();
        assert_eq!(slot.get(), None);
        slot.set("t1");
        assert_eq!(slot.get().as_deref(), Some("t1"));
        assert_eq!(TenantSlot::with_tenant("t2").get().as_deref(), Some("t2"));
    }

    #[test]
    fn every_error_has_a_distinct_code_and_message() {
        let errors = vec![
            IdentityError::Imds {
                endpoint: "http://127.0.0.1/metadata/identity/oauth2/token".into(),
                identity: "the system-assigned managed identity".into(),
                status: 400,
                error: Some("invalid_request".into()),
                description: Some("Identity not found".into()),
            },
            IdentityError::Entra {
                endpoint: "https://login/t/oauth2/v2.0/token".into(),
                client_id: "app".into(),
                status: 401,
                error: Some("invalid_client".into()),
                description: None,
            },
            IdentityError::Transport(crate::http::HttpError::InvalidHostOverride {
                host: "h".into(),
                value: "v".into(),
                reason: "r".into(),
            }),
            IdentityError::InvalidTokenResponse {
                endpoint: "e".into(),
                reason: "r".into(),
            },
            IdentityError::UnsupportedScope("s".into()),
            IdentityError::TenantUnknown {
                client_id: "app".into(),
            },
            IdentityError::CertificateNotFound {
                subject: "bootstrap".into(),
                searched: "/var/lib/waagent".into(),
                rejected: vec!["X.crt: expired".into()],
            },
            IdentityError::NonRsaKey {
                path: "p".into(),
                algorithm: "EC".into(),
            },
            IdentityError::InvalidCertificateFile {
                path: "p".into(),
                reason: "r".into(),
            },
            IdentityError::Signing("s".into()),
            IdentityError::ArcKey {
                endpoint: "e".into(),
                path: "/tmp/x.key".into(),
                reason: "r".into(),
            },
        ];
        let codes: std::collections::BTreeSet<_> = errors.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), errors.len());
        let mut own: Vec<&str> = errors
            .iter()
            .filter(|e| !matches!(e, IdentityError::Transport(_)))
            .map(IdentityError::code)
            .collect();
        own.sort_unstable();
        let mut listed = IdentityError::CODES.to_vec();
        listed.sort_unstable();
        assert_eq!(own, listed);
        assert!(own.iter().all(|c| akvvm_cert::codes::is_well_formed(c)));
        let IdentityError::Transport(inner) = &errors[2] else {
            unreachable!()
        };
        assert_eq!(
            errors[2].code(),
            inner.code(),
            "the HTTP error's code passes through"
        );
        assert!(
            errors[0]
                .to_string()
                .contains("invalid_request: Identity not found")
        );
        assert!(errors[6].to_string().contains("X.crt: expired"));
        assert!(errors[7].to_string().contains("RSA"));
    }
}
