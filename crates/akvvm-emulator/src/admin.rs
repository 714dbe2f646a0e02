//! The admin API: the same operations as methods on [`RunningEmulator`] and over HTTP under
//! [`ADMIN_PREFIX`] on the HTTPS listener (any host that does not name a vault, such as
//! `https://localhost:PORT/_emulator/...`). No authentication: the listeners are for loopback.
//!
//! HTTP routes (JSON bodies, camelCase):
//! - `GET  /_emulator/health`, `GET /_emulator/ca.pem`
//! - `POST /_emulator/vaults` [`VaultSpec`]
//! - `POST /_emulator/identities/system`, `POST /_emulator/identities/user` [`IdentitySpec`]
//! - `POST /_emulator/apps` [`AppSpec`] -> [`AppCredentials`]
//! - `POST /_emulator/vaults/{vault}/roles` [`RoleSpec`]; `DELETE .../roles/{principal}`
//! - `PUT /_emulator/vaults/{vault}/secrets/{name}` [`SecretSpec`]; `PATCH` `{"enabled", "version"}`; `DELETE`
//! - `POST /_emulator/vaults/{vault}/certificates/{name}/import` [`CertificateImport`],
//!   `.../create` `{"policy"}`, `.../rotate`; `PATCH .../certificates/{name}` `{"enabled","version"}`;
//!   `DELETE .../certificates/{name}`
//! - `PUT|GET|DELETE /_emulator/faults/{scope}` [`Faults`] (scope: a vault name, `imds`, `entra`)
//! - `GET|DELETE /_emulator/counters` -> [`RequestCount`] rows

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::certs::{CertificateCreated, CertificateImport};
use crate::entra::{AppCredentials, AppSpec};
use crate::server::RunningEmulator;
use crate::state::{
    AdminError, AuthorizationModel, ChallengeForm, Faults, Identity, IdentitySpec, RequestCount,
    SecretSpec, SecretVersion, State, Throttle, Vault,
};

pub const ADMIN_PREFIX: &str = "/_emulator";

/// A vault to create, with what it holds (admin API and seed file).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VaultSpec {
    pub name: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub authorization: AuthorizationModel,
    /// The form of the 401 challenge (`resource`, the default, or `scope`).
    #[serde(default)]
    pub challenge: ChallengeForm,
    #[serde(default)]
    pub roles: Vec<RoleSpec>,
    #[serde(default)]
    pub secrets: Vec<NamedSecret>,
    #[serde(default)]
    pub certificates: Vec<NamedCertificate>,
}

/// Roles (or permissions) for one principal in a vault.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    /// Object id, client id, `system`, or an app's display name.
    pub principal: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedSecret {
    pub name: String,
    #[serde(flatten)]
    pub spec: SecretSpec,
}

/// A certificate in a vault: imported (`pfx`/`pem`) or self-signed from `policy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedCertificate {
    pub name: String,
    #[serde(default)]
    pub policy: Option<Value>,
    #[serde(flatten)]
    pub import: CertificateImport,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnabledSpec {
    enabled: bool,
    #[serde(default)]
    version: Option<String>,
}

impl RunningEmulator {
    /// Creates a vault (with its roles, secrets and certificates).
    pub fn create_vault(&self, spec: &VaultSpec) -> Result<Vault, AdminError> {
        create_vault(&self.state, spec)
    }

    /// Creates an empty vault in the default tenant with RBAC authorization.
    pub fn add_vault(&self, name: &str) -> Result<Vault, AdminError> {
        self.state
            .create_vault(name, None, AuthorizationModel::Rbac)
    }

    /// The default tenant (vaults, identities and apps without one are in it).
    pub fn tenant_id(&self) -> String {
        self.state.default_tenant()
    }

    /// Signs an access token for `identity` and `resource` valid from `not_before` to
    /// `expires_on` (Unix seconds), as IMDS would issue it: for tests of tokens that IMDS never
    /// hands out (expired, not yet valid).
    pub fn issue_token(
        &self,
        identity: &Identity,
        resource: &str,
        not_before: i64,
        expires_on: i64,
    ) -> anyhow::Result<String> {
        self.state.issuer.issue(&crate::token::AccessClaims {
            aud: resource.to_owned(),
            iss: format!("https://sts.windows.net/{}/", identity.tenant_id),
            iat: not_before,
            nbf: not_before,
            exp: expires_on,
            tid: identity.tenant_id.clone(),
            oid: identity.object_id.clone(),
            sub: identity.object_id.clone(),
            appid: identity.client_id.clone(),
        })
    }

    /// Creates or replaces the system-assigned identity.
    pub fn set_system_identity(&self, spec: IdentitySpec) -> Result<Identity, AdminError> {
        self.state.set_system_identity(spec)
    }

    pub fn add_user_identity(&self, spec: IdentitySpec) -> Result<Identity, AdminError> {
        self.state.add_user_identity(spec)
    }

