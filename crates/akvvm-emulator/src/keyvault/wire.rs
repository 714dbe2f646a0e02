//! What every Key Vault handler shares: the request context ([`Ctx`]) with its permission check
//! (Key Vault's 403 bodies, RBAC or access policy), Key Vault's answers and error bodies (with
//! the headers Key Vault sends), the answers to injected faults, the mapping of a model error to
//! Key Vault's answer, and list paging (`maxresults`, `$skiptoken`, `nextLink`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::error::AdminError;
use crate::state::{
    AuthorizationModel, NetworkDenial, Permission, State, Vault, valid_object_name,
};

/// Page size limit of list operations (Key Vault's maximum for `maxresults`).
pub const MAX_RESULTS: usize = 25;

/// A Key Vault error answer.
pub fn kv_error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(inner) = inner {
        error["innererror"] = json!({"code": inner});
    }
    with_kv_headers((status, axum::Json(json!({ "error": error }))).into_response())
}

/// The headers Key Vault sends on every data-plane answer, with the value shapes of the Azure
/// SDKs' recordings (e.g. azure-sdk-for-js `recording_can_list_secret_versions_non_existing.json`).
/// `x-ms-client-request-id` (echoed) and `x-ms-keyvault-rbac-assignment-id` (RBAC-authorised
/// answers) depend on the request and are added by the caller.
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
    headers.insert(
        "x-ms-keyvault-network-info",
        HeaderValue::from_static("conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::EXPIRES, HeaderValue::from_static("-1"));
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000;includeSubDomains"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
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

/// Key Vault's 403 when the vault's network rules refuse the request (a fault): the bodies Key
/// Vault sends, as quoted in hashicorp/terraform-provider-azurerm#20742 (`ForbiddenByFirewall`)
/// and microsoft/multimodal-ai#171 (`ForbiddenByConnection`). Listeners are on loopback, so the
/// client address is 127.0.0.1, as in `x-ms-keyvault-network-info`.
pub fn network_denied(vault: &str, caller: &Caller, denial: NetworkDenial) -> Response {
    let who = format!(
        "Caller: appid={};oid={};iss={}\r\nVault: {vault};location=local",
        caller.appid, caller.oid, caller.iss
    );
    let (message, inner) = match denial {
        NetworkDenial::ForbiddenByFirewall => (
            format!(
                "Client address is not authorized and caller is not a trusted service.\r\nClient address: 127.0.0.1\r\n{who}"
            ),
            "ForbiddenByFirewall",
        ),
        NetworkDenial::ForbiddenByConnection => (
            format!(
                "Public network access is disabled and request is not from a trusted service nor via an approved private link.\r\n{who}"
            ),
            "ForbiddenByConnection",
        ),
    };
    kv_error(StatusCode::FORBIDDEN, "Forbidden", &message, Some(inner))
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
    /// Set by [`Ctx::require`] when an RBAC role assignment allowed the request: the
    /// `x-ms-keyvault-rbac-assignment-id` of the answer.
    pub rbac_assignment: std::sync::OnceLock<String>,
}

/// The id of the role assignment that lets `principal` act in `vault`: stable, shaped as Key
/// Vault's (a name-based UUID, version 5).
pub fn rbac_assignment_id(vault: &str, principal: &str) -> String {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(format!("akvvm/{vault}/{principal}").to_ascii_lowercase());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .to_string()
}

impl Ctx<'_> {
    /// Reads the request's vault.
    pub fn read_vault<R>(&self, f: impl FnOnce(&Vault) -> R) -> R {
        self.state.read(|m| f(&m.vaults[&self.vault]))
    }

    /// Changes the request's vault; a refused change is answered as Key Vault would
    /// ([`admin_to_response`]).
    pub fn change_vault<R>(
        &self,
        f: impl FnOnce(&mut Vault) -> Result<R, AdminError>,
    ) -> Result<R, Response> {
        self.state
            .with_vault(&self.vault, f)
            .map_err(admin_to_response)
    }

    /// A list operation: the caller needs `perm` on the whole vault; `items` offers to the page
    /// every list item the vault holds, in order ([`Page::offer`]), paged under `path`.
    pub fn list(
        &self,
        perm: Permission,
        path: &str,
        items: impl FnOnce(&Vault, &mut Page),
    ) -> Result<Response, Response> {
        self.require(perm, "")?;
        let mut page = Page::of(self)?;
        self.read_vault(|vault| items(vault, &mut page));
        Ok(page.answer(self, path))
    }

    /// How long the vault's soft deletes and recoveries take ([`crate::state::Faults::deletion_delay_ms`]).
    pub fn deletion_delay_ms(&self) -> u64 {
        self.state.traffic.faults(&self.vault).deletion_delay_ms
    }

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
            if model == AuthorizationModel::Rbac {
                let _ = self
                    .rbac_assignment
                    .set(rbac_assignment_id(&self.vault, &self.caller.oid));
            }
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
    if valid_object_name(name) {
        Ok(())
    } else {
        Err(bad_parameter(&format!(
            "The request URI contains an invalid name: {name}. {kind} names may contain only letters, digits and dashes, 1 to 127 characters."
        )))
    }
}

/// The blob of a restore request (`{"value": base64url}`); an absent value is Key Vault's 400,
/// and a value that is not base64url an empty blob (which no restore accepts).
pub fn restore_blob(body: &Bytes) -> Result<Vec<u8>, Response> {
    #[derive(serde::Deserialize)]
    struct RestoreIn {
        value: Option<String>,
    }
    let input: RestoreIn = parse_body(body)?;
    let Some(value) = input.value else {
        return Err(bad_parameter(
            "The request body must contain the property 'value'.",
        ));
    };
    Ok(URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .unwrap_or_default())
}

/// Key Vault's 400 for a backup blob it did not make (azure-sdk-for-js
/// `recording_can_restore_a_secret_malformed_backup_bytes.json`).
pub fn malformed_backup() -> Response {
    kv_error(
        StatusCode::BAD_REQUEST,
        "Malformed backup blob",
        "Backup blob contains invalid or corrupt version.",
        None,
    )
}

pub fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| bad_parameter(&format!("The request body is not valid: {e}")))
}

