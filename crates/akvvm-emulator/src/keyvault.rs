//! The Key Vault data plane: the vault is the first label of the request's host name
//! (`myvault.vault.azure.net` -> `myvault`), then api-version, the bearer token (401 challenge)
//! and the caller's role assignments are checked before the secret or certificate operation runs.
//!
//! Secrets live here; certificates in [`crate::certs`]. Wire formats follow the Key Vault REST
//! API: `SecretBundle`, `SecretListResult` with `nextLink`, `DeletedSecretBundle`, and
//! `{"error":{"code","message","innererror"}}` errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::state::{
    AdminError, AuthorizationModel, ChallengeForm, Permission, RECOVERABLE_DAYS, RECOVERY_LEVEL,
    Secret, SecretSpec, SecretVersion, State, Vault, insert_secret_version, soft_delete_secret,
};
use crate::token::{TokenError, now_unix};

/// The audience (resource) of Key Vault tokens.
pub const KEY_VAULT_RESOURCE: &str = "https://vault.azure.net";
/// The newest api-version accepted. The current SDKs (Python azure-keyvault-* 4.12) default to it.
pub const LATEST_API_VERSION: &str = "2026-04-01";
/// Page size limit of list operations (Key Vault's maximum for `maxresults`).
pub const MAX_RESULTS: usize = 25;

/// The DNS suffixes under which a host name's first label names a vault.
pub const VAULT_SUFFIXES: &[&str] = &[
    ".vault.azure.net",
    ".vault.localhost",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
];

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
    let name = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let name = name.to_ascii_lowercase();
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

/// A Key Vault error answer.
pub fn kv_error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(inner) = inner {
        error["innererror"] = json!({"code": inner});
    }
    with_kv_headers((status, axum::Json(json!({ "error": error }))).into_response())
}

fn with_kv_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert("x-ms-request-id", id);
    }
    headers.insert(
        "x-ms-keyvault-service-version",
        HeaderValue::from_static("1.9.2000.1"),
    );
    headers.insert("x-ms-keyvault-region", HeaderValue::from_static("local"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    response
}

/// An empty 204 answer (a purge).
pub fn no_content() -> Response {
    with_kv_headers(StatusCode::NO_CONTENT.into_response())
}

pub fn ok_json(status: StatusCode, body: Value) -> Response {
    with_kv_headers((status, axum::Json(body)).into_response())
}

/// The answer Key Vault gives to a fault-injected status.
pub fn fault_status(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if code == StatusCode::TOO_MANY_REQUESTS {
        return throttled(None);
    }
    let name = match status {
        500 => "InternalServerError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        _ => code.canonical_reason().unwrap_or("Error"),
    };
    kv_error(
        code,
        name,
        &format!("Injected fault: the emulator answered {status}."),
        None,
    )
}

/// Key Vault's 429 answer.
pub fn throttled(retry_after_s: Option<u64>) -> Response {
    let mut response = kv_error(
        StatusCode::TOO_MANY_REQUESTS,
        "Throttled",
        "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
        None,
    );
    if let Some(seconds) = retry_after_s {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The caller named by a valid token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub oid: String,
    pub appid: String,
    pub iss: String,
}

/// What a handler needs about the request.
pub struct Ctx<'a> {
    pub state: &'a State,
    pub vault: String,
    /// `https://{host}`, the base of every id in answers.
    pub base: String,
    pub api_version: String,
    pub query: BTreeMap<String, String>,
    pub caller: Caller,
}

impl Ctx<'_> {
    /// [`Ctx::base`] with the port always written (`https://myvault.vault.azure.net:443`), as
    /// Key Vault writes the `nextLink` of list answers.
    pub fn base_with_port(&self) -> String {
        let host = self.base.trim_start_matches("https://");
        if host.contains(':') {
            self.base.clone()
        } else {
            format!("{}:443", self.base)
        }
    }

    /// Checks that the caller holds `perm`, or gives Key Vault's 403. `resource_path` is the
    /// object the message names (`/secrets/db`), empty for the whole vault (list operations).
    pub fn require(&self, perm: Permission, resource_path: &str) -> Result<(), Response> {
        let (allowed, model, tenant) = self.state.read(|m| {
            m.vaults.get(&self.vault).map_or(
                (false, AuthorizationModel::Rbac, String::new()),
                |v| {
                    (
                        v.allows(&self.caller.oid, &self.caller.appid, perm),
                        v.authorization,
                        v.tenant_id.clone(),
                    )
                },
            )
        });
        if allowed {
            return Ok(());
        }
        let c = &self.caller;
        Err(match model {
            AuthorizationModel::Rbac => kv_error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss={}\r\nAction: '{}'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/akvvm/providers/microsoft.keyvault/vaults/{}{}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: {};location=local\r\n",
                    c.appid,
                    c.oid,
                    c.iss,
                    perm.data_action(),
                    self.vault,
                    resource_path.to_ascii_lowercase(),
                    self.vault
                ),
                Some("ForbiddenByRbac"),
            ),
            AuthorizationModel::AccessPolicy => {
                let (kind, op) = perm.policy_words();
                kv_error(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    &format!(
                        "The user, group or application 'appid={};oid={};iscompound=false;iss=https://sts.windows.net/{tenant}/' does not have {kind} {op} permission on key vault '{};location=local'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                        c.appid, c.oid, self.vault
                    ),
                    Some("AccessDenied"),
                )
            }
        })
    }
}

