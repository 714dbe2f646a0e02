//! The managed identity credential: tokens from the instance metadata service (IMDS).

use std::time::Duration;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

use super::{IdentityError, ManagedIdentityId, TokenCache, single_scope};
use crate::http::{self, HttpOptions, RetryPolicy};
use crate::settings::MsiEndpoint;

/// The IMDS API version akvvm speaks.
pub const IMDS_API_VERSION: &str = "2018-02-01";

/// The API version of Azure Arc's identity endpoint (the Connected Machine agent).
pub const ARC_API_VERSION: &str = "2019-11-01";

/// Where Azure Arc's agent writes the key files its challenges name, on Linux.
pub const ARC_KEY_DIRECTORY: &str = "/var/opt/azcmagent/tokens";

/// The user the Azure Arc agent runs as; its key files are owned by it or by root.
pub const ARC_AGENT_USER: &str = "himds";

/// The uid of `user` in `/etc/passwd`, if there is one.
fn user_id(user: &str) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == user).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

/// The largest key file accepted (as the Azure SDKs do).
const ARC_KEY_MAX_BYTES: u64 = 4096;

/// Knobs of [`ManagedIdentityCredential`]; the defaults are right for Azure.
#[derive(Clone, Debug)]
pub struct ManagedIdentityOptions {
    /// How IMDS answers are retried (404/410/429/5xx by default: IMDS is briefly unavailable
    /// while a VM boots).
    pub retry: RetryPolicy,
    /// The only directory an Azure Arc challenge may name a key file in
    /// ([`ARC_KEY_DIRECTORY`]): the endpoint's answer never makes akvvm read another file.
    pub arc_key_directory: std::path::PathBuf,
    /// Whether a 401 `Basic realm=<key file>` challenge is answered (Azure Arc's scheme).
    /// `None`, the default: only from Azure Arc's endpoint ([`MsiEndpoint::is_arc`]); tests set
    /// it for a local vault on another port. Either way, only over loopback.
    pub arc_challenges: Option<bool>,
}

impl Default for ManagedIdentityOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::imds(),
            arc_key_directory: std::path::PathBuf::from(ARC_KEY_DIRECTORY),
            arc_challenges: None,
        }
    }
}

/// A managed identity, system-assigned or user-assigned, through IMDS.
#[derive(Debug)]
pub struct ManagedIdentityCredential {
    client: reqwest::Client,
    /// The endpoint's token URL ([`MsiEndpoint::token_url`]).
    token_url: Url,
    /// Whether the endpoint is Azure Arc's ([`MsiEndpoint::is_arc`]).
    arc: bool,
    /// The user-assigned identity; `None` for the system-assigned identity.
    identity: Option<ManagedIdentityId>,
    retry: RetryPolicy,
    arc_key_directory: std::path::PathBuf,
    /// Whether Azure Arc's challenges are answered ([`ManagedIdentityOptions::arc_challenges`]).
    arc_challenges: bool,
    cache: TokenCache,
}

impl ManagedIdentityCredential {
    /// A credential for the identity at `endpoint`: system-assigned when `client_id` is
    /// `None`, else the user-assigned identity with that client id. The HTTP client is built
    /// from `http` without proxies (IMDS must be reached directly).
    pub fn new(
        endpoint: &MsiEndpoint,
        client_id: Option<&str>,
        http: &HttpOptions,
        options: ManagedIdentityOptions,
    ) -> Result<Self, IdentityError> {
        Self::for_identity(endpoint, parse_client_id(client_id), http, options)
    }

    /// Like [`Self::new`], for an identity already parsed (as the settings hold it).
    pub fn for_identity(
        endpoint: &MsiEndpoint,
        identity: Option<ManagedIdentityId>,
        http: &HttpOptions,
        options: ManagedIdentityOptions,
    ) -> Result<Self, IdentityError> {
        let client = http::build_client(&http.direct())?;
        Ok(Self::with_client_for_identity(
            client, endpoint, identity, options,
        ))
    }

    /// Like [`Self::new`], with an existing HTTP client.
    pub fn with_client(
        client: reqwest::Client,
        endpoint: &MsiEndpoint,
        client_id: Option<&str>,
        options: ManagedIdentityOptions,
    ) -> Self {
        Self::with_client_for_identity(client, endpoint, parse_client_id(client_id), options)
    }

