//! The HTTP admin API: the operations of the Rust admin API ([`crate::RunningEmulator`]'s
//! methods and those of the [`State`] it dereferences to) over HTTP under
//! [`ADMIN_PREFIX`] on the HTTPS listener (any host that does not name a vault, such as
//! `https://localhost:PORT/_emulator/...`). Each route parses its body and calls
//! one operation of [`crate::state`]; errors answer `{"error": {"code", "message"}}` with
//! [`AdminError::code`]. No authentication: the listeners are for loopback.
//!
//! HTTP routes (JSON bodies, camelCase):
//! - `GET  /_emulator/health`, `GET /_emulator/ca.pem`
//! - `POST /_emulator/vaults` [`VaultSpec`]
//! - `POST /_emulator/identities/system`, `POST /_emulator/identities/user` [`IdentitySpec`](crate::state::IdentitySpec)
//! - `POST /_emulator/apps` [`AppSpec`](crate::state::AppSpec) -> [`AppCredentials`](crate::state::AppCredentials)
//! - `POST /_emulator/vaults/{vault}/roles` [`RoleSpec`]; `DELETE .../roles/{principal}`
//! - `PUT /_emulator/vaults/{vault}/secrets/{name}` [`SecretSpec`]; `PATCH` `{"enabled", "version"}`; `DELETE`
//! - `POST /_emulator/vaults/{vault}/certificates/{name}/import` [`CertificateImport`],
//!   `.../create` `{"policy"}`, `.../rotate`; `PATCH .../certificates/{name}` `{"enabled","version"}`;
//!   `DELETE .../certificates/{name}`
//! - `PUT|GET|DELETE /_emulator/faults/{scope}` [`Faults`] (scope: a vault name, `imds`, `entra`;
//!   e.g. `{"networkDenial": "ForbiddenByFirewall"}` for a vault, `{"cutNext": 3}` to cut
//!   three answers short, `{"untrustedCertificate": true}` for an impostor TLS certificate,
//!   `{"throttle": {"limit": 0, "windowMs": 1000}}` to answer every request 429)
//! - `GET|DELETE /_emulator/counters` -> [`RequestCount`](crate::state::RequestCount) rows
//! - `GET /_emulator/callers` -> [`CallerCount`](crate::state::CallerCount) rows: authenticated
//!   Key Vault requests per vault, path and caller object id (reset with the counters)
//! - `GET|DELETE /_emulator/stats` -> [`RequestStats`](crate::state::RequestStats) (the counters
//!   summed per scope and status)

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::certs::CertificateImport;
use crate::error::AdminError;
use crate::state::{Faults, RoleSpec, SecretSpec, State, VaultSpec};

pub const ADMIN_PREFIX: &str = "/_emulator";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnabledSpec {
    enabled: bool,
    #[serde(default)]
    version: Option<String>,
}

type Shared = (Arc<State>, Arc<String>);

fn result<T: Serialize>(r: Result<T, AdminError>, created: bool) -> Response {
    match r {
        Ok(v) => (
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            axum::Json(v),
        )
            .into_response(),
        Err(e) => admin_error(&e),
    }
}

fn admin_error(e: &AdminError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(json!({"error": {"code": e.code(), "message": e.to_string()}})),
    )
        .into_response()
}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, Response> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        admin_error(&AdminError::Invalid(format!(
            "the request body is not valid: {e}"
        )))
    })
}