fn parse_query(uri: &Uri) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn challenge(vault: &Vault, message: &str) -> Response {
    let tenant = &vault.tenant_id;
    let mut response = kv_error(StatusCode::UNAUTHORIZED, "Unauthorized", message, None);
    let value = match vault.challenge {
        ChallengeForm::Resource => format!(
            "Bearer authorization=\"https://login.windows.net/{tenant}\", resource=\"{KEY_VAULT_RESOURCE}\""
        ),
        ChallengeForm::Scope => format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{tenant}\", scope=\"{KEY_VAULT_RESOURCE}/.default\""
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

fn authenticate(state: &State, vault: &Vault, headers: &HeaderMap) -> Result<Caller, Response> {
    let tenant = &vault.tenant_id;
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return Err(challenge(
            vault,
            "AKV10000: Request is missing a Bearer or PoP token.",
        ));
    };
    let Some(token) = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
    else {
        return Err(challenge(
            vault,
            "AKV10001: The authorization header is not a Bearer token.",
        ));
    };
    let claims = state
        .issuer
        .verify(token.trim(), now_unix())
        .map_err(|e| match e {
            // Key Vault's own words for an expired token.
            TokenError::Expired { .. } => {
                challenge(vault, "[TokenExpired] Error validating token: 'S2S12086'.")
            }
            other => challenge(vault, &format!("AKV10013: Invalid token: {other}.")),
        })?;
    if claims.aud.trim_end_matches('/') != KEY_VAULT_RESOURCE {
        return Err(challenge(
            vault,
            &format!(
                "AKV10022: Invalid audience. Expected {KEY_VAULT_RESOURCE}, found: {}.",
                claims.aud
            ),
        ));
    }
    if !claims.tid.eq_ignore_ascii_case(tenant) {
        return Err(challenge(
            vault,
            &format!(
                "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{tenant}/, found {}.",
                claims.iss
            ),
        ));
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
    let Some(vault) = state.read(|m| m.vaults.get(&vault_name).cloned()) else {
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
    let caller = match authenticate(&state, &vault, &headers) {
        Ok(c) => c,
        Err(response) => return response,
    };
    let ctx = Ctx {
        state: &state,
        vault: vault_name,
        base: format!("https://{host}"),
        api_version,
        query,
        caller,
    };
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let result = match segments
        .first()
        .copied()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("secrets") => secrets(&ctx, &method, &segments[1..], &body),
        Some("deletedsecrets") => deleted_secrets(&ctx, &method, &segments[1..]),
        Some("certificates") => crate::certs::handle(&ctx, &method, &segments[1..], &body),
        Some("deletedcertificates") => crate::certs::deleted(&ctx, &method, &segments[1..]),
        _ => Err(not_found_path(uri.path())),
    };
    result.unwrap_or_else(|r| r)
}

pub fn not_found_path(path: &str) -> Response {
    kv_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("The operation {path:?} is not supported by the local vault."),
        None,
    )
}

pub fn bad_parameter(message: &str) -> Response {
    kv_error(StatusCode::BAD_REQUEST, "BadParameter", message, None)
}

pub fn method_not_allowed(method: &Method) -> Response {
    kv_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &format!("The requested resource does not support http method '{method}'."),
        None,
    )
}