    fn with_client_for_identity(
        client: reqwest::Client,
        endpoint: &MsiEndpoint,
        identity: Option<ManagedIdentityId>,
        options: ManagedIdentityOptions,
    ) -> Self {
        Self {
            client,
            token_url: endpoint.token_url(),
            arc: endpoint.is_arc(),
            identity,
            retry: options.retry,
            arc_key_directory: options.arc_key_directory,
            arc_challenges: options.arc_challenges.unwrap_or(endpoint.is_arc()),
            cache: TokenCache::new(),
        }
    }

    /// The user-assigned identity, `None` for the system-assigned identity.
    pub fn identity(&self) -> Option<&ManagedIdentityId> {
        self.identity.as_ref()
    }

    /// The IMDS token URL used.
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }

    /// Names the identity for messages.
    pub fn describe(&self) -> String {
        match &self.identity {
            Some(id) => format!("the user-assigned managed identity with {id}"),
            None => "the system-assigned managed identity".to_owned(),
        }
    }

    /// Drops every cached token, so the next request fetches a new one.
    pub async fn forget_tokens(&self) {
        self.cache.clear().await;
    }

    /// A token for `resource` (`https://vault.azure.net`), from the cache when fresh.
    pub async fn token_for_resource(&self, resource: &str) -> Result<AccessToken, IdentityError> {
        self.cache
            .get_or_refresh(resource, || self.request_token(resource))
            .await
    }

    async fn request_token(&self, resource: &str) -> Result<AccessToken, IdentityError> {
        let api_version = if self.arc {
            ARC_API_VERSION
        } else {
            IMDS_API_VERSION
        };
        let mut query: Vec<(&str, &str)> =
            vec![("api-version", api_version), ("resource", resource)];
        if let Some(identity) = &self.identity {
            query.push(identity.query());
        }
        let mut response = self.send(&query, None).await?;
        // Azure Arc: a 401 naming a key file whose content proves the caller may read it.
        if response.status() == reqwest::StatusCode::UNAUTHORIZED
            && self.arc_challenges
            && let Some(realm) = response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic realm="))
        {
            let key = self.arc_key(realm.trim().trim_matches('"'))?;
            let authorization = zeroize::Zeroizing::new(format!("Basic {}", key.as_str()));
            response = self.send(&query, Some(authorization.as_str())).await?;
        }
        read_token_answer(response, &self.token_url, |status, error, description| {
            IdentityError::Imds {
                endpoint: self.token_url.to_string(),
                identity: self.describe(),
                status,
                error,
                description,
            }
        })
        .await
    }
}

impl ManagedIdentityCredential {
    /// One token request (retried as the policy says), with `authorization` when given.
    async fn send(
        &self,
        query: &[(&str, &str)],
        authorization: Option<&str>,
    ) -> Result<reqwest::Response, http::HttpError> {
        http::send_with_retry(&self.retry, || {
            let request = self
                .client
                .get(self.token_url.clone())
                .query(query)
                .header("Metadata", "true");
            match authorization {
                Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
                None => request,
            }
        })
        .await
    }

    /// Reads the key file an Azure Arc challenge named, after checking that it is a `.key` file
    /// directly in the key directory and at most 4 KiB.
    fn arc_key(&self, realm: &str) -> Result<zeroize::Zeroizing<String>, IdentityError> {
        let refuse = |reason: String| IdentityError::ArcKey {
            endpoint: self.token_url.to_string(),
            path: realm.to_owned(),
            reason,
        };
        // The key proves who may read a root-only file: it never leaves the machine.
        let loopback = match self.token_url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if !loopback {
            return Err(refuse(format!(
                "was named by {}, which is not on this machine; an Azure Arc key is only ever \
                 sent to a loopback endpoint",
                self.token_url
            )));
        }
        let path = std::path::Path::new(realm);
        let in_directory = path.file_name().is_some_and(|name| {
            self.arc_key_directory.join(name) == path
                && name
                    .to_str()
                    .is_some_and(|n| n.ends_with(".key") && n.len() > 4)
        });
        if !in_directory {
            return Err(refuse(format!(
                "is not a .key file directly in {}; only the Azure Arc agent's key directory is \
                 trusted",
                self.arc_key_directory.display()
            )));
        }
        use std::io::Read as _;
        let unreadable = |e: std::io::Error| {
            refuse(format!(
                "cannot be read ({e}); akvvm must run as root to read Azure Arc's key files"
            ))
        };
        // Read through the one open file, never more than the limit allows (the file could
        // change between a size check and a read). Not through a symlink, not blocking on a
        // FIFO: a regular file that root or the Arc agent (`himds`) owns.
        use akvvm_cert::trust::Distrust;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
            )
            .open(path)
            .map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        // The one rule (`akvvm_cert::trust`), with the Arc agent trusted beside root (and the
        // user akvvm runs as, when that is not root).
        let mut owners = akvvm_cert::trust::trusted_owners();
        owners.extend(user_id(ARC_AGENT_USER));
        let kind = akvvm_cert::trust::Kind::File;
        match akvvm_cert::trust::check(meta.mode(), meta.uid(), kind, &owners) {
            Ok(()) => {}
            Err(Distrust::NotRegular | Distrust::NotDirectory) => {
                return Err(refuse("is not a regular file".to_string()));
            }
            Err(Distrust::Owner { uid }) => {
                return Err(refuse(format!(
                    "is owned by uid {uid}, neither root nor the Azure Arc agent ({ARC_AGENT_USER})"
                )));
            }
            Err(Distrust::Writable { mode }) => {
                return Err(refuse(format!(
                    "has mode {mode:04o}: group or others can write it, so it could be anyone's key"
                )));
            }
        }
        let size = meta.len();
        let mut key = zeroize::Zeroizing::new(String::new());
        file.take(ARC_KEY_MAX_BYTES + 1)
            .read_to_string(&mut key)
            .map_err(unreadable)?;
        if size > ARC_KEY_MAX_BYTES || key.len() as u64 > ARC_KEY_MAX_BYTES {
            return Err(refuse(format!(
                "is {} bytes, more than the {ARC_KEY_MAX_BYTES} a key file may have",
                size.max(key.len() as u64)
            )));
        }
        Ok(zeroize::Zeroizing::new(key.trim().to_owned()))
    }
}

