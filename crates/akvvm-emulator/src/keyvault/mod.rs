//! The Key Vault data plane: the vault is the first label of the request's host name
//! (`myvault.vault.azure.net` -> `myvault`), then api-version, the bearer token (401 challenge)
//! and the caller's role assignments are checked before the secret or certificate operation runs.
//!
//! Wire formats follow the Key Vault REST API: `SecretBundle`, `SecretListResult` with
//! `nextLink`, `DeletedSecretBundle`, `CertificateBundle`, and
//! `{"error":{"code","message","innererror"}}` errors. The handlers change the model only through
//! [`crate::state`].
//! - [`wire`]: what every handler shares: the request context and its permission check (Key
//!   Vault's 403), answers and errors, list paging;
//! - [`secrets`]: `/secrets` and `/deletedsecrets`;
//! - [`certificates`]: `/certificates` and `/deletedcertificates`.

pub mod certificates;
pub mod secrets;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;

use crate::state::{ChallengeForm, State, Vault};
use crate::token::{TokenError, now_unix};
use wire::{Caller, Ctx, kv_error, not_found_path};

/// The audience (resource) of Key Vault tokens in the public cloud (`*.vault.azure.net`).
pub const KEY_VAULT_RESOURCE: &str = "https://vault.azure.net";
/// The newest api-version accepted. The current SDKs (Python azure-keyvault-* 4.12) default to it.
pub const LATEST_API_VERSION: &str = "2026-04-01";

/// The DNS suffixes under which a host name's first label names a vault.
pub const VAULT_SUFFIXES: &[&str] = &[
    ".vault.azure.net",
    ".vault.localhost",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
];

/// The Key Vault resource (token audience, and `resource` in the 401 challenge) of a vault
/// host: the host's DNS suffix without its first label, as Key Vault names it in each cloud
/// (`myvault.vault.azure.cn` -> `https://vault.azure.cn`, `kv.vault.localhost:8443` ->
/// `https://vault.localhost`). The Azure SDKs check that the challenge's resource is a domain
/// suffix of the vault's host.
pub fn vault_resource(host: &str) -> Option<String> {
    vault_from_host(host)?;
    let name = strip_port(host).to_ascii_lowercase();
    VAULT_SUFFIXES
        .iter()
        .find(|suffix| name.ends_with(*suffix))
        .map(|suffix| format!("https://{}", &suffix[1..]))
}

/// The Key Vault resources of every cloud the local vault serves, one per [`VAULT_SUFFIXES`].
pub fn vault_resources() -> impl Iterator<Item = String> {
    VAULT_SUFFIXES
        .iter()
        .map(|s| format!("https://{}", &s[1..]))
}

fn strip_port(host: &str) -> &str {
    host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

pub fn router(state: Arc<State>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// The host of a request, from `Host` or (HTTP/2) the URI authority.
pub fn request_host(headers: &HeaderMap, uri: &Uri) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default()
}

/// The vault named by a host (`myvault.vault.azure.net:8443` -> `myvault`).
pub fn vault_from_host(host: &str) -> Option<String> {
    let name = strip_port(host).to_ascii_lowercase();
    VAULT_SUFFIXES
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|label| !label.is_empty() && !label.contains('.'))
        .map(str::to_owned)
}

/// Whether Key Vault accepts `v`: 2016-10-01, 7.0 to 7.6 (with previews), 2025-07-01 and
/// [`LATEST_API_VERSION`], the versions the Azure SDKs know.
pub fn api_version_supported(v: &str) -> bool {
    let base = v.split_once("-preview").map_or(v, |(b, _)| b);
    if let Some(minor) = base.strip_prefix("7.") {
        return matches!(minor, "0" | "1" | "2" | "3" | "4" | "5" | "6");
    }
    matches!(base, "2016-10-01" | "2025-07-01" | "2026-04-01")
}

fn parse_query(uri: &Uri) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// What authenticating a request needs of its vault: copied out of the model per request, so
/// that a request costs the same whatever the vault holds (cloning the whole [`Vault`] made
/// every request proportional to the number of its secrets).
struct VaultAuth {
    tenant_id: String,
    challenge: ChallengeForm,
}

impl VaultAuth {
    fn of(vault: &Vault) -> Self {
        VaultAuth {
            tenant_id: vault.tenant_id.clone(),
            challenge: vault.challenge,
        }
    }
}