pub fn check_name(kind: &str, name: &str) -> Result<(), Response> {
    if crate::state::valid_object_name(name) {
        Ok(())
    } else {
        Err(bad_parameter(&format!(
            "The request URI contains an invalid name: {name}. {kind} names may contain only letters, digits and dashes, 1 to 127 characters."
        )))
    }
}

pub fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| bad_parameter(&format!("The request body is not valid: {e}")))
}

fn secret_not_found(name: &str, version: Option<&str>) -> Response {
    let id = match version {
        Some(v) => format!("{name}/{v}"),
        None => name.to_owned(),
    };
    kv_error(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {id} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        None,
    )
}

pub fn admin_to_response(e: AdminError) -> Response {
    match e {
        AdminError::NotFound { what, name } => kv_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{what} {name} was not found"),
            None,
        ),
        AdminError::Conflict { what, name } if what.contains("deleted") => {
            let (kind, object) = if what.starts_with("certificate") {
                ("Certificate", "certificate")
            } else {
                ("Secret", "secret")
            };
            kv_error(
                StatusCode::CONFLICT,
                "Conflict",
                &format!(
                    "{kind} {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the {object} can only be recovered or purged."
                ),
                Some("ObjectIsDeletedButRecoverable"),
            )
        }
        AdminError::Conflict { what, name } => kv_error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!("{what} {name} already exists"),
            None,
        ),
        AdminError::Invalid(message) => bad_parameter(&message),
    }
}

/// `attributes` of a secret version.
fn secret_attributes(v: &SecretVersion) -> Value {
    let mut a = json!({"enabled": v.enabled});
    if let Some(nbf) = v.nbf {
        a["nbf"] = json!(nbf);
    }
    if let Some(exp) = v.exp {
        a["exp"] = json!(exp);
    }
    a["created"] = json!(v.created);
    a["updated"] = json!(v.updated);
    a["recoveryLevel"] = json!(RECOVERY_LEVEL);
    a["recoverableDays"] = json!(RECOVERABLE_DAYS);
    a
}

/// The fields a `SecretItem` (list answers) and a `SecretBundle` share.
fn secret_common(v: &SecretVersion, id: String) -> Value {
    let mut body = json!({"id": id, "attributes": secret_attributes(v)});
    if let Some(ct) = &v.content_type {
        body["contentType"] = json!(ct);
    }
    if !v.tags.is_empty() {
        body["tags"] = json!(v.tags);
    }
    if v.managed {
        body["managed"] = json!(true);
    }
    body
}

/// A `SecretBundle`, with or without its value. A certificate's secret names its key (`kid`);
/// list items (`SecretItem`) do not.
fn secret_bundle(ctx: &Ctx<'_>, secret: &Secret, v: &SecretVersion, with_value: bool) -> Value {
    let id = format!("{}/secrets/{}/{}", ctx.base, secret.name, v.version);
    let mut body = secret_common(v, id);
    if v.managed {
        body["kid"] = json!(format!("{}/keys/{}/{}", ctx.base, secret.name, v.version));
    }
    if with_value {
        let map = body.as_object_mut().map(std::mem::take).unwrap_or_default();
        let mut ordered = serde_json::Map::new();
        ordered.insert("value".into(), json!(v.value));
        ordered.extend(map);
        body = Value::Object(ordered);
    }
    body
}