macro_rules! parse {
    ($bytes:expr) => {
        match body($bytes) {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

pub fn router(state: Arc<State>, ca_pem: Arc<String>) -> Router {
    let shared: Shared = (state, ca_pem);
    Router::new()
        .route("/_emulator/health", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/_emulator/ca.pem", get(|AxState((_, ca)): AxState<Shared>| async move { (*ca).clone() }))
        .route("/_emulator/vaults", post(|AxState((s, _)): AxState<Shared>, b: Bytes| async move {
            let spec: VaultSpec = parse!(&b);
            result(s.create_vault_from_spec(&spec).map(|v| json!({"name": v.name, "tenantId": v.tenant_id})), true)
        }))
        .route("/_emulator/identities/system", post(|AxState((s, _)): AxState<Shared>, b: Bytes| async move {
            result(s.set_system_identity(parse!(&b)), true)
        }))
        .route("/_emulator/identities/user", post(|AxState((s, _)): AxState<Shared>, b: Bytes| async move {
            result(s.add_user_identity(parse!(&b)), true)
        }))
        .route("/_emulator/apps", post(|AxState((s, _)): AxState<Shared>, b: Bytes| async move {
            result(s.register_app(parse!(&b)), true)
        }))
        .route("/_emulator/vaults/{vault}/roles", post(|AxState((s, _)): AxState<Shared>, Path(vault): Path<String>, b: Bytes| async move {
            let spec: RoleSpec = parse!(&b);
            result(s.assign_roles(&vault, &spec.principal, &spec.roles).map(|()| json!({})), false)
        }))
        .route("/_emulator/vaults/{vault}/roles/{principal}", delete(|AxState((s, _)): AxState<Shared>, Path((vault, principal)): Path<(String, String)>| async move {
            result(s.revoke_roles(&vault, &principal).map(|()| json!({})), false)
        }))
        .route("/_emulator/vaults/{vault}/secrets/{name}", put(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>, b: Bytes| async move {
            let spec: SecretSpec = parse!(&b);
            result(s.set_secret(&vault, &name, spec).map(|v| json!({"name": name, "version": v.version})), true)
        }).patch(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>, b: Bytes| async move {
            let spec: EnabledSpec = parse!(&b);
            result(s.set_secret_enabled(&vault, &name, spec.version.as_deref(), spec.enabled).map(|()| json!({})), false)
        }).delete(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>| async move {
            result(s.delete_secret(&vault, &name).map(|_| json!({})), false)
        }))
        .route("/_emulator/vaults/{vault}/certificates/{name}/import", post(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>, b: Bytes| async move {
            let import: CertificateImport = parse!(&b);
            result(s.import_certificate(&vault, &name, &import), true)
        }))
        .route("/_emulator/vaults/{vault}/certificates/{name}/create", post(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>, b: Bytes| async move {
            let spec: Value = parse!(&b);
            let policy = spec.get("policy").cloned().unwrap_or(Value::Null);
            result(s.create_certificate(&vault, &name, &policy), true)
        }))
        .route("/_emulator/vaults/{vault}/certificates/{name}/rotate", post(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>| async move {
            result(s.rotate_certificate(&vault, &name), true)
        }))
        .route("/_emulator/vaults/{vault}/certificates/{name}", patch(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>, b: Bytes| async move {
            let spec: EnabledSpec = parse!(&b);
            result(s.set_certificate_enabled(&vault, &name, spec.version.as_deref(), spec.enabled).map(|version| json!({"version": version})), false)
        }).delete(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>| async move {
            result(s.delete_certificate(&vault, &name).map(|_| json!({})), false)
        }))
        .route("/_emulator/faults/{scope}", put(|AxState((s, _)): AxState<Shared>, Path(scope): Path<String>, b: Bytes| async move {
            let faults: Faults = parse!(&b);
            s.traffic.set_faults(&scope, faults);
            result(Ok::<_, AdminError>(s.traffic.faults(&scope)), false)
        }).get(|AxState((s, _)): AxState<Shared>, Path(scope): Path<String>| async move {
            result(Ok::<_, AdminError>(s.traffic.faults(&scope)), false)
        }).delete(|AxState((s, _)): AxState<Shared>, Path(scope): Path<String>| async move {
            s.traffic.set_faults(&scope, Faults::default());
            result(Ok::<_, AdminError>(json!({})), false)
        }))
        .route("/_emulator/counters", get(|AxState((s, _)): AxState<Shared>| async move {
            result(Ok::<_, AdminError>(s.traffic.counters()), false)
        }).delete(|AxState((s, _)): AxState<Shared>| async move {
            s.traffic.reset_counters();
            result(Ok::<_, AdminError>(json!({})), false)
        }))
        .route("/_emulator/callers", get(|AxState((s, _)): AxState<Shared>| async move {
            result(Ok::<_, AdminError>(s.traffic.callers()), false)
        }))
        .route("/_emulator/stats", get(|AxState((s, _)): AxState<Shared>| async move {
            result(Ok::<_, AdminError>(s.traffic.stats()), false)
        }).delete(|AxState((s, _)): AxState<Shared>| async move {
            s.traffic.reset_counters();
            result(Ok::<_, AdminError>(json!({})), false)
        }))
        .with_state(shared)
}