#[async_trait::async_trait]
impl TokenCredential for ManagedIdentityCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let scope = single_scope(scopes).map_err(IdentityError::into_azure)?;
        let resource = scope.strip_suffix("/.default").unwrap_or(scope);
        self.token_for_resource(resource)
            .await
            .map_err(IdentityError::into_azure)
    }
}

/// An OAuth error document: `{"error":"invalid_request","error_description":"..."}`.
#[derive(Debug, Deserialize)]
struct OAuthError {
    error: Option<String>,
    error_description: Option<String>,
}

/// Reads the answer of the token endpoint `url`: the token of a success (see
/// [`parse_imds_token`]); for any other status, the error `refused` makes from the status and
/// the OAuth `error` and `error_description` the answer carried (either may be missing). IMDS
/// and Entra ID answer alike.
pub(crate) async fn read_token_answer(
    response: reqwest::Response,
    url: &Url,
    refused: impl FnOnce(u16, Option<String>, Option<String>) -> IdentityError,
) -> Result<AccessToken, IdentityError> {
    let status = response.status();
    let body = http::read_body(response, http::MAX_BODY_BYTES)
        .await
        .map_err(|err| match err {
            http::BodyError::Read(err) => IdentityError::Transport(http::HttpError::Send {
                url: url.to_string(),
                attempts: 1,
                source: err.without_url(),
            }),
            too_large @ http::BodyError::TooLarge { .. } => IdentityError::InvalidTokenResponse {
                endpoint: url.to_string(),
                reason: too_large.to_string(),
            },
        })?;
    if status.is_success() {
        return parse_imds_token(&body, OffsetDateTime::now_utc()).map_err(|reason| {
            IdentityError::InvalidTokenResponse {
                endpoint: url.to_string(),
                reason: reason.to_string(),
            }
        });
    }
    let parsed: Option<OAuthError> = serde_json::from_slice(&body).ok();
    let (error, description) = parsed
        .map(|e| (e.error, e.error_description))
        .unwrap_or_default();
    Err(refused(status.as_u16(), error, description))
}

/// IMDS sends its numbers as strings ("3599"); accept numbers too.
#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Text(String),
    Number(i64),
}

impl StringOrNumber {
    fn as_i64(&self) -> Option<i64> {
        match self {
            StringOrNumber::Text(text) => text.trim().parse().ok(),
            StringOrNumber::Number(n) => Some(*n),
        }
    }
}

#[derive(Deserialize)]
struct ImdsToken {
    access_token: Option<String>,
    expires_in: Option<StringOrNumber>,
    expires_on: Option<StringOrNumber>,
    token_type: Option<String>,
}

