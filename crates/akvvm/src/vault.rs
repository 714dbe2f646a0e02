//! Key Vault access: reading secrets through the official `azure_security_keyvault_secrets`
//! client, with akvvm's identities, HTTP client and retry policy.
//!
//! One [`VaultClient`] per vault: it owns one pooled reqwest client (built by
//! [`crate::http::build_client`], so extra CA roots, host overrides and `HTTPS_PROXY` apply) and
//! one SDK `SecretClient` on top of it.
//!
//! How a request flows:
//! 1. The SDK's Key Vault authorization policy sends the first request without a token.
//! 2. Key Vault answers 401 with `WWW-Authenticate: Bearer authorization="…/{tenant}",
//!    resource="https://vault.azure.net"`. akvvm's transport ([`VaultTransport`]) reads the
//!    tenant from it into the vault's [`TenantSlot`] (only when the request was https and its
//!    host ends with `.{resource host}`); the bootstrap credential needs that tenant.
//! 3. The SDK checks the same host rule (`verify_challenge_resource`, always on) and refuses
//!    tokens over plain http, then asks the credential for `{resource}/.default` and repeats
//!    the request with the token. So a token only ever goes over https to a host under the
//!    challenge's resource host.
//!
//! Retries: azure_core's own retry policy is turned off (`RetryOptions::none()`), and the
//! transport retries 429 and 5xx (and connection failures) with akvvm's [`RetryPolicy`]
//! (exponential backoff, full jitter, `Retry-After` honoured), so retries are never doubled and
//! one policy, as data, governs every request akvvm sends.
//!
//! Errors are [`VaultError`]s, each with a stable [`VaultError::code`], naming the identity, the
//! vault and, for permission problems, the missing right.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use azure_core::http::headers::{AUTHORIZATION, HeaderName, Headers, WWW_AUTHENTICATE};
use azure_core::http::{
    AsyncRawResponse, ClientOptions, HttpClient, Request, RetryOptions, Transport,
};
use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;
use zeroize::Zeroizing;

use crate::http::{self, HttpOptions, RetryPolicy};
use crate::identity::{Identity, IdentityError, TenantSlot, is_valid_tenant};

/// The right a reader of certificates needs, as said in permission errors.
pub const REQUIRED_RIGHT: &str = "the \"Key Vault Secrets User\" role on the vault (Azure RBAC), \
     or an access policy granting get and list on secrets";

/// Knobs of [`VaultClient`].
#[derive(Clone, Debug)]
pub struct VaultOptions {
    /// How the HTTP client reaches the vault.
    pub http: HttpOptions,
    /// How 429, 5xx and connection failures are retried.
    pub retry: RetryPolicy,
    /// The Key Vault API version; the SDK's default when `None`.
    pub api_version: Option<String>,
    /// Where each HTTP attempt is counted (by vault host and status), if anywhere.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Default for VaultOptions {
    fn default() -> Self {
        Self {
            http: HttpOptions::default(),
            retry: RetryPolicy::key_vault(),
            api_version: None,
            metrics: None,
        }
    }
}

/// One version of a secret, as Key Vault returned it.
#[derive(Clone)]
pub struct SecretBundle {
    /// The secret's name.
    pub name: String,
    /// The version: the last segment of `id`.
    pub version: String,
    /// `https://{vault}/secrets/{name}/{version}`.
    pub id: String,
    /// The value (a base64 PFX or PEM text for certificates); wiped from memory on drop.
    pub value: Zeroizing<String>,
    /// `application/x-pkcs12`, `application/x-pem-file`, or whatever the uploader set.
    pub content_type: Option<String>,
    /// Whether the secret is enabled.
    pub enabled: Option<bool>,
    /// Whether Key Vault manages it (true for a certificate's secret).
    pub managed: Option<bool>,
    /// The certificate's key id, for managed secrets.
    pub key_id: Option<String>,
    /// Not valid before.
    pub not_before: Option<OffsetDateTime>,
    /// Expiry.
    pub expires: Option<OffsetDateTime>,
    /// Creation time.
    pub created: Option<OffsetDateTime>,
    /// Last update time.
    pub updated: Option<OffsetDateTime>,
    /// Tags.
    pub tags: HashMap<String, String>,
}