pub fn admin_to_response(e: AdminError) -> Response {
    match e {
        AdminError::NotFound { what, name } => kv_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{what} {name} was not found"),
            None,
        ),
        // Key Vault's words (azure-sdk-for-js keys recording
        // recording_can_get_the_versions_of_a_key: "Key is currently being deleted.").
        AdminError::Conflict { what, .. } if what.contains("being deleted") => {
            being_deleted(if what.starts_with("certificate") {
                "Certificate"
            } else {
                "Secret"
            })
        }
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

/// Key Vault's 409 for a name whose delete is still in progress; `kind` is `Secret` or
/// `Certificate`.
pub fn being_deleted(kind: &str) -> Response {
    kv_error(
        StatusCode::CONFLICT,
        "Conflict",
        &format!("{kind} is currently being deleted."),
        Some("ObjectIsBeingDeleted"),
    )
}

/// Key Vault's 409 for a restore onto a name in use, naming the backed-up object's `id` (its
/// current version); `object` is `secret` or `certificate`. Key Vault's words (azure-sdk-for-python
/// `test_secrets_client.pyTestSecretClienttest_backup_restore[7.3].json` and
/// `test_certificates_client.pyTestCertificateClienttest_backup_restore[7.3].json`).
pub fn restore_conflict(object: &str, id: &str) -> Response {
    kv_error(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "There was a conflict restoring the {object} '{id}'. This can happen if either: a second {object} with the same name was created after the first {object} was deleted; thus trying to restore a {object} whose name is already in use. To fix this, rename the second {object} to something else so that the restore works. The second probable cause of this exception is when multiple operations are performed in parallel against the {object}. To avoid this error, perform operations against a {object} in a sequential manner."
        ),
        None,
    )
}

/// Key Vault's 404 for a deleted object that is not there; `kind` is `Secret` or `Certificate`.
pub fn deleted_not_found(kind: &str, name: &str) -> Response {
    kv_error(
        StatusCode::NOT_FOUND,
        &format!("{kind}NotFound"),
        &format!("Deleted {kind} not found: {name}"),
        None,
    )
}