    /// Registers an app with a certificate (generated when the spec has none).
    pub fn register_app(&self, spec: AppSpec) -> Result<AppCredentials, AdminError> {
        crate::entra::register_app(&self.state, spec)
    }

    /// Grants roles or permissions (see [`crate::state::expand_role`]) to a principal in a vault.
    pub fn assign_roles(
        &self,
        vault: &str,
        principal: &str,
        roles: &[&str],
    ) -> Result<(), AdminError> {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        self.state.assign_roles(vault, principal, &roles)
    }

    pub fn revoke_roles(&self, vault: &str, principal: &str) -> Result<(), AdminError> {
        self.state.revoke_roles(vault, principal)
    }

    /// Sets a secret (a new version each time).
    pub fn set_secret(
        &self,
        vault: &str,
        name: &str,
        spec: SecretSpec,
    ) -> Result<SecretVersion, AdminError> {
        self.state.set_secret(vault, name, spec)
    }

    pub fn set_secret_enabled(
        &self,
        vault: &str,
        name: &str,
        version: Option<&str>,
        enabled: bool,
    ) -> Result<(), AdminError> {
        self.state.set_secret_enabled(vault, name, version, enabled)
    }

    pub fn delete_secret(&self, vault: &str, name: &str) -> Result<(), AdminError> {
        self.state.delete_secret(vault, name).map(|_| ())
    }

    pub fn import_certificate(
        &self,
        vault: &str,
        name: &str,
        import: &CertificateImport,
    ) -> Result<CertificateCreated, AdminError> {
        self.state.with_vault(vault, |v| {
            crate::certs::import_in(v, name, import, &Value::Null)
        })
    }

    /// Creates a self-signed certificate from a Key Vault certificate policy (JSON).
    pub fn create_certificate(
        &self,
        vault: &str,
        name: &str,
        policy: &Value,
    ) -> Result<CertificateCreated, AdminError> {
        self.state.with_vault(vault, |v| {
            crate::certs::create_in(v, name, policy, true, BTreeMap::new())
        })
    }

    /// Adds a new version to a certificate.
    pub fn rotate_certificate(
        &self,
        vault: &str,
        name: &str,
    ) -> Result<CertificateCreated, AdminError> {
        self.state
            .with_vault(vault, |v| crate::certs::rotate_in(v, name))
    }

    pub fn set_certificate_enabled(
        &self,
        vault: &str,
        name: &str,
        version: Option<&str>,
        enabled: bool,
    ) -> Result<(), AdminError> {
        self.state.with_vault(vault, |v| {
            crate::certs::set_version(v, name, version, Some(enabled), None)
                .map(|_| ())
                .ok_or_else(|| AdminError::NotFound {
                    what: "certificate",
                    name: name.to_owned(),
                })
        })
    }

    /// Deletes a certificate and its managed secret.
    pub fn delete_certificate(&self, vault: &str, name: &str) -> Result<(), AdminError> {
        self.state
            .with_vault(vault, |v| crate::certs::delete_in(v, name).map(|_| ()))
    }

    /// Replaces the faults of a scope (a vault name, `imds` or `entra`).
    pub fn set_faults(&self, scope: &str, faults: Faults) {
        self.state.set_faults(scope, faults);
    }

    /// Throttles a scope: at most `limit` requests per `window`, the rest get 429.
    pub fn throttle(
        &self,
        scope: &str,
        limit: u32,
        window: std::time::Duration,
        retry_after_s: Option<u64>,
    ) {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.state.update_faults(scope, |f| {
            f.throttle = Some(Throttle {
                limit,
                window_ms,
                retry_after_s,
            })
        });
    }

    /// Answers the next requests of a scope with `statuses`, one each.
    pub fn fail_next(&self, scope: &str, statuses: &[u16]) {
        self.state
            .update_faults(scope, |f| f.statuses.extend(statuses.iter().copied()));
    }

    pub fn add_latency(&self, scope: &str, latency: std::time::Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.state.update_faults(scope, |f| f.latency_ms = ms);
    }

    /// Closes the connection of the next `count` requests of a scope without answering.
    pub fn drop_next(&self, scope: &str, count: u32) {
        self.state.update_faults(scope, |f| f.drop_next += count);
    }

    pub fn clear_faults(&self, scope: &str) {
        self.state.set_faults(scope, Faults::default());
    }

    pub fn counters(&self) -> Vec<RequestCount> {
        self.state.counters()
    }

    /// Requests seen in `scope` (a vault name, `imds`, `entra`) for `path`, any method and status
    /// (dropped connections count with status 0).
    pub fn request_count(&self, scope: &str, path: &str) -> u64 {
        self.state
            .counters()
            .iter()
            .filter(|c| c.scope == scope && c.path == path)
            .map(|c| c.count)
            .sum()
    }

    /// Requests in `scope` answered with `status`.
    pub fn status_count(&self, scope: &str, status: u16) -> u64 {
        self.state
            .counters()
            .iter()
            .filter(|c| c.scope == scope && c.status == status)
            .map(|c| c.count)
            .sum()
    }