impl std::fmt::Debug for SecretBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBundle")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("id", &self.id)
            .field(
                "value",
                &format_args!("<{} bytes redacted>", self.value.len()),
            )
            .field("content_type", &self.content_type)
            .field("enabled", &self.enabled)
            .field("managed", &self.managed)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The vault URL is not usable.
    #[error("invalid vault URL {url}: {reason}")]
    InvalidVaultUrl {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for {vault}: {source}")]
    Client {
        /// The vault.
        vault: String,
        /// The cause.
        source: http::HttpError,
    },
    /// 401: Key Vault refused the token.
    #[error(
        "{vault} refused the token of {identity} (HTTP 401{}); check that the identity exists in \
         the vault's tenant and that it has {REQUIRED_RIGHT}",
        service_said(message)
    )]
    Unauthorized {
        /// The vault.
        vault: String,
        /// The identity.
        identity: String,
        /// Key Vault's message.
        message: Option<String>,
    },
    /// 403: the identity lacks the right to read the secret.
    #[error(
        "{identity} may not read secret {secret} in {vault} (HTTP 403{}): grant it {REQUIRED_RIGHT}",
        service_said(message)
    )]
    Forbidden {
        /// The vault.
        vault: String,
        /// The secret.
        secret: String,
        /// The identity.
        identity: String,
        /// Key Vault's message.
        message: Option<String>,
    },
    /// 404: the secret (or that version) does not exist.
    #[error(
        "secret {secret}{} was not found in {vault} (HTTP 404{}); check the name in \
         observedCertificates, or whether the certificate was deleted",
        version.as_ref().map(|v| format!(" version {v}")).unwrap_or_default(),
        service_said(message)
    )]
    NotFound {
        /// The vault.
        vault: String,
        /// The secret.
        secret: String,
        /// The version asked for, if any.
        version: Option<String>,
        /// Key Vault's message.
        message: Option<String>,
    },
    /// 403 with inner error `SecretDisabled`: the (current) version is disabled.
    #[error(
        "secret {secret} in {vault} is disabled (HTTP 403 SecretDisabled{}); enable the \
         certificate's current version, or create a new one",
        service_said(message)
    )]
    Disabled {
        /// The vault.
        vault: String,
        /// The secret.
        secret: String,
        /// Key Vault's message.
        message: Option<String>,
    },
    /// 429 after every retry.
    #[error(
        "{vault} throttled the request for secret {secret} (HTTP 429) after every retry{}",
        service_said(message)
    )]
    Throttled {
        /// The vault.
        vault: String,
        /// The secret.
        secret: String,
        /// Key Vault's message.
        message: Option<String>,
    },
    /// 5xx after every retry.
    #[error(
        "{vault} failed with HTTP {status} for secret {secret} after every retry{}",
        service_said(message)
    )]
    Server {
        /// The vault.
        vault: String,
        /// The secret.
        secret: String,
        /// The status.
        status: u16,
        /// Key Vault's message.
        message: Option<String>,
    },
    /// Another HTTP status.
    #[error(
        "{vault} answered HTTP {status} for secret {secret}{}",
        service_said(message)
    )]
    UnexpectedStatus {
        /// The vault.
        vault: String,
        /// The secret.
        secret: String,
        /// The status.
        status: u16,
        /// Key Vault's message.
        message: Option<String>,
    },
    /// The vault could not be reached.
    #[error("cannot reach {vault}: {message}")]
    Transport {
        /// The vault.
        vault: String,
        /// The transport error, with its causes.
        message: String,
    },
    /// A token could not be obtained.
    #[error("cannot get a token for {vault} as {identity}: {source}")]
    Auth {
        /// The vault.
        vault: String,
        /// The identity.
        identity: String,
        /// The IMDS or Entra error.
        source: Box<IdentityError>,
    },
    /// The challenge was refused: plain http, or a resource that does not cover the vault host.
    #[error("refusing to authenticate to {vault}: {reason}")]
    Challenge {
        /// The vault.
        vault: String,
        /// Why.
        reason: String,
    },
    /// The answer was not a secret.
    #[error("{vault} sent an unreadable answer for secret {secret}: {reason}")]
    InvalidResponse {
        /// The vault.
        vault: String,
        /// The secret.
        secret: String,
        /// Why.
        reason: String,
    },
}