/// The deleted objects of one kind, `/{collection}/{name}`: get, purge and recover each check
/// the caller's permission on that path, then read or change the request's vault; what is not
/// there is Key Vault's [`deleted_not_found`].
pub struct DeletedObjects<'c, 'a> {
    pub ctx: &'c Ctx<'a>,
    /// `Secret` or `Certificate`.
    pub kind: &'static str,
    /// `deletedsecrets` or `deletedcertificates`.
    pub collection: &'static str,
}

impl DeletedObjects<'_, '_> {
    pub fn not_found(&self, name: &str) -> Response {
        deleted_not_found(self.kind, name)
    }

    fn require(&self, perm: Permission, name: &str) -> Result<(), Response> {
        self.ctx
            .require(perm, &format!("/{}/{name}", self.collection))
    }

    /// `GET /{collection}/{name}`: the `answer` to the object `find` reads (by lower-case name).
    pub fn get<D>(
        &self,
        perm: Permission,
        name: &str,
        find: impl FnOnce(&Vault, &str) -> Option<D>,
        answer: impl FnOnce(&D) -> Option<Value>,
    ) -> Result<Response, Response> {
        self.require(perm, name)?;
        let key = name.to_ascii_lowercase();
        // Not there until its delete completes.
        let d = self
            .ctx
            .read_vault(|vault| find(vault, &key).filter(|_| !vault.is_being_deleted(&key)))
            .ok_or_else(|| self.not_found(name))?;
        answer(&d)
            .map(|body| ok_json(StatusCode::OK, body))
            .ok_or_else(|| self.not_found(name))
    }

    /// `DELETE /{collection}/{name}`: purges the object (204).
    pub fn purge<D>(
        &self,
        perm: Permission,
        name: &str,
        purge: impl FnOnce(&mut Vault, &str) -> Option<D>,
    ) -> Result<Response, Response> {
        self.require(perm, name)?;
        self.refuse_while_being_deleted(name)?;
        let purged = self.ctx.change_vault(|v| Ok(purge(v, name)))?;
        purged
            .map(|_| no_content())
            .ok_or_else(|| self.not_found(name))
    }

    /// `POST /{collection}/{name}/recover`: the recovered object, `None` when there was none.
    pub fn recover<O>(
        &self,
        perm: Permission,
        name: &str,
        recover: impl FnOnce(&mut Vault, &str) -> Option<O>,
    ) -> Result<Option<O>, Response> {
        self.require(perm, name)?;
        self.refuse_while_being_deleted(name)?;
        let delay = self.ctx.deletion_delay_ms();
        self.ctx.change_vault(|v| {
            let recovered = recover(v, name);
            if recovered.is_some() {
                v.start_recovery(name, delay);
            }
            Ok(recovered)
        })
    }

    /// Key Vault's 409 while the delete of `name` is in progress.
    fn refuse_while_being_deleted(&self, name: &str) -> Result<(), Response> {
        if self.ctx.read_vault(|v| v.is_being_deleted(name)) {
            return Err(being_deleted(self.kind));
        }
        Ok(())
    }

    /// Any other path under `/{collection}`.
    pub fn unsupported(&self, rest: &[&str]) -> Response {
        not_found_path(&format!("/{}/{}", self.collection, rest.join("/")))
    }
}

/// A deleted object's answer: `body` with where to recover it from (`recoveryId`:
/// `/{collection}/{name}`), when it was deleted and when it will be purged.
pub fn with_deletion(
    ctx: &Ctx<'_>,
    mut body: Value,
    collection: &str,
    name: &str,
    deleted_date: i64,
    scheduled_purge_date: i64,
) -> Value {
    body["recoveryId"] = json!(format!("{}/{collection}/{name}", ctx.base));
    body["deletedDate"] = json!(deleted_date);
    body["scheduledPurgeDate"] = json!(scheduled_purge_date);
    body
}

/// A list answer, `{"value": [...], "nextLink": ...}`: the page of `items` that `maxresults`
/// and `$skiptoken` select, and the link to the next page of `path` (null on the last page).
pub fn list_page(ctx: &Ctx<'_>, items: Vec<Value>, path: &str) -> Result<Response, Response> {
    let mut page = Page::of(ctx)?;
    for item in items {
        page.offer(|| item);
    }
    Ok(page.answer(ctx, path))
}