/// Why an IMDS answer is not a token ([`parse_imds_token`]): the `reason` of
/// [`IdentityError::InvalidTokenResponse`](super::IdentityError::InvalidTokenResponse). Never
/// holds the token, nor any value of the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenDocumentError {
    /// The serde message may quote a value; this says only where the document broke.
    #[error("not a token document (JSON {category:?} error at line {line}, column {column})")]
    NotJson {
        category: serde_json::error::Category,
        line: usize,
        column: usize,
    },
    #[error("no access_token")]
    NoAccessToken,
    #[error("token_type is {kind:?}, not Bearer")]
    NotBearer { kind: String },
    #[error("expires_on out of range")]
    ExpiresOnOutOfRange,
    #[error("neither expires_in nor expires_on is a number")]
    NoExpiry,
}

/// Parses an IMDS token answer received at `now`. The expiry comes from `expires_in` (relative,
/// immune to clock skew) or else `expires_on` (Unix seconds). Errors never contain the token.
pub(crate) fn parse_imds_token(
    body: &[u8],
    now: OffsetDateTime,
) -> Result<AccessToken, TokenDocumentError> {
    let parsed: ImdsToken =
        serde_json::from_slice(body).map_err(|err| TokenDocumentError::NotJson {
            category: err.classify(),
            line: err.line(),
            column: err.column(),
        })?;
    let token = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or(TokenDocumentError::NoAccessToken)?;
    if let Some(kind) = &parsed.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(TokenDocumentError::NotBearer { kind: kind.clone() });
    }
    let expires_on = if let Some(seconds) = parsed.expires_in.as_ref().and_then(|v| v.as_i64()) {
        now + Duration::from_secs(seconds.max(0).unsigned_abs())
    } else if let Some(epoch) = parsed.expires_on.as_ref().and_then(|v| v.as_i64()) {
        OffsetDateTime::from_unix_timestamp(epoch)
            .map_err(|_| TokenDocumentError::ExpiresOnOutOfRange)?
    } else {
        return Err(TokenDocumentError::NoExpiry);
    };
    Ok(AccessToken::new(Secret::new(token), expires_on))
}

/// An `msiClientId` given as text (trimmed; empty is the system-assigned identity), read as
/// [`ManagedIdentityId::parse_lenient`] does.
fn parse_client_id(client_id: Option<&str>) -> Option<ManagedIdentityId> {
    client_id
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(ManagedIdentityId::parse_lenient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_answer_with_string_numbers() {
        let body = br#"{"access_token":"eyJ0eXAi","client_id":"c7373ae5","expires_in":"3599","expires_on":"1541705014","ext_expires_in":"3599","not_before":"1541701114","resource":"https://vault.azure.net","token_type":"Bearer"}"#;
        let now = OffsetDateTime::from_unix_timestamp(1_541_701_415).unwrap();
        let token = parse_imds_token(body, now).unwrap();
        assert!(
            token.token.secret() == "eyJ0eXAi",
            "not the expected token (not shown)"
        );
        assert_eq!(token.expires_on.unix_timestamp(), 1_541_701_415 + 3599);
    }

    #[test]
    fn falls_back_to_expires_on_and_accepts_numbers() {
        let now = OffsetDateTime::from_unix_timestamp(0).unwrap();
        let token = parse_imds_token(
            br#"{"access_token":"t","expires_on":1541705014,"token_type":"Bearer"}"#,
            now,
        )
        .unwrap();
        assert_eq!(token.expires_on.unix_timestamp(), 1_541_705_014);
    }

    #[test]
    fn rejects_documents_without_token_or_expiry_and_never_echoes_the_token() {
        let now = OffsetDateTime::now_utc();
        assert!(parse_imds_token(br#"{"expires_in":"10"}"#, now).is_err());
        let err = parse_imds_token(br#"{"access_token":"SECRET-VALUE"}"#, now).unwrap_err();
        assert!(!err.to_string().contains("SECRET-VALUE"));
        assert!(parse_imds_token(b"<html>", now).is_err());
    }

    #[test]
    fn describes_system_and_user_assigned() {
        let endpoint =
            MsiEndpoint::new(&Url::parse("http://127.0.0.1:1/metadata/identity").unwrap());
        let system = ManagedIdentityCredential::with_client(
            reqwest::Client::new(),
            &endpoint,
            None,
            ManagedIdentityOptions::default(),
        );
        assert_eq!(system.describe(), "the system-assigned managed identity");
        let user = ManagedIdentityCredential::with_client(
            reqwest::Client::new(),
            &endpoint,
            Some("c7373ae5-91c2-4165-8ab6-7381d6e75619"),
            ManagedIdentityOptions::default(),
        );
        assert!(
            user.describe()
                .contains("c7373ae5-91c2-4165-8ab6-7381d6e75619")
        );
    }
}
