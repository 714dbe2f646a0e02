//! The instance metadata service's managed identity endpoint, on plain http:
//! `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...` with `Metadata: true`,
//! and optionally `client_id`, `object_id` or `msi_res_id` to pick a user-assigned identity.
//! Answers carry their numbers as strings, as IMDS does. The path is accepted with a trailing
//! slash too (`/metadata/identity/oauth2/token/`), as IMDS accepts it. As IMDS does, a request
//! carrying `X-Forwarded-For` is refused (400), and a resource Entra ID does not know gets
//! `400 invalid_resource` with AADSTS500011. While "booting" (a fault, [`crate::state::Booting`])
//! it answers 404 and 410 as IMDS does while it updates.
//!
//! With an [`ArcChallenge`], the endpoint behaves as Azure Arc's agent (himds) does on a Linux
//! server: a request without credentials gets a 401 whose `WWW-Authenticate: Basic realm=...`
//! names a fresh key file it has just written; the client reads the file and asks again with
//! `Authorization: Basic <key>`. Each key is good once.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::{Identity, Model, State};
use crate::token::{AccessClaims, now_unix};
use akvvm_cert::locks::MutexExt;

/// Lifetime of IMDS tokens, in seconds (IMDS hands out tokens valid for about a day).
pub const TOKEN_LIFETIME_S: i64 = 86_399;
pub const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

/// The resources (App ID URIs, and the application ids of Key Vault, Azure Resource Manager and
/// Microsoft Graph) IMDS hands out tokens for, besides the Key Vault resource of every cloud the
/// local vault serves ([`crate::keyvault::vault_resources`]). Compared without a trailing `/`.
pub const KNOWN_RESOURCES: &[&str] = &[
    "https://management.azure.com",
    "https://management.core.windows.net",
    "https://management.chinacloudapi.cn",
    "https://management.usgovcloudapi.net",
    "https://graph.microsoft.com",
    "https://storage.azure.com",
    "https://database.windows.net",
    "https://ossrdbms-aad.database.windows.net",
    "https://servicebus.azure.net",
    "https://eventhubs.azure.net",
    "https://monitor.azure.com",
    "cfa8b339-82a2-471a-a3c9-0fc0be7a4093",
    "797f4846-ba00-4fd7-ba43-dac1f8f63013",
    "00000003-0000-0000-c000-000000000000",
];

/// Whether Entra ID knows `resource` (see [`KNOWN_RESOURCES`]).
pub fn known_resource(resource: &str) -> bool {
    let resource = resource.trim_end_matches('/');
    KNOWN_RESOURCES
        .iter()
        .any(|known| known.eq_ignore_ascii_case(resource))
        || crate::keyvault::vault_resources().any(|known| known.eq_ignore_ascii_case(resource))
}

/// Azure Arc's challenge: key files written in a directory, each accepted once.
#[derive(Debug)]
pub struct ArcChallenge {
    directory: std::path::PathBuf,
    pending: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl ArcChallenge {
    pub fn new(directory: std::path::PathBuf) -> Arc<Self> {
        Arc::new(ArcChallenge {
            directory,
            pending: std::sync::Mutex::default(),
        })
    }

    /// Whether `authorization` presents a pending key (consumed if so).
    fn accept(&self, authorization: Option<&str>) -> bool {
        let Some(key) = authorization.and_then(|a| a.strip_prefix("Basic ")) else {
            return false;
        };
        self.pending.lock_or_recover().remove(key.trim())
    }

    /// Writes a fresh key file (mode 0600) and answers the 401 that names it.
    fn challenge(&self) -> Response {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;

        let key = format!("{:032x}", rand::random::<u128>());
        let path = self.directory.join(format!("{}.key", uuid::Uuid::new_v4()));
        let written = std::fs::create_dir_all(&self.directory).and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?
                .write_all(key.as_bytes())
        });
        if let Err(e) = written {
            return imds_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                &format!("cannot write the key file {}: {e}", path.display()),
            );
        }
        self.pending.lock_or_recover().insert(key);
        let mut response = imds_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A key file was written; present its content as Basic authorization",
        );
        if let Ok(value) = format!("Basic realm={}", path.display()).parse() {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

struct Imds {
    state: Arc<State>,
    arc: Option<Arc<ArcChallenge>>,
}

pub fn router(state: Arc<State>, arc: Option<Arc<ArcChallenge>>) -> Router {
    Router::new()
        .route(TOKEN_PATH, get(token))
        .route(&format!("{TOKEN_PATH}/"), get(token))
        .with_state(Arc::new(Imds { state, arc }))
}

pub fn imds_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// IMDS's answer while it boots or updates: 404 ("IMDS endpoint is updating") or 410 ("IMDS is
/// going through updates", available again within 70 seconds), the reasons the managed identity
/// documentation gives for them.
pub fn booting(status: u16) -> Response {
    if status == 410 {
        imds_error(
            StatusCode::GONE,
            "service_unavailable",
            "IMDS is going through updates; it will be available within 70 seconds.",
        )
    } else {
        imds_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "IMDS endpoint is updating.",
        )
    }
}

/// Entra ID's answer for a resource it does not know, which IMDS passes on (400).
fn invalid_resource(resource: &str, tenant: &str) -> Response {
    let now = time::OffsetDateTime::now_utc();
    let timestamp = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = uuid::Uuid::new_v4().to_string();
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "error": "invalid_resource",
            "error_description": format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
            ),
            "error_codes": [500011],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": "https://login.microsoftonline.com/error?code=500011",
        })),
    )
        .into_response()
}