/// One page of a list being answered: which items it holds (`maxresults`, `$skiptoken` and the
/// short-pages fault), filled by [`Page::offer`]ing every item the list has, in order. Only
/// the items on the page are built, so a page costs one pass over the list's entries, not the
/// building of every item's JSON.
pub struct Page {
    /// Where the page starts: the skiptoken's offset.
    offset: usize,
    /// How many items it holds at most (0 for an empty page of the short-pages fault).
    size: usize,
    /// `maxresults` as the request gave it, repeated in the `nextLink`.
    max: Option<usize>,
    /// Empty pages served so far under the short-pages fault (0 otherwise).
    empties: u32,
    /// Whether this page is one of the fault's empty pages.
    empty: bool,
    /// Items offered so far.
    seen: usize,
    items: Vec<Value>,
}

impl Page {
    /// The page a list request asks for; a bad `maxresults` or `$skiptoken` is Key Vault's 400.
    pub fn of(ctx: &Ctx<'_>) -> Result<Self, Response> {
        let max = match ctx.query.get("maxresults") {
            None => None,
            Some(m) => match m.parse::<usize>() {
                Ok(n) if (1..=MAX_RESULTS).contains(&n) => Some(n),
                _ => {
                    return Err(bad_parameter(&format!(
                        "Invalid value for maxresults: {m}. It must be an integer from 1 to {MAX_RESULTS}."
                    )));
                }
            },
        };
        // The skiptoken is `akvvm:{offset}`, or `akvvm:{offset}:{empty pages served}` under the
        // short-pages fault.
        let (offset, empties) = match ctx.query.get("$skiptoken") {
            None => (0, 0),
            Some(token) => URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    let rest = s.strip_prefix("akvvm:")?;
                    let (offset, empties) = rest.split_once(':').unwrap_or((rest, "0"));
                    Some((offset.parse::<usize>().ok()?, empties.parse::<u32>().ok()?))
                })
                .ok_or_else(|| {
                    bad_parameter("The $skiptoken parameter is not one this vault issued.")
                })?,
        };
        let limit = max.unwrap_or(MAX_RESULTS);
        // Under the short-pages fault: empty pages first, each still linking to the next one,
        // then short pages.
        let (size, empty) = match ctx.state.traffic.faults(&ctx.vault).list_paging {
            Some(p) if empties < p.empty_pages => (0, true),
            Some(p) => ((p.page_size.max(1) as usize).min(limit), false),
            None => (limit, false),
        };
        Ok(Self {
            offset,
            size,
            max,
            empties,
            empty,
            seen: 0,
            items: Vec::with_capacity(size),
        })
    }

    /// The list's next item, built by `item` only if it falls on this page.
    pub fn offer(&mut self, item: impl FnOnce() -> Value) {
        if (self.offset..self.offset + self.size).contains(&self.seen) {
            self.items.push(item());
        }
        self.seen += 1;
    }

    /// The answer: the page's items and the link to the next page of `path`. As Key Vault
    /// writes the link: the port always named, `maxresults` only when the request gave it.
    pub fn answer(self, ctx: &Ctx<'_>, path: &str) -> Response {
        let link = |offset: usize, empties: u32| {
            let token = if empties == 0 {
                format!("akvvm:{offset}")
            } else {
                format!("akvvm:{offset}:{empties}")
            };
            let mut link = format!(
                "{}{path}?api-version={}&$skiptoken={}",
                ctx.base_with_port(),
                ctx.api_version,
                URL_SAFE_NO_PAD.encode(token)
            );
            if let Some(max) = self.max {
                link.push_str(&format!("&maxresults={max}"));
            }
            json!(link)
        };
        let next = if self.empty {
            link(self.offset, self.empties + 1)
        } else if self.offset + self.size < self.seen {
            link(self.offset + self.size, 0)
        } else {
            Value::Null
        };
        ok_json(
            StatusCode::OK,
            json!({"value": self.items, "nextLink": next}),
        )
    }
}