/// A list answer, `{"value": [...], "nextLink": ...}`: the page of `items` that `maxresults`
/// and `$skiptoken` select, and the link to the next page of `path` (null on the last page).
pub fn list_page(ctx: &Ctx<'_>, items: Vec<Value>, path: &str) -> Result<Response, Response> {
    let max = match ctx.query.get("maxresults") {
        None => MAX_RESULTS,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=MAX_RESULTS).contains(&n) => n,
            _ => {
                return Err(bad_parameter(&format!(
                    "Invalid value for maxresults: {m}. It must be an integer from 1 to {MAX_RESULTS}."
                )));
            }
        },
    };
    let offset = match ctx.query.get("$skiptoken") {
        None => 0,
        Some(token) => URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.strip_prefix("akvvm:")
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .ok_or_else(|| {
                bad_parameter("The $skiptoken parameter is not one this vault issued.")
            })?,
    };
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(max).collect();
    // As Key Vault writes it: the port always named, `maxresults` only when the request gave it.
    let next = if offset + max < total {
        let mut link = format!(
            "{}{path}?api-version={}&$skiptoken={}",
            ctx.base_with_port(),
            ctx.api_version,
            URL_SAFE_NO_PAD.encode(format!("akvvm:{}", offset + max))
        );
        if ctx.query.contains_key("maxresults") {
            link.push_str(&format!("&maxresults={max}"));
        }
        json!(link)
    } else {
        Value::Null
    };
    Ok(ok_json(
        StatusCode::OK,
        json!({"value": page, "nextLink": next}),
    ))
}