fn bad_request(description: &str) -> Response {
    imds_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// Picks the identity a request names, as IMDS does.
pub fn select_identity(
    model: &Model,
    query: &BTreeMap<String, String>,
) -> Result<Identity, String> {
    let by = |f: &dyn Fn(&Identity) -> bool| {
        model
            .system_identity
            .iter()
            .chain(model.user_identities.iter())
            .find(|i| f(i))
            .cloned()
            .ok_or_else(|| "Identity not found".to_owned())
    };
    if let Some(id) = query.get("client_id") {
        return by(&|i| i.client_id.eq_ignore_ascii_case(id));
    }
    if let Some(id) = query.get("object_id") {
        return by(&|i| i.object_id.eq_ignore_ascii_case(id));
    }
    if let Some(id) = query.get("msi_res_id").or_else(|| query.get("mi_res_id")) {
        return by(&|i| {
            i.resource_id
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(id))
        });
    }
    if let Some(system) = &model.system_identity {
        return Ok(system.clone());
    }
    match model.user_identities.as_slice() {
        [] => Err("Identity not found".to_owned()),
        [only] => Ok(only.clone()),
        _ => Err("Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request".to_owned()),
    }
}

async fn token(
    AxState(imds): AxState<Arc<Imds>>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let state = &imds.state;
    let metadata = headers.get("metadata").and_then(|v| v.to_str().ok());
    if !metadata.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return bad_request("Required metadata header not specified");
    }
    // IMDS refuses any request that went through a proxy.
    if headers.contains_key("x-forwarded-for") {
        return bad_request("Request contains X-Forwarded-For header");
    }
    match query.get("api-version").map(String::as_str) {
        None => return bad_request("Required query variable 'api-version' is missing"),
        Some(
            "2018-02-01" | "2019-08-01" | "2019-11-01" | "2020-06-01" | "2021-02-01" | "2021-12-13"
            | "2023-07-01" | "2025-04-07",
        ) => {}
        Some(_) => return bad_request("Invalid API version"),
    }
    let Some(resource) = query.get("resource").filter(|r| !r.is_empty()) else {
        return bad_request("Required query variable 'resource' is missing");
    };
    if let Some(arc) = &imds.arc {
        let authorization = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !arc.accept(authorization) {
            return arc.challenge();
        }
    }
    let identity = match state.read(|m| select_identity(m, &query)) {
        Ok(i) => i,
        Err(description) => return bad_request(&description),
    };
    if !known_resource(resource) {
        return invalid_resource(resource, &identity.tenant_id);
    }
    let now = now_unix();
    let claims = AccessClaims::new(
        resource,
        &identity.tenant_id,
        &identity.object_id,
        &identity.client_id,
        now,
        now + TOKEN_LIFETIME_S,
    );
    let access_token = match state.issuer.issue(&claims) {
        Ok(t) => t,
        Err(e) => {
            return imds_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                &e.to_string(),
            );
        }
    };
    axum::Json(json!({
        "access_token": access_token,
        "client_id": identity.client_id,
        "expires_in": TOKEN_LIFETIME_S.to_string(),
        "expires_on": claims.exp.to_string(),
        "ext_expires_in": TOKEN_LIFETIME_S.to_string(),
        "not_before": claims.nbf.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(n: &str) -> Identity {
        Identity {
            client_id: format!("c{n}"),
            object_id: format!("o{n}"),
            tenant_id: "t".into(),
            resource_id: Some(format!("/r/{n}")),
        }
    }

    #[test]
    fn known_resources_with_or_without_the_trailing_slash() {
        for known in [
            "https://vault.azure.net",
            "https://vault.azure.net/",
            "https://vault.localhost",
            "https://VAULT.azure.cn",
            "https://management.azure.com/",
            "cfa8b339-82a2-471a-a3c9-0fc0be7a4093",
        ] {
            assert!(known_resource(known), "{known}");
        }
        for unknown in [
            "https://unknown.example.com",
            "https://vault.azure.net.evil",
            "",
        ] {
            assert!(!known_resource(unknown), "{unknown}");
        }
    }

    #[test]
    fn identity_selection_follows_imds() {
        let q = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        let mut m = Model {
            user_identities: vec![ident("1"), ident("2")],
            ..Model::default()
        };
        assert!(
            select_identity(&m, &BTreeMap::new())
                .unwrap_err()
                .starts_with("Multiple user assigned identities exist")
        );
        assert_eq!(
            select_identity(&m, &q("client_id", "c2")).unwrap(),
            ident("2")
        );
        assert_eq!(
            select_identity(&m, &q("object_id", "o1")).unwrap(),
            ident("1")
        );
        assert_eq!(
            select_identity(&m, &q("msi_res_id", "/r/2")).unwrap(),
            ident("2")
        );
        assert_eq!(
            select_identity(&m, &q("client_id", "nope")).unwrap_err(),
            "Identity not found"
        );
        m.system_identity = Some(ident("s"));
        assert_eq!(select_identity(&m, &BTreeMap::new()).unwrap(), ident("s"));
        m.user_identities.pop();
        m.system_identity = None;
        assert_eq!(select_identity(&m, &BTreeMap::new()).unwrap(), ident("1"));
    }
}