impl VaultError {
    /// A stable machine-readable code for the status file and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::InvalidVaultUrl { .. } => "vault_url_invalid",
            VaultError::Client { .. } => "vault_client_config",
            VaultError::Unauthorized { .. } => "vault_unauthorized",
            VaultError::Forbidden { .. } => "vault_forbidden",
            VaultError::NotFound { .. } => "secret_not_found",
            VaultError::Disabled { .. } => "secret_disabled",
            VaultError::Throttled { .. } => "vault_throttled",
            VaultError::Server { .. } => "vault_server_error",
            VaultError::UnexpectedStatus { .. } => "vault_unexpected_status",
            VaultError::Transport { .. } => "vault_unreachable",
            VaultError::Auth { .. } => "token_unavailable",
            VaultError::Challenge { .. } => "vault_challenge_refused",
            VaultError::InvalidResponse { .. } => "vault_response_invalid",
        }
    }

    /// Whether the next cycle may succeed without anyone changing anything (throttling, server
    /// errors, network trouble, token endpoint trouble).
    pub fn is_transient(&self) -> bool {
        match self {
            VaultError::Throttled { .. }
            | VaultError::Server { .. }
            | VaultError::Transport { .. } => true,
            VaultError::Auth { source, .. } => matches!(**source, IdentityError::Transport(_)),
            _ => false,
        }
    }
}

