//! Entra ID's v2 token endpoint for confidential clients that authenticate with a certificate
//! (`client_credentials` with a JWT client assertion), plus the metadata documents MSAL reads
//! (`/{tenant}/v2.0/.well-known/openid-configuration`, `/common/discovery/instance`).
//!
//! The assertion is checked against the app's registered certificate, found by the header's
//! `x5t` or `x5t#S256`; RS256 and PS256 signatures; `aud` must be the token URL, `iss` and `sub`
//! the client id, and the time now within `nbf`..`exp`. Errors are Entra's AADSTS bodies, with
//! Entra's words where a public source quotes them: AADSTS700023 (audience), AADSTS700027 with
//! the thumbprint (unknown key, bad signature), AADSTS700024 with ISO-8601 times, and
//! `invalid_tenant` AADSTS90002 from the token endpoint and from discovery.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::keyvault::request_host;
use crate::state::{App, State, new_id};
use crate::token::{AccessClaims, Jwt, now_unix};

/// Lifetime of tokens from the token endpoint, in seconds.
pub const TOKEN_LIFETIME_S: i64 = 3599;
/// Clock skew tolerated on client assertions, in seconds.
pub const ASSERTION_SKEW_S: i64 = 300;
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/common/discovery/instance", get(instance_discovery))
        .with_state(state)
}

/// Entra's error body: `{"error","error_description","error_codes",...}`; the description ends
/// with `\r\n`-separated trace id, correlation id and timestamp lines, as Entra's does.
pub fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default();
    let trace = new_id();
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {trace}\r\nTimestamp: {timestamp}"),
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": trace,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })),
    )
        .into_response()
}

fn invalid_client(code: u32, description: &str) -> Response {
    aad_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        code,
        description,
    )
}

fn invalid_request(code: u32, description: &str) -> Response {
    aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        code,
        description,
    )
}

/// Entra's 400 for a tenant it does not know, from the token endpoint and from discovery (the
/// answer azidentity for Go prints for `GET /test/v2.0/.well-known/openid-configuration`).
fn tenant_not_found(tenant: &str) -> Response {
    aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_tenant",
        90002,
        &format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

/// The review link Entra appends to AADSTS700023 (the Azure SDK for Java's identity
/// troubleshooting guide quotes it).
const ASSERTION_DOCS: &str = "https://learn.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials";

/// An instant as Entra writes it in AADSTS700024: ISO-8601 UTC with seven fractional digits
/// (`2023-08-01T10:28:26.0000000Z`).
fn iso8601(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// A certificate's validity as Entra names a found key: `Start=12/05/2023 17:16:57, End=...`.
fn key_validity(der: &[u8]) -> String {
    use der::Decode;
    let format = time::macros::format_description!("[month]/[day]/[year] [hour]:[minute]:[second]");
    let at = |t: &x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs())
            .ok()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .and_then(|t| t.format(&format).ok())
            .unwrap_or_default()
    };
    x509_cert::Certificate::from_der(der).map_or_else(
        |_| String::new(),
        |cert| {
            let validity = &cert.tbs_certificate.validity;
            format!(
                "Start={}, End={}",
                at(&validity.not_before),
                at(&validity.not_after)
            )
        },
    )
}

/// A header thumbprint as Entra prints it ("Thumbprint of key used by client"): the hash in
/// upper-case hex; the header's own text when it is not base64.
fn thumbprint_hex(header: &str) -> String {
    use base64::Engine;
    let normalized = normalize_thumbprint(header);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&normalized)
        .map_or_else(|_| header.to_owned(), hex::encode_upper)
}

/// Where Entra points for an app's configured keys, closing its AADSTS700027 reason.
fn configured_keys_hint(client_id: &str) -> String {
    format!(
        "Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/{client_id}'"
    )
}

/// Tenants that exist for discovery besides the model's: Entra's multi-tenant aliases.
const TENANT_ALIASES: &[&str] = &["common", "organizations", "consumers"];

fn known_tenant(state: &State, tenant: &str) -> bool {
    state.read(|m| {
        m.default_tenant.eq_ignore_ascii_case(tenant)
            || m.vaults
                .values()
                .any(|v| v.tenant_id.eq_ignore_ascii_case(tenant))
            || m.apps
                .values()
                .any(|a| a.tenant_id.eq_ignore_ascii_case(tenant))
    })
}

async fn token(
    AxState(state): AxState<Arc<State>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let token_url = format!("https://{}{}", request_host(&headers, &uri), uri.path());
    match issue(&state, &tenant, &token_url, &form) {
        Ok(r) | Err(r) => r,
    }
}