#[derive(serde::Deserialize, Default)]
struct AttributesIn {
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

#[derive(serde::Deserialize)]
struct SetSecretIn {
    value: Option<String>,
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    attributes: Option<AttributesIn>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(serde::Deserialize)]
struct UpdateSecretIn {
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    attributes: Option<AttributesIn>,
    tags: Option<BTreeMap<String, String>>,
}

fn secrets(
    ctx: &Ctx<'_>,
    method: &Method,
    rest: &[&str],
    body: &Bytes,
) -> Result<Response, Response> {
    match (rest, method) {
        ([] | [""], &Method::GET) => {
            ctx.require(Permission::SecretsList, "")?;
            let items = ctx.state.read(|m| {
                m.vaults[&ctx.vault]
                    .secrets
                    .values()
                    .filter_map(|s| {
                        s.versions
                            .last()
                            .map(|v| secret_common(v, format!("{}/secrets/{}", ctx.base, s.name)))
                    })
                    .collect::<Vec<_>>()
            });
            list_page(ctx, items, "/secrets")
        }
        ([name], &Method::PUT) => {
            check_name("Secret", name)?;
            ctx.require(Permission::SecretsSet, &format!("/secrets/{name}"))?;
            let input: SetSecretIn = parse_body(body)?;
            let Some(value) = input.value else {
                return Err(bad_parameter(
                    "The request body must contain the property 'value'.",
                ));
            };
            let attrs = input.attributes.unwrap_or_default();
            let spec = SecretSpec {
                value,
                content_type: input.content_type,
                enabled: attrs.enabled,
                nbf: attrs.nbf,
                exp: attrs.exp,
                tags: input.tags.unwrap_or_default(),
            };
            let (secret, version) = ctx
                .state
                .with_vault(&ctx.vault, |v| {
                    let version = insert_secret_version(v, name, spec, false)?;
                    Ok((v.secrets[&name.to_ascii_lowercase()].clone(), version))
                })
                .map_err(admin_to_response)?;
            Ok(ok_json(
                StatusCode::OK,
                secret_bundle(ctx, &secret, &version, true),
            ))
        }
        ([name, "versions"], &Method::GET) => {
            check_name("Secret", name)?;
            ctx.require(Permission::SecretsList, &format!("/secrets/{name}"))?;
            let Some(items) = ctx.state.read(|m| {
                m.vaults[&ctx.vault]
                    .secrets
                    .get(&name.to_ascii_lowercase())
                    .map(|s| {
                        s.versions
                            .iter()
                            .map(|v| {
                                secret_common(
                                    v,
                                    format!("{}/secrets/{}/{}", ctx.base, s.name, v.version),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
            }) else {
                return Err(secret_not_found(name, None));
            };
            list_page(ctx, items, &format!("/secrets/{name}/versions"))
        }
        ([name] | [name, ""], &Method::GET) => get_secret(ctx, name, None),
        ([name, version], &Method::GET) => get_secret(ctx, name, Some(version)),
        ([name] | [name, ""], &Method::PATCH) => update_secret(ctx, name, None, body),
        ([name, version], &Method::PATCH) => update_secret(ctx, name, Some(version), body),
        ([name], &Method::DELETE) => {
            check_name("Secret", name)?;
            ctx.require(Permission::SecretsDelete, &format!("/secrets/{name}"))?;
            let deleted = ctx
                .state
                .with_vault(&ctx.vault, |v| soft_delete_secret(v, name))
                .map_err(|e| match e {
                    AdminError::NotFound { .. } => secret_not_found(name, None),
                    other => admin_to_response(other),
                })?;
            Ok(ok_json(StatusCode::OK, deleted_bundle(ctx, &deleted)))
        }
        ([_] | [_, _] | [], _) => Err(method_not_allowed(method)),
        _ => Err(not_found_path(&format!("/secrets/{}", rest.join("/")))),
    }
}

fn get_secret(ctx: &Ctx<'_>, name: &str, version: Option<&str>) -> Result<Response, Response> {
    check_name("Secret", name)?;
    ctx.require(Permission::SecretsGet, &format!("/secrets/{name}"))?;
    let found = ctx.state.read(|m| {
        let s = m.vaults[&ctx.vault]
            .secrets
            .get(&name.to_ascii_lowercase())?;
        let v = match version {
            Some(ver) => s
                .versions
                .iter()
                .find(|v| v.version.eq_ignore_ascii_case(ver))?,
            None => s.versions.last()?,
        };
        Some((s.clone(), v.clone()))
    });
    let Some((secret, v)) = found else {
        return Err(secret_not_found(name, version));
    };
    if !v.enabled {
        return Err(kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            Some("SecretDisabled"),
        ));
    }
    let v = convert_content_type(ctx, v)?;
    Ok(ok_json(
        StatusCode::OK,
        secret_bundle(ctx, &secret, &v, true),
    ))
}

/// `outContentType` (api-version 2025-07-01): a certificate's PFX secret read as PEM.
fn convert_content_type(ctx: &Ctx<'_>, mut v: SecretVersion) -> Result<SecretVersion, Response> {
    const PEM: &str = "application/x-pem-file";
    const PFX: &str = "application/x-pkcs12";
    let Some(wanted) = ctx.query.get("outContentType") else {
        return Ok(v);
    };
    if wanted != PEM && wanted != PFX {
        return Err(bad_parameter(&format!(
            "The value of outContentType ({wanted}) is not supported: use {PEM} or {PFX}."
        )));
    }
    if !v.managed {
        return Err(bad_parameter(
            "outContentType is only supported for secrets that back a certificate.",
        ));
    }
    match (v.content_type.as_deref(), wanted.as_str()) {
        (Some(current), wanted) if current == wanted => Ok(v),
        (Some(PFX), PEM) => {
            v.value = crate::certs::pkcs12_value_to_pem(&v.value).map_err(admin_to_response)?;
            v.content_type = Some(PEM.to_owned());
            Ok(v)
        }
        _ => Err(bad_parameter(
            "Currently, only PFX to PEM conversion is supported.",
        )),
    }
}

fn update_secret(
    ctx: &Ctx<'_>,
    name: &str,
    version: Option<&str>,
    body: &Bytes,
) -> Result<Response, Response> {
    check_name("Secret", name)?;
    ctx.require(Permission::SecretsSet, &format!("/secrets/{name}"))?;
    let input: UpdateSecretIn = parse_body(body)?;
    let updated = ctx
        .state
        .with_vault(&ctx.vault, |vault| {
            let Some(s) = vault.secrets.get_mut(&name.to_ascii_lowercase()) else {
                return Ok(None);
            };
            let v = match version {
                Some(ver) => s
                    .versions
                    .iter_mut()
                    .find(|v| v.version.eq_ignore_ascii_case(ver)),
                None => s.versions.last_mut(),
            };
            let Some(v) = v else { return Ok(None) };
            if let Some(ct) = input.content_type {
                v.content_type = Some(ct);
            }
            if let Some(a) = input.attributes {
                if let Some(e) = a.enabled {
                    v.enabled = e;
                }
                if a.nbf.is_some() {
                    v.nbf = a.nbf;
                }
                if a.exp.is_some() {
                    v.exp = a.exp;
                }
            }
            if let Some(tags) = input.tags {
                v.tags = tags;
            }
            v.updated = now_unix();
            let v = v.clone();
            Ok(Some((s.clone(), v)))
        })
        .map_err(admin_to_response)?;
    let Some((secret, v)) = updated else {
        return Err(secret_not_found(name, version));
    };
    Ok(ok_json(
        StatusCode::OK,
        secret_bundle(ctx, &secret, &v, false),
    ))
}

fn deleted_bundle(ctx: &Ctx<'_>, d: &crate::state::DeletedSecret) -> Value {
    let mut body = match d.secret.versions.last() {
        Some(v) => secret_bundle(ctx, &d.secret, v, false),
        None => json!({}),
    };
    body["recoveryId"] = json!(format!("{}/deletedsecrets/{}", ctx.base, d.secret.name));
    body["deletedDate"] = json!(d.deleted_date);
    body["scheduledPurgeDate"] = json!(d.scheduled_purge_date);
    body
}

fn deleted_secrets(ctx: &Ctx<'_>, method: &Method, rest: &[&str]) -> Result<Response, Response> {
    let not_found = |name: &str| {
        kv_error(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            &format!("Deleted Secret not found: {name}"),
            None,
        )
    };
    match (rest, method) {
        ([] | [""], &Method::GET) => {
            ctx.require(Permission::SecretsList, "")?;
            let items = ctx.state.read(|m| {
                m.vaults[&ctx.vault]
                    .deleted_secrets
                    .values()
                    .map(|d| {
                        let mut item = deleted_bundle(ctx, d);
                        item["id"] = json!(format!("{}/secrets/{}", ctx.base, d.secret.name));
                        if let Some(fields) = item.as_object_mut() {
                            fields.remove("kid");
                        }
                        item
                    })
                    .collect::<Vec<_>>()
            });
            list_page(ctx, items, "/deletedsecrets")
        }
        ([name], &Method::GET) => {
            ctx.require(Permission::SecretsList, &format!("/deletedsecrets/{name}"))?;
            let d = ctx.state.read(|m| {
                m.vaults[&ctx.vault]
                    .deleted_secrets
                    .get(&name.to_ascii_lowercase())
                    .cloned()
            });
            d.map(|d| ok_json(StatusCode::OK, deleted_bundle(ctx, &d)))
                .ok_or_else(|| not_found(name))
        }
        ([name], &Method::DELETE) => {
            ctx.require(
                Permission::SecretsDelete,
                &format!("/deletedsecrets/{name}"),
            )?;
            let removed = ctx
                .state
                .with_vault(&ctx.vault, |v| {
                    Ok(v.deleted_secrets.remove(&name.to_ascii_lowercase()))
                })
                .map_err(admin_to_response)?;
            removed.map(|_| no_content()).ok_or_else(|| not_found(name))
        }
        ([name, "recover"], &Method::POST) => {
            ctx.require(Permission::SecretsSet, &format!("/deletedsecrets/{name}"))?;
            let recovered = ctx
                .state
                .with_vault(&ctx.vault, |v| {
                    let key = name.to_ascii_lowercase();
                    Ok(v.deleted_secrets.remove(&key).map(|d| {
                        v.secrets.insert(key, d.secret.clone());
                        d.secret
                    }))
                })
                .map_err(admin_to_response)?;
            let Some(secret) = recovered else {
                return Err(secret_not_found(name, None));
            };
            let Some(v) = secret.versions.last() else {
                return Err(not_found(name));
            };
            Ok(ok_json(
                StatusCode::OK,
                secret_bundle(ctx, &secret, v, false),
            ))
        }
        _ => Err(not_found_path(&format!(
            "/deletedsecrets/{}",
            rest.join("/")
        ))),
    }
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