/// Key Vault's 401 with its challenge, naming `resource` (the vault host's [`vault_resource`]).
fn challenge(vault: &VaultAuth, resource: &str, message: &str) -> Response {
    let tenant = &vault.tenant_id;
    let mut response = kv_error(StatusCode::UNAUTHORIZED, "Unauthorized", message, None);
    let value = match vault.challenge {
        ChallengeForm::Resource => format!(
            "Bearer authorization=\"https://login.windows.net/{tenant}\", resource=\"{resource}\""
        ),
        ChallengeForm::Scope => format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{tenant}\", scope=\"{resource}/.default\""
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// Checks the bearer token: signed by the emulator, not expired, for `resource` (the vault
/// host's cloud) and the vault's tenant.
fn authenticate(
    state: &State,
    vault: &VaultAuth,
    resource: &str,
    headers: &HeaderMap,
) -> Result<Caller, Response> {
    let tenant = &vault.tenant_id;
    let challenge = |message: &str| challenge(vault, resource, message);
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return Err(challenge(
            "AKV10000: Request is missing a Bearer or PoP token.",
        ));
    };
    let Some(token) = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
    else {
        return Err(challenge(
            "AKV10001: The authorization header is not a Bearer token.",
        ));
    };
    let claims = state
        .issuer
        .verify(token.trim(), now_unix())
        .map_err(|e| match e {
            // Key Vault's own words for an expired token.
            TokenError::Expired { .. } => {
                challenge("[TokenExpired] Error validating token: 'S2S12086'.")
            }
            other => challenge(&format!("AKV10013: Invalid token: {other}.")),
        })?;
    if !claims
        .aud
        .trim_end_matches('/')
        .eq_ignore_ascii_case(resource)
    {
        return Err(challenge(&format!(
            "AKV10022: Invalid audience. Expected {resource}, found: {}.",
            claims.aud
        )));
    }
    if !claims.tid.eq_ignore_ascii_case(tenant) {
        return Err(challenge(&format!(
            "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{tenant}/, found {}.",
            claims.iss
        )));
    }
    Ok(Caller {
        oid: claims.oid,
        appid: claims.appid,
        iss: claims.iss,
    })
}

async fn handle(
    AxState(state): AxState<Arc<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = request_host(&headers, &uri);
    let Some(vault_name) = vault_from_host(&host) else {
        return kv_error(
            StatusCode::NOT_FOUND,
            "VaultNotFound",
            &format!(
                "The host {host:?} does not name a vault: use https://<vault>.vault.azure.net"
            ),
            None,
        );
    };
    let Some(vault) = state.read(|m| m.vaults.get(&vault_name).map(VaultAuth::of)) else {
        return kv_error(
            StatusCode::NOT_FOUND,
            "VaultNotFound",
            &format!(
                "The vault {vault_name:?} does not exist in the local vault; create it with the admin API or the seed file."
            ),
            None,
        );
    };
    let query = parse_query(&uri);
    let api_version = match query.get("api-version") {
        None => {
            return kv_error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "The 'api-version' query parameter is required.",
                None,
            );
        }
        Some(v) if !api_version_supported(v) => {
            return kv_error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                &format!(
                    "The specified version ({v}) is not recognized. Consider using the latest supported version ({LATEST_API_VERSION})."
                ),
                None,
            );
        }
        Some(v) => v.clone(),
    };
    let resource = vault_resource(&host).unwrap_or_else(|| KEY_VAULT_RESOURCE.to_owned());
    let caller = match authenticate(&state, &vault, &resource, &headers) {
        Ok(c) => c,
        Err(response) => return response,
    };
    state
        .traffic
        .record_caller(&vault_name, uri.path(), &caller.oid);
    // The vault's network rules refuse the request once its caller is known (the 403 names it).
    if let Some(denial) = state.traffic.faults(&vault_name).network_denial {
        return wire::network_denied(&vault_name, &caller, denial);
    }
    let ctx = Ctx {
        state: &state,
        vault: vault_name,
        base: format!("https://{host}"),
        api_version,
        query,
        caller,
        rbac_assignment: std::sync::OnceLock::new(),
    };
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let result = match segments
        .first()
        .copied()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("secrets") => secrets::handle(&ctx, &method, &segments[1..], &body),
        Some("deletedsecrets") => secrets::deleted(&ctx, &method, &segments[1..]),
        Some("certificates") => certificates::handle(&ctx, &method, &segments[1..], &body),
        Some("deletedcertificates") => certificates::deleted(&ctx, &method, &segments[1..]),
        _ => Err(not_found_path(uri.path())),
    };
    let mut response = result.unwrap_or_else(|r| r);
    // Key Vault names the role assignment that allowed an RBAC-authorised request.
    if let Some(id) = ctx.rbac_assignment.get()
        && let Ok(value) = HeaderValue::from_str(id)
    {
        response
            .headers_mut()
            .insert("x-ms-keyvault-rbac-assignment-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_names_come_from_the_first_label() {
        assert_eq!(
            vault_from_host("myvault.vault.azure.net").as_deref(),
            Some("myvault")
        );
        assert_eq!(
            vault_from_host("MyVault.vault.azure.net:8443").as_deref(),
            Some("myvault")
        );
        assert_eq!(
            vault_from_host("kv1.vault.localhost").as_deref(),
            Some("kv1")
        );
        assert_eq!(vault_from_host("a.b.vault.azure.net"), None);
        assert_eq!(vault_from_host("localhost:8443"), None);
        assert_eq!(vault_from_host("vault.azure.net"), None);
    }

    #[test]
    fn the_resource_follows_the_hosts_dns_suffix() {
        for (host, resource) in [
            ("myvault.vault.azure.net", "https://vault.azure.net"),
            ("MyVault.Vault.Azure.CN:8443", "https://vault.azure.cn"),
            (
                "kv.vault.usgovcloudapi.net",
                "https://vault.usgovcloudapi.net",
            ),
            (
                "kv.vault.microsoftazure.de",
                "https://vault.microsoftazure.de",
            ),
            ("kv.vault.localhost:443", "https://vault.localhost"),
        ] {
            assert_eq!(vault_resource(host).as_deref(), Some(resource), "{host}");
        }
        assert_eq!(vault_resource("localhost:8443"), None);
        assert_eq!(vault_resource("a.b.vault.azure.net"), None);
        assert_eq!(vault_resources().count(), VAULT_SUFFIXES.len());
    }

    #[test]
    fn api_versions_the_sdks_know_are_accepted() {
        for v in [
            "7.0",
            "7.1",
            "7.4",
            "7.6-preview.2",
            "7.6",
            "2016-10-01",
            "2025-07-01",
            "2026-04-01",
        ] {
            assert!(api_version_supported(v), "{v}");
        }
        for v in ["6.0", "7.7", "2016-10-02", "2025-08-01", ""] {
            assert!(!api_version_supported(v), "{v}");
        }
    }
}