    /// The most requests to `scope` (a vault name, `imds` or `entra`) that were being handled at
    /// the same time since the start or the last [`reset_counters`](Self::reset_counters).
    pub fn peak_in_flight(&self, scope: &str) -> u32 {
        self.state.peak_in_flight(scope)
    }

    pub fn reset_counters(&self) {
        self.state.reset_counters();
    }
}

/// Creates a vault with its contents.
pub fn create_vault(state: &State, spec: &VaultSpec) -> Result<Vault, AdminError> {
    state.create_vault(&spec.name, spec.tenant_id.as_deref(), spec.authorization)?;
    state.with_vault(&spec.name, |v| {
        v.challenge = spec.challenge;
        Ok(())
    })?;
    for role in &spec.roles {
        state.assign_roles(&spec.name, &role.principal, &role.roles)?;
    }
    for secret in &spec.secrets {
        state.set_secret(&spec.name, &secret.name, secret.spec.clone())?;
    }
    for cert in &spec.certificates {
        add_certificate(state, &spec.name, cert)?;
    }
    state.with_vault(&spec.name, |v| Ok(v.clone()))
}

fn add_certificate(
    state: &State,
    vault: &str,
    cert: &NamedCertificate,
) -> Result<CertificateCreated, AdminError> {
    let policy = cert.policy.clone().unwrap_or(Value::Null);
    state.with_vault(vault, |v| {
        if cert.import.pfx.is_some() || cert.import.pem.is_some() {
            crate::certs::import_in(v, &cert.name, &cert.import, &policy)
        } else {
            crate::certs::create_in(v, &cert.name, &policy, true, cert.import.tags.clone())
        }
    })
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
            result(create_vault(&s, &spec).map(|v| json!({"name": v.name, "tenantId": v.tenant_id})), true)
        }))
        .route("/_emulator/identities/system", post(|AxState((s, _)): AxState<Shared>, b: Bytes| async move {
            result(s.set_system_identity(parse!(&b)), true)
        }))
        .route("/_emulator/identities/user", post(|AxState((s, _)): AxState<Shared>, b: Bytes| async move {
            result(s.add_user_identity(parse!(&b)), true)
        }))
        .route("/_emulator/apps", post(|AxState((s, _)): AxState<Shared>, b: Bytes| async move {
            result(crate::entra::register_app(&s, parse!(&b)), true)
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
            result(s.with_vault(&vault, |v| crate::certs::import_in(v, &name, &import, &Value::Null)), true)
        }))
        .route("/_emulator/vaults/{vault}/certificates/{name}/create", post(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>, b: Bytes| async move {
            let spec: Value = parse!(&b);
            let policy = spec.get("policy").cloned().unwrap_or(Value::Null);
            result(s.with_vault(&vault, |v| crate::certs::create_in(v, &name, &policy, true, BTreeMap::new())), true)
        }))
        .route("/_emulator/vaults/{vault}/certificates/{name}/rotate", post(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>| async move {
            result(s.with_vault(&vault, |v| crate::certs::rotate_in(v, &name)), true)
        }))
        .route("/_emulator/vaults/{vault}/certificates/{name}", patch(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>, b: Bytes| async move {
            let spec: EnabledSpec = parse!(&b);
            result(s.with_vault(&vault, |v| {
                crate::certs::set_version(v, &name, spec.version.as_deref(), Some(spec.enabled), None)
                    .map(|version| json!({"version": version}))
                    .ok_or_else(|| AdminError::NotFound { what: "certificate", name: name.clone() })
            }), false)
        }).delete(|AxState((s, _)): AxState<Shared>, Path((vault, name)): Path<(String, String)>| async move {
            result(s.with_vault(&vault, |v| crate::certs::delete_in(v, &name).map(|_| json!({}))), false)
        }))
        .route("/_emulator/faults/{scope}", put(|AxState((s, _)): AxState<Shared>, Path(scope): Path<String>, b: Bytes| async move {
            let faults: Faults = parse!(&b);
            s.set_faults(&scope, faults);
            result(Ok::<_, AdminError>(s.faults(&scope)), false)
        }).get(|AxState((s, _)): AxState<Shared>, Path(scope): Path<String>| async move {
            result(Ok::<_, AdminError>(s.faults(&scope)), false)
        }).delete(|AxState((s, _)): AxState<Shared>, Path(scope): Path<String>| async move {
            s.set_faults(&scope, Faults::default());
            result(Ok::<_, AdminError>(json!({})), false)
        }))
        .route("/_emulator/counters", get(|AxState((s, _)): AxState<Shared>| async move {
            result(Ok::<_, AdminError>(s.counters()), false)
        }).delete(|AxState((s, _)): AxState<Shared>| async move {
            s.reset_counters();
            result(Ok::<_, AdminError>(json!({})), false)
        }))
        .with_state(shared)
}