fn issue(
    state: &State,
    tenant: &str,
    token_url: &str,
    form: &BTreeMap<String, String>,
) -> Result<Response, Response> {
    if !known_tenant(state, tenant) {
        return Err(tenant_not_found(tenant));
    }
    let field = |name: &str| {
        form.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
            invalid_request(
                900144,
                &format!("The request body must contain the following parameter: '{name}'."),
            )
        })
    };
    let grant_type = field("grant_type")?;
    if grant_type != "client_credentials" {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let client_id = field("client_id")?;
    let scope = field("scope")?;
    let Some(resource) = scope
        .split_whitespace()
        .find_map(|s| s.strip_suffix("/.default"))
    else {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    let Some(app) = state.read(|m| m.apps.get(client_id).cloned()) else {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant."
            ),
        ));
    };
    if !app.tenant_id.eq_ignore_ascii_case(tenant) {
        return Err(aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        ));
    }
    if form.contains_key("client_secret") {
        return Err(invalid_client(
            7000215,
            "Invalid client secret provided. The local vault's apps authenticate with certificates only.",
        ));
    }
    if field("client_assertion_type")? != JWT_BEARER {
        return Err(invalid_request(
            50027,
            &format!("Invalid client_assertion_type: expected '{JWT_BEARER}'."),
        ));
    }
    let assertion = field("client_assertion")?;
    verify_assertion(&app, assertion, token_url, now_unix())?;
    let now = now_unix();
    let claims = AccessClaims::new(
        resource,
        &app.tenant_id,
        &app.object_id,
        &app.client_id,
        now,
        now + TOKEN_LIFETIME_S,
    );
    let access_token = state.issuer.issue(&claims).map_err(|e| {
        aad_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            90100,
            &e.to_string(),
        )
    })?;
    Ok(axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_S,
        "ext_expires_in": TOKEN_LIFETIME_S,
        "access_token": access_token,
    }))
    .into_response())
}

/// Whether a header thumbprint names the same hash as `registered` (base64url without padding).
/// Clients send base64url (RFC 7515) or, as MSAL for Python does, standard base64 with padding.
fn same_thumbprint(header: &str, registered: &str) -> bool {
    normalize_thumbprint(header) == registered
}

/// A header thumbprint in base64url without padding.
fn normalize_thumbprint(header: &str) -> String {
    header
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect()
}

/// Checks a client assertion against `app`'s certificates.
pub fn verify_assertion(
    app: &App,
    assertion: &str,
    token_url: &str,
    now: i64,
) -> Result<(), Response> {
    let jwt = Jwt::parse(assertion)
        .map_err(|e| invalid_client(50027, &format!("JWT token is invalid or malformed: {e}.")))?;
    let x5t = jwt.header["x5t"].as_str();
    let x5t_s256 = jwt.header["x5t#S256"].as_str();
    if x5t.is_none() && x5t_s256.is_none() {
        return Err(invalid_client(
            700027,
            "Client assertion has no x5t or x5t#S256 header naming the signing certificate.",
        ));
    }
    let Some(cert) = app.certificates.iter().find(|c| {
        x5t.is_some_and(|t| same_thumbprint(t, &c.x5t))
            || x5t_s256.is_some_and(|t| same_thumbprint(t, &c.x5t_s256))
    }) else {
        return Err(invalid_client(
            700027,
            &format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}', {}]",
                thumbprint_hex(x5t.or(x5t_s256).unwrap_or("")),
                configured_keys_hint(&app.client_id)
            ),
        ));
    };
    // Entra's words: the key was found, the signature does not verify with it (a wrong key,
    // claims changed after signing, an unsupported alg).
    jwt.verify_rsa(&cert.spki).map_err(|_| {
        invalid_client(
            700027,
            &format!(
                "Client assertion failed signature validation. [Reason - Key was found, but use of the key to verify the signature failed., Thumbprint of key used by client: '{}', Found key '{}', {}]",
                thumbprint_hex(x5t.or(x5t_s256).unwrap_or("")),
                key_validity(&cert.der),
                configured_keys_hint(&app.client_id)
            ),
        )
    })?;
    let claims = &jwt.claims;
    let aud = claims["aud"].as_str().unwrap_or("");
    if !aud.eq_ignore_ascii_case(token_url) {
        return Err(invalid_client(
            700023,
            &format!(
                "Client assertion audience claim does not match Realm issuer. Review the documentation at {ASSERTION_DOCS}."
            ),
        ));
    }
    let (iss, sub) = (
        claims["iss"].as_str().unwrap_or(""),
        claims["sub"].as_str().unwrap_or(""),
    );
    if iss != app.client_id || sub != app.client_id {
        return Err(invalid_client(
            700021,
            &format!(
                "Client assertion application identifier doesn't match 'client_id' parameter: iss '{iss}' and sub '{sub}' must both be '{}'.",
                app.client_id
            ),
        ));
    }
    // NumericDate may carry a fraction (MSAL for Python sends floats).
    let seconds = |v: &serde_json::Value| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64));
    let (nbf, exp) = (seconds(&claims["nbf"]), seconds(&claims["exp"]));
    let Some(exp) = exp else {
        return Err(invalid_client(700024, "Client assertion has no exp claim."));
    };
    if nbf.is_some_and(|nbf| now + ASSERTION_SKEW_S < nbf) || now >= exp + ASSERTION_SKEW_S {
        let valid_from = nbf
            .map(|nbf| format!(", assertion valid from {}", iso8601(nbf)))
            .unwrap_or_default();
        return Err(invalid_client(
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {}{valid_from}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
                iso8601(now),
                iso8601(exp)
            ),
        ));
    }
    Ok(())
}

async fn openid_configuration(
    AxState(state): AxState<Arc<State>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let alias = TENANT_ALIASES
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&tenant));
    if !alias && !known_tenant(&state, &tenant) {
        return tenant_not_found(&tenant);
    }
    let host = request_host(&headers, &uri);
    let base = format!("https://{host}/{tenant}");
    axum::Json(json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("https://{host}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }))
    .into_response()
}

async fn instance_discovery(headers: HeaderMap, uri: Uri) -> Response {
    let host = request_host(&headers, &uri);
    axum::Json(json!({
        "tenant_discovery_endpoint": format!("https://{host}/common/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }))
    .into_response()
}