fn service_said(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

/// A client for one vault.
pub struct VaultClient {
    vault_url: Url,
    vault: String,
    identity: String,
    secrets: SecretClient,
    tenant: Arc<TenantSlot>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("vault_url", &self.vault_url.as_str())
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl VaultClient {
    /// A client for the vault at `vault_url` (`https://myvault.vault.azure.net`; a path is
    /// ignored) authenticating as `identity`.
    pub fn new(
        vault_url: &Url,
        identity: &Identity,
        options: &VaultOptions,
    ) -> Result<Self, VaultError> {
        if vault_url.scheme() != "https" {
            return Err(VaultError::InvalidVaultUrl {
                url: vault_url.to_string(),
                reason: "Key Vault is only reached over https (tokens never go over http)"
                    .to_owned(),
            });
        }
        let host = vault_url
            .host_str()
            .ok_or_else(|| VaultError::InvalidVaultUrl {
                url: vault_url.to_string(),
                reason: "no host".to_owned(),
            })?;
        let mut base = vault_url.clone();
        base.set_path("/");
        base.set_query(None);
        base.set_fragment(None);
        let vault = format!("vault {}", host);
        let client = http::build_client(&options.http).map_err(|source| VaultError::Client {
            vault: vault.clone(),
            source,
        })?;
        let tenant = TenantSlot::new();
        let transport = VaultTransport {
            client,
            retry: options.retry.clone(),
            tenant: tenant.clone(),
            identity: identity.clone(),
            host: host.to_string(),
            metrics: options.metrics.clone(),
        };
        let mut sdk_options = SecretClientOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(transport))),
                retry: RetryOptions::none(),
                ..ClientOptions::default()
            },
            verify_challenge_resource: Some(true),
            ..SecretClientOptions::default()
        };
        if let Some(version) = &options.api_version {
            sdk_options.api_version = version.clone();
        }
        let credential = identity.credential_for(tenant.clone());
        let secrets =
            SecretClient::new(base.as_str(), credential, Some(sdk_options)).map_err(|err| {
                VaultError::InvalidVaultUrl {
                    url: vault_url.to_string(),
                    reason: err.to_string(),
                }
            })?;
        Ok(Self {
            vault_url: base,
            vault,
            identity: identity.describe(),
            secrets,
            tenant,
        })
    }

    /// The vault's base URL.
    pub fn vault_url(&self) -> &Url {
        &self.vault_url
    }

    /// The tenant learned from the vault's challenge, once a request has been made.
    pub fn tenant(&self) -> Option<String> {
        self.tenant.get()
    }

    /// The current version of secret `name` (`GET /secrets/{name}`).
    pub async fn get_latest(&self, name: &str) -> Result<SecretBundle, VaultError> {
        self.get(name, None).await
    }

    /// Version `version` of secret `name` (`GET /secrets/{name}/{version}`).
    pub async fn get_version(&self, name: &str, version: &str) -> Result<SecretBundle, VaultError> {
        self.get(name, Some(version)).await
    }

    async fn get(&self, name: &str, version: Option<&str>) -> Result<SecretBundle, VaultError> {
        let options = SecretClientGetSecretOptions {
            secret_version: version.map(str::to_owned),
            ..Default::default()
        };
        let response = self
            .secrets
            .get_secret(name, Some(options))
            .await
            .map_err(|err| self.map_error(err, name, version))?;
        let secret = response
            .into_model()
            .map_err(|err| VaultError::InvalidResponse {
                vault: self.vault.clone(),
                secret: name.to_owned(),
                reason: err.to_string(),
            })?;
        let invalid = |reason: &str| VaultError::InvalidResponse {
            vault: self.vault.clone(),
            secret: name.to_owned(),
            reason: reason.to_owned(),
        };
        let id = secret.id.ok_or_else(|| invalid("no id"))?;
        let (id_name, id_version) =
            split_secret_id(&id).ok_or_else(|| invalid("id is not …/secrets/{name}/{version}"))?;
        let value = Zeroizing::new(secret.value.ok_or_else(|| invalid("no value"))?);
        let attributes = secret.attributes.unwrap_or_default();
        Ok(SecretBundle {
            name: id_name,
            version: id_version,
            id,
            value,
            content_type: secret.content_type,
            enabled: attributes.enabled,
            managed: secret.managed,
            key_id: secret.kid,
            not_before: attributes.not_before,
            expires: attributes.expires,
            created: attributes.created,
            updated: attributes.updated,
            tags: secret.tags.unwrap_or_default(),
        })
    }

    fn map_error(&self, err: azure_core::Error, secret: &str, version: Option<&str>) -> VaultError {
        use azure_core::error::ErrorKind;
        let vault = self.vault.clone();
        let secret = secret.to_owned();
        match err.kind() {
            ErrorKind::HttpResponse {
                status,
                error_code,
                raw_response,
            } => {
                let document: Option<KeyVaultErrorDocument> =
                    raw_response.as_ref().and_then(|raw| raw.body().json().ok());
                let inner_code = document
                    .as_ref()
                    .and_then(|d| d.error.innererror.as_ref())
                    .and_then(|i| i.code.clone());
                let message = document.and_then(|d| d.error.message);
                let status = u16::from(*status);
                let is_disabled = inner_code.as_deref() == Some("SecretDisabled")
                    || error_code.as_deref() == Some("SecretDisabled");
                match status {
                    401 => VaultError::Unauthorized {
                        vault,
                        identity: self.identity.clone(),
                        message,
                    },
                    403 if is_disabled => VaultError::Disabled {
                        vault,
                        secret,
                        message,
                    },
                    403 => VaultError::Forbidden {
                        vault,
                        secret,
                        identity: self.identity.clone(),
                        message,
                    },
                    404 => VaultError::NotFound {
                        vault,
                        secret,
                        version: version.map(str::to_owned),
                        message,
                    },
                    429 => VaultError::Throttled {
                        vault,
                        secret,
                        message,
                    },
                    500..=599 => VaultError::Server {
                        vault,
                        secret,
                        status,
                        message,
                    },
                    _ => VaultError::UnexpectedStatus {
                        vault,
                        secret,
                        status,
                        message,
                    },
                }
            }
            ErrorKind::Credential => match err.into_downcast::<IdentityError>() {
                Ok(source) => VaultError::Auth {
                    vault,
                    identity: self.identity.clone(),
                    source: Box::new(source),
                },
                Err(err) => VaultError::Auth {
                    vault,
                    identity: self.identity.clone(),
                    source: Box::new(IdentityError::InvalidTokenResponse {
                        endpoint: "the token endpoint".to_owned(),
                        reason: error_chain(&err),
                    }),
                },
            },
            ErrorKind::Io | ErrorKind::Connection => VaultError::Transport {
                vault,
                message: error_chain(&err),
            },
            ErrorKind::DataConversion if !error_chain(&err).contains("challenge") => {
                VaultError::InvalidResponse {
                    vault,
                    secret,
                    reason: error_chain(&err),
                }
            }
            _ => {
                let detail = error_chain(&err);
                let reason = if detail.contains("doesn't match") {
                    let resource = detail
                        .split('\'')
                        .nth(1)
                        .map(|scope| scope.trim_end_matches("/.default").to_owned())
                        .unwrap_or_default();
                    format!(
                        "its 401 challenge names the resource {resource}, which does not cover \
                         {}; akvvm only sends a token to hosts under the challenge's resource \
                         (check the vault URL, or the DNS name used for a private endpoint)",
                        self.vault_url.host_str().unwrap_or_default()
                    )
                } else {
                    detail
                };
                VaultError::Challenge { vault, reason }
            }
        }
    }
}

