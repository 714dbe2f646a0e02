//! [`VaultClient`]: one vault, one pooled HTTP client and one SDK `SecretClient` on top of it;
//! what it returns ([`SecretBundle`]) and how it is configured ([`VaultOptions`]).

use std::collections::HashMap;
use std::sync::Arc;

use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_secrets::models::{
    SecretClientGetSecretOptions, SecretClientListSecretPropertiesOptions,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use time::OffsetDateTime;
use url::Url;
use zeroize::Zeroizing;

use crate::http::{self, HttpOptions, RetryPolicy};
use crate::identity::{Identity, TenantSlot};
use crate::metrics::Metrics;

use super::errors::from_sdk_error;
use super::{VaultError, VaultTransport};

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
    pub metrics: Option<Arc<Metrics>>,
    /// Whether requests carry a token from the first one when the vault's DNS suffix names its
    /// cloud, skipping the 401 challenge ([`super::known_resource`]). Off by default (the
    /// official client's challenge path); the engine turns it on.
    pub preauthenticate: bool,
}

impl Default for VaultOptions {
    fn default() -> Self {
        Self {
            http: HttpOptions::default(),
            retry: RetryPolicy::key_vault(),
            api_version: None,
            metrics: None,
            preauthenticate: false,
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
    /// The answer's `Date` header: when Key Vault answered, to the second.
    pub answered_at: Option<OffsetDateTime>,
}

/// One item of a vault's secret list (`GET /secrets`): the current version's attributes, no
/// value and no version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedSecret {
    /// The current version's `attributes.updated`.
    pub updated: Option<OffsetDateTime>,
    /// The current version's `attributes.enabled`.
    pub enabled: Option<bool>,
}

/// What [`VaultClient::list_secrets`] read.
#[derive(Clone, Debug, Default)]
pub struct SecretList {
    /// Secret name, lower case (Key Vault names are case-insensitive) -> its list item.
    pub secrets: HashMap<String, ListedSecret>,
    /// How many pages were read.
    pub pages: u32,
    /// Whether the last page was read (`false`: stopped at `max_pages`).
    pub complete: bool,
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

/// A client for one vault.
pub struct VaultClient {
    vault_url: Url,
    vault: String,
    identity: String,
    secrets: SecretClient,
    tenant: Arc<TenantSlot>,
    /// Held by the client's first request until it is answered: it meets the 401 challenge and
    /// gets the token, and the requests waiting behind it go with the token at once instead of
    /// each collecting a 401 of its own (the SDK decides whether a request carries a token before
    /// the transport sees it). `true` once a request has been answered.
    first: tokio::sync::Mutex<bool>,
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
            gate: super::transport::ThrottleGate::default(),
            preauth: options
                .preauthenticate
                .then(|| super::preauth::PreAuth::for_vault(host, identity))
                .flatten(),
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
            first: tokio::sync::Mutex::new(false),
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

    /// Waits while the client's first request is under way; the first caller gets the guard to
    /// hold during its request.
    async fn first_request(&self) -> Option<tokio::sync::MutexGuard<'_, bool>> {
        let mut guard = self.first.lock().await;
        if *guard {
            return None;
        }
        *guard = true;
        Some(guard)
    }

    /// The vault's secrets (`GET /secrets?maxresults=25`, following every `nextLink`), without
    /// values: each secret's current version's attributes. Stops after `max_pages` pages (the
    /// caller's budget: past it, one GET per certificate is cheaper), with `complete` false.
    pub async fn list_secrets(&self, max_pages: u32) -> Result<SecretList, VaultError> {
        use futures::StreamExt;
        let options = SecretClientListSecretPropertiesOptions {
            maxresults: Some(LIST_PAGE_SIZE),
            ..Default::default()
        };
        let map_error = |err| {
            from_sdk_error(
                err,
                &self.vault,
                self.vault_url.host_str().unwrap_or_default(),
                &self.identity,
                "(the list of secrets)",
                None,
            )
        };
        let _first = self.first_request().await;
        let mut pages = self
            .secrets
            .list_secret_properties(Some(options))
            .map_err(map_error)?
            .into_pages();
        let mut list = SecretList::default();
        loop {
            if list.pages >= max_pages {
                return Ok(list);
            }
            let Some(page) = pages.next().await else {
                list.complete = true;
                return Ok(list);
            };
            let page = page.map_err(map_error)?;
            list.pages += 1;
            let page = page
                .into_model()
                .map_err(|err| VaultError::InvalidResponse {
                    vault: self.vault.clone(),
                    secret: "(the list of secrets)".to_owned(),
                    reason: err.to_string(),
                })?;
            for item in page.value {
                let Some(name) = item.id.as_deref().and_then(secret_name_of_id) else {
                    continue;
                };
                let attributes = item.attributes.unwrap_or_default();
                list.secrets.insert(
                    name.to_ascii_lowercase(),
                    ListedSecret {
                        updated: attributes.updated,
                        enabled: attributes.enabled,
                    },
                );
            }
        }
    }

    async fn get(&self, name: &str, version: Option<&str>) -> Result<SecretBundle, VaultError> {
        let options = SecretClientGetSecretOptions {
            secret_version: version.map(str::to_owned),
            ..Default::default()
        };
        let _first = self.first_request().await;
        let response = self
            .secrets
            .get_secret(name, Some(options))
            .await
            .map_err(|err| {
                from_sdk_error(
                    err,
                    &self.vault,
                    self.vault_url.host_str().unwrap_or_default(),
                    &self.identity,
                    name,
                    version,
                )
            })?;
        let answered_at = response
            .headers()
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static("date"))
            .and_then(|date| httpdate::parse_http_date(date).ok())
            .map(OffsetDateTime::from);
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
        // An answer about another secret, or another version than the one asked for, is not
        // this one's (Key Vault's names and versions compare without case).
        if !id_name.eq_ignore_ascii_case(name) {
            return Err(invalid(&format!(
                "its id names secret {id_name:?}, not {name:?}"
            )));
        }
        if let Some(version) = version.filter(|v| !id_version.eq_ignore_ascii_case(v)) {
            return Err(invalid(&format!(
                "its id names version {id_version:?}, not {version:?}"
            )));
        }
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
            answered_at,
        })
    }
}

/// The page size of [`VaultClient::list_secrets`]: Key Vault's maximum for secrets.
pub const LIST_PAGE_SIZE: i32 = 25;

/// The name in a list item's versionless id, `https://{vault}/secrets/{name}`.
fn secret_name_of_id(id: &str) -> Option<String> {
    let url = Url::parse(id).ok()?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["secrets", name] | ["secrets", name, _] => Some((*name).to_owned()),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
            answered_at: None,
        };
        assert!(!format!("{bundle:?}").contains("PRIVATE-MATERIAL"));
    }
}
