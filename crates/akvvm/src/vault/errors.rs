//! Why a secret could not be read: [`VaultError`], with its stable codes (`vault.*`, or the
//! code of the HTTP or identity error it wraps, passed through), and the mapping from the SDK's
//! errors (HTTP status and Key Vault's error document) to it.

use serde::Deserialize;

use crate::http;
use crate::identity::IdentityError;

/// The right a reader of certificates needs, as said in permission errors.
pub const REQUIRED_RIGHT: &str = "the \"Key Vault Secrets User\" role on the vault (Azure RBAC), \
     or an access policy granting get and list on secrets";

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
    /// 403 with inner error `ForbiddenByFirewall` or `ForbiddenByConnection`: the vault's
    /// network rules (firewall, or public access disabled and no approved private link) refused
    /// the request before any permission was checked.
    #[error(
        "{vault} refused the request for secret {secret} because of the vault's network rules \
         (HTTP 403 {rule}{}), not because of RBAC or access policies: {}",
        service_said(message),
        network_advice(rule)
    )]
    ForbiddenByNetwork {
        /// The vault.
        vault: String,
        /// The secret.
        secret: String,
        /// Key Vault's inner error code: `ForbiddenByFirewall` or `ForbiddenByConnection`.
        rule: String,
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

akvvm_cert::error_codes! {
    VaultError {
        VaultError::InvalidVaultUrl { .. } => "vault.url_invalid",
        VaultError::Unauthorized { .. } => "vault.unauthorized",
        VaultError::Forbidden { .. } => "vault.forbidden",
        VaultError::ForbiddenByNetwork { .. } => "vault.forbidden_by_network",
        VaultError::NotFound { .. } => "vault.secret_not_found",
        VaultError::Disabled { .. } => "vault.secret_disabled",
        VaultError::Throttled { .. } => "vault.throttled",
        VaultError::Server { .. } => "vault.server_error",
        VaultError::UnexpectedStatus { .. } => "vault.unexpected_status",
        VaultError::Transport { .. } => "vault.unreachable",
        VaultError::Challenge { .. } => "vault.challenge_refused",
        VaultError::InvalidResponse { .. } => "vault.response_invalid",
    }
    passes through {
        VaultError::Client { source, .. } => source,
        VaultError::Auth { source, .. } => source,
    }
}

impl VaultError {
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

/// What to do about a network rule's 403.
fn network_advice(rule: &str) -> &'static str {
    if rule == "ForbiddenByConnection" {
        "public network access to the vault is disabled; reach it through an approved private \
         endpoint (the vault's host name must resolve to the private endpoint's address on this \
         machine, e.g. through the privatelink.vaultcore.azure.net DNS zone) or allow public access \
         from this machine's network"
    } else {
        "the vault's firewall does not allow this machine's address; add its public IP address \
         or its virtual network subnet to the vault's firewall (Networking), or reach the vault \
         through a private endpoint; granting roles will not help"
    }
}

fn service_said(message: &Option<String>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

/// The [`VaultError`] for an error of the SDK's `get_secret`: by HTTP status (reading Key Vault's
/// error document), a credential failure, a transport failure, or a refused challenge. `vault` is
/// how errors name the vault (`vault {host}`).
pub(super) fn from_sdk_error(
    err: azure_core::Error,
    vault: &str,
    host: &str,
    identity: &str,
    secret: &str,
    version: Option<&str>,
) -> VaultError {
    use azure_core::error::ErrorKind;
    let vault = vault.to_owned();
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
                    identity: identity.to_owned(),
                    message,
                },
                403 if is_disabled => VaultError::Disabled {
                    vault,
                    secret,
                    message,
                },
                403 if matches!(
                    inner_code.as_deref(),
                    Some("ForbiddenByFirewall" | "ForbiddenByConnection")
                ) =>
                {
                    VaultError::ForbiddenByNetwork {
                        vault,
                        secret,
                        rule: inner_code.unwrap_or_default(),
                        message,
                    }
                }
                403 => VaultError::Forbidden {
                    vault,
                    secret,
                    identity: identity.to_owned(),
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
                identity: identity.to_owned(),
                source: Box::new(source),
            },
            Err(err) => VaultError::Auth {
                vault,
                identity: identity.to_owned(),
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
                    host
                )
            } else {
                detail
            };
            VaultError::Challenge { vault, reason }
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

#[cfg(test)]
mod tests {
    use super::*;

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
            vec!["vault.throttled", "vault.server_error", "vault.unreachable"]
        );
        // The wrapped HTTP and identity errors keep their own codes.
        assert_eq!(errors[1].code(), "http.ca_root_invalid");
        assert_eq!(
            errors[10].code(),
            IdentityError::UnsupportedScope("s".into()).code()
        );
    }
}