/// The error and all its causes, joined, for messages.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Splits `https://{vault}/secrets/{name}/{version}` into name and version.
pub fn split_secret_id(id: &str) -> Option<(String, String)> {
    let url = Url::parse(id).ok()?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["secrets", name, version] => Some(((*name).to_owned(), (*version).to_owned())),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
struct KeyVaultErrorDocument {
    error: KeyVaultErrorBody,
}

#[derive(Debug, Deserialize)]
struct KeyVaultErrorBody {
    #[allow(dead_code)]
    code: Option<String>,
    message: Option<String>,
    innererror: Option<KeyVaultInnerError>,
}

#[derive(Debug, Deserialize)]
struct KeyVaultInnerError {
    code: Option<String>,
}

/// The Key Vault challenge's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// `authorization` (or `authorization_uri`): `https://login.windows.net/{tenant}`.
    pub authorization: Option<String>,
    /// `resource`, or `scope` without `/.default`: `https://vault.azure.net`.
    pub resource: Option<String>,
}

impl Challenge {
    /// Parses a `WWW-Authenticate: Bearer k="v", …` value.
    pub fn parse(header: &str) -> Option<Self> {
        let rest = header.trim();
        let rest = rest
            .strip_prefix("Bearer")
            .or_else(|| rest.strip_prefix("bearer"))?;
        let mut authorization = None;
        let mut resource = None;
        let mut scope = None;
        let mut remaining = rest;
        while let Some(eq) = remaining.find("=\"") {
            let key = remaining[..eq]
                .trim()
                .trim_start_matches(',')
                .trim()
                .to_ascii_lowercase();
            let after = &remaining[eq + 2..];
            let end = after.find('"')?;
            let value = after[..end].to_owned();
            match key.as_str() {
                "authorization" | "authorization_uri" => authorization = Some(value),
                "resource" => resource = Some(value),
                "scope" => scope = Some(value),
                _ => {}
            }
            remaining = &after[end + 1..];
        }
        let resource = resource
            .or_else(|| scope.map(|s| s.strip_suffix("/.default").unwrap_or(&s).to_owned()));
        Some(Self {
            authorization,
            resource,
        })
    }

    /// The tenant: the first path segment of `authorization`, when it looks like one.
    pub fn tenant(&self) -> Option<String> {
        let url = Url::parse(self.authorization.as_deref()?).ok()?;
        let tenant = url.path_segments()?.find(|s| !s.is_empty())?.to_owned();
        is_valid_tenant(&tenant).then_some(tenant)
    }

    /// Whether a token for this challenge may go to `request`: https, and the request host ends
    /// with `.{resource host}`.
    pub fn covers(&self, request: &Url) -> bool {
        let Some(resource_host) = self
            .resource
            .as_deref()
            .and_then(|r| Url::parse(r).ok())
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        else {
            return false;
        };
        let Some(host) = request.host_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        request.scheme() == "https" && host.ends_with(&format!(".{resource_host}"))
    }
}

/// The SDK's transport: akvvm's reqwest client, retrying per [`RetryPolicy`], reading the
/// tenant from challenges.
#[derive(Debug)]
pub struct VaultTransport {
    client: reqwest::Client,
    retry: RetryPolicy,
    tenant: Arc<TenantSlot>,
    identity: Identity,
    /// The vault's host, the label of its request counts.
    host: String,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl VaultTransport {
    fn note_challenge(&self, request: &Request, headers: &Headers) {
        let Some(value) = headers.get_optional_str(&WWW_AUTHENTICATE) else {
            return;
        };
        let Some(challenge) = Challenge::parse(value) else {
            return;
        };
        if !challenge.covers(request.url()) {
            tracing::warn!(
                url = %http::redact_url(request.url()),
                resource = challenge.resource.as_deref().unwrap_or(""),
                "ignoring a Key Vault challenge whose resource does not cover the vault host"
            );
            return;
        }
        if let Some(tenant) = challenge.tenant() {
            tracing::debug!(tenant = %tenant, "tenant learned from the Key Vault challenge");
            self.tenant.set(&tenant);
        }
    }
}

fn retry_after(headers: &Headers) -> Option<Duration> {
    let mut map = reqwest::header::HeaderMap::new();
    for name in ["retry-after", "retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(value) = headers.get_optional_str(&HeaderName::from_static(name))
            && let Ok(value) = reqwest::header::HeaderValue::from_str(value)
        {
            map.insert(name, value);
        }
    }
    http::retry_after(&map, SystemTime::now())
}

#[async_trait::async_trait]
impl HttpClient for VaultTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let span = tracing::debug_span!(
                "http_attempt",
                attempt,
                status = tracing::field::Empty,
                url = %http::redact_url(request.url()),
            );
            let outcome = self
                .client
                .execute_request(request)
                .instrument(span.clone())
                .await;
            if let Some(metrics) = &self.metrics {
                let status = outcome.as_ref().ok().map(|r| u16::from(r.status()));
                metrics.record_request(&self.host, status);
            }
            let refused_token = matches!(&outcome, Ok(response) if u16::from(response.status()) == 401)
                && request.headers().get_optional_str(&AUTHORIZATION).is_some();
            if refused_token {
                // The token itself was refused: the next request fetches a new one.
                tracing::debug!(parent: &span, "key vault refused the token");
                self.identity.forget_tokens().await;
            }
            let delay = match &outcome {
                Ok(response) => {
                    let status = u16::from(response.status());
                    span.record("status", status);
                    if status == 401 {
                        self.note_challenge(request, response.headers());
                    }
                    if !self.retry.retries_status(status) {
                        return outcome;
                    }
                    self.retry.next_delay(
                        attempt,
                        retry_after(response.headers()),
                        started.elapsed(),
                    )
                }
                Err(err) => {
                    let transient = matches!(
                        err.kind(),
                        azure_core::error::ErrorKind::Io | azure_core::error::ErrorKind::Connection
                    );
                    if self.retry.retry_transport_errors && transient {
                        self.retry.next_delay(attempt, None, started.elapsed())
                    } else {
                        None
                    }
                }
            };
            let Some(delay) = delay else {
                return outcome;
            };
            tracing::debug!(
                parent: &span,
                delay_ms = http::millis(delay),
                "retrying the key vault request"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing_resource_and_scope_forms() {
        let c = Challenge::parse(
            r#"Bearer authorization="https://login.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(c.resource.as_deref(), Some("https://vault.azure.net"));
        assert_eq!(
            c.tenant().as_deref(),
            Some("72f988bf-86f1-41af-91ab-2d7cd011db47")
        );
        let s = Challenge::parse(
            r#"Bearer scope="https://vault.azure.net/.default", authorization="https://login.microsoftonline.com/contoso.onmicrosoft.com""#,
        )
        .unwrap();
        assert_eq!(s.resource.as_deref(), Some("https://vault.azure.net"));
        assert_eq!(s.tenant().as_deref(), Some("contoso.onmicrosoft.com"));
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
    }

    #[test]
    fn challenge_covers_only_https_subdomains_of_the_resource() {
        let c = Challenge {
            authorization: None,
            resource: Some("https://vault.azure.net".into()),
        };
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(c.covers(&url("https://myvault.vault.azure.net/secrets/x")));
        assert!(!c.covers(&url("http://myvault.vault.azure.net/secrets/x")));
        assert!(!c.covers(&url("https://vault.azure.net.evil.com/secrets/x")));
        assert!(!c.covers(&url("https://myvaultvault.azure.net/secrets/x")));
        assert!(!c.covers(&url("https://vault.azure.net/secrets/x")));
    }

    #[test]
    fn tenant_must_look_like_a_tenant() {
        let c = Challenge {
            authorization: Some("https://login.windows.net/a%2Fb".into()),
            resource: None,
        };
        assert_eq!(c.tenant(), None);
    }

    #[test]
    fn every_error_variant_has_its_own_code() {
        let vault = || "vault v.vault.azure.net".to_owned();
        let secret = || "web".to_owned();
        let errors = [
            VaultError::InvalidVaultUrl {
                url: "http://v".into(),
                reason: "r".into(),
            },
            VaultError::Client {
                vault: vault(),
                source: crate::http::HttpError::InvalidCaRoot {
                    path: "p".into(),
                    reason: "r".into(),
                },
            },
            VaultError::Unauthorized {
                vault: vault(),
                identity: "i".into(),
                message: None,
            },
            VaultError::Forbidden {
                vault: vault(),
                secret: secret(),
                identity: "i".into(),
                message: None,
            },
            VaultError::NotFound {
                vault: vault(),
                secret: secret(),
                version: None,
                message: None,
            },
            VaultError::Disabled {
                vault: vault(),
                secret: secret(),
                message: None,
            },
            VaultError::Throttled {
                vault: vault(),
                secret: secret(),
                message: None,
            },
            VaultError::Server {
                vault: vault(),
                secret: secret(),
                status: 503,
                message: None,
            },
            VaultError::UnexpectedStatus {
                vault: vault(),
                secret: secret(),
                status: 400,
                message: None,
            },
            VaultError::Transport {
                vault: vault(),
                message: "m".into(),
            },
            VaultError::Auth {
                vault: vault(),
                identity: "i".into(),
                source: Box::new(IdentityError::UnsupportedScope("s".into())),
            },
            VaultError::Challenge {
                vault: vault(),
                reason: "r".into(),
            },
            VaultError::InvalidResponse {
                vault: vault(),
                secret: secret(),
                reason: "r".into(),
            },
        ];
        let codes: std::collections::BTreeSet<_> = errors.iter().map(VaultError::code).collect();
        assert_eq!(codes.len(), errors.len());
        let transient: Vec<_> = errors
            .iter()
            .filter(|e| e.is_transient())
            .map(VaultError::code)
            .collect();
        assert_eq!(
            transient,
            vec!["vault_throttled", "vault_server_error", "vault_unreachable"]
        );
    }

    #[test]
    fn secret_id_split() {
        assert_eq!(
            split_secret_id("https://v.vault.azure.net/secrets/web/0123abcd"),
            Some(("web".to_owned(), "0123abcd".to_owned()))
        );
        assert_eq!(
            split_secret_id("https://v.vault.azure.net/secrets/web"),
            None
        );
        assert_eq!(split_secret_id("not a url"), None);
    }

    #[test]
    fn secret_bundle_debug_hides_the_value() {
        let bundle = SecretBundle {
            name: "n".into(),
            version: "v".into(),
            id: "i".into(),
            value: Zeroizing::new("PRIVATE-MATERIAL".into()),
            content_type: None,
            enabled: Some(true),
            managed: None,
            key_id: None,
            not_before: None,
            expires: None,
            created: None,
            updated: None,
            tags: HashMap::new(),
        };
        assert!(!format!("{bundle:?}").contains("PRIVATE-MATERIAL"));
    }
}
