//! `/certificates` and `/deletedcertificates`: create (self-signed from a policy, or a CSR to merge for issuer `Unknown`; the answer is
//! the pending operation, as Key Vault's), import, get, list, versions, the pending operation,
//! policy (read and updated), update and delete (soft), backup and restore, and get, list, purge
//! and recover deleted certificates.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Digest;

use super::wire::{
    Ctx, DeletedObjects, admin_to_response, bad_parameter, check_name, kv_error, list_page,
    malformed_backup, method_not_allowed, not_found_path, ok_json, parse_body, restore_blob,
    restore_conflict, with_deletion,
};
use crate::certs::CertificateImport;
use crate::error::AdminError;
use crate::state::certificates::{
    OperationChange, create_in, create_unknown_in, import_in, merge_in, operation_in,
    purge_deleted_certificate, recover_deleted_certificate, set_version, soft_delete_in,
    start_operation_in, update_policy_in,
};
use crate::state::model::{listing_order, version_index};
use crate::state::{
    Certificate, CertificateVersion, DeletedCertificate, PendingOperation, Permission,
    RECOVERABLE_DAYS, RECOVERY_LEVEL,
};

fn x5t(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der))
}

fn cert_attributes(v: &CertificateVersion) -> Value {
    json!({
        "enabled": v.enabled,
        "nbf": v.nbf,
        "exp": v.exp,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": RECOVERABLE_DAYS,
    })
}

fn policy_body(ctx: &Ctx<'_>, cert: &Certificate) -> Value {
    let mut p = cert.policy.clone();
    p["id"] = json!(format!("{}/certificates/{}/policy", ctx.base, cert.name));
    p["attributes"]["created"] = json!(cert.policy_created);
    p["attributes"]["updated"] = json!(cert.policy_updated.unwrap_or(cert.policy_created));
    p
}

fn bundle_body(ctx: &Ctx<'_>, cert: &Certificate, v: &CertificateVersion) -> Value {
    let mut body = json!({
        "id": format!("{}/certificates/{}/{}", ctx.base, cert.name, v.version),
        "kid": format!("{}/keys/{}/{}", ctx.base, cert.name, v.version),
        "sid": format!("{}/secrets/{}/{}", ctx.base, cert.name, v.version),
        "x5t": x5t(&v.cer),
        "cer": STANDARD.encode(&v.cer),
        "attributes": cert_attributes(v),
        "policy": policy_body(ctx, cert),
    });
    if !v.tags.is_empty() {
        body["tags"] = json!(v.tags);
    }
    if cert.pending.is_some() {
        body["pending"] = json!({"id": format!("{}/certificates/{}/pending", ctx.base, cert.name)});
    }
    body
}

fn item_body(id: String, v: &CertificateVersion) -> Value {
    let mut body = json!({"id": id, "x5t": x5t(&v.cer), "attributes": cert_attributes(v)});
    if !v.tags.is_empty() {
        body["tags"] = json!(v.tags);
    }
    body
}

fn cert_not_found(name: &str, version: Option<&str>) -> Response {
    // Key Vault names a version `{name}/versions/{version}` (azure-sdk-for-python
    // test_certificates_client.pyTestCertificateClienttest_crud_operations[7.3].json).
    let id = version.map_or_else(|| name.to_owned(), |v| format!("{name}/versions/{v}"));
    kv_error(
        StatusCode::NOT_FOUND,
        "CertificateNotFound",
        &format!(
            "A certificate with (name/id) {id} was not found in this key vault. If you recently deleted this certificate you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        None,
    )
}

#[derive(Deserialize)]
struct AttributesIn {
    enabled: Option<bool>,
}

#[derive(Deserialize)]
struct CreateIn {
    policy: Option<Value>,
    attributes: Option<AttributesIn>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct ImportIn {
    value: Option<String>,
    pwd: Option<String>,
    policy: Option<Value>,
    attributes: Option<AttributesIn>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct MergeIn {
    x5c: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct OperationIn {
    cancellation_requested: Option<bool>,
}

#[derive(Deserialize)]
struct UpdateIn {
    attributes: Option<AttributesIn>,
    tags: Option<BTreeMap<String, String>>,
    /// Members of the policy to change, as `PATCH .../policy` takes them.
    policy: Option<Value>,
}

/// Checks that the caller holds `perm` on the certificate `name` (Key Vault's 403 names it).
fn require(ctx: &Ctx<'_>, perm: Permission, name: &str) -> Result<(), Response> {
    ctx.require(perm, &format!("/certificates/{name}"))
}

/// The certificate `name`; none while its recovery is in progress.
fn get_cert(ctx: &Ctx<'_>, name: &str) -> Option<Certificate> {
    ctx.read_vault(|vault| {
        let cert = vault.certificates.get(&name.to_ascii_lowercase())?;
        (!vault.is_being_recovered(name)).then(|| cert.clone())
    })
}

/// The bundle of version `version` of the certificate `name`; when it is gone, the 404 names
/// `asked` (the version the request named, if any).
fn version_bundle(
    ctx: &Ctx<'_>,
    name: &str,
    version: &str,
    asked: Option<&str>,
) -> Result<Value, Response> {
    let cert = get_cert(ctx, name).ok_or_else(|| cert_not_found(name, asked))?;
    let v = cert
        .versions
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(|| cert_not_found(name, asked))?;
    Ok(bundle_body(ctx, &cert, v))
}

/// Key Vault's `Retry-After` (seconds) on a certificate operation still in progress.
const OPERATION_RETRY_AFTER_S: &str = "10";

/// The status of a certificate operation: `inProgress` while polls are left (`cancelled` once a
/// cancellation was asked for), then `completed`. Creation itself is synchronous here; the create
/// answer always says `inProgress`, as Key Vault's does.
fn operation_status(op: &PendingOperation, at_creation: bool) -> &'static str {
    let waiting = at_creation || op.polls_left > 0 || op.awaiting_merge.is_some();
    match (waiting, op.cancellation_requested) {
        (true, false) => "inProgress",
        (true, true) => "cancelled",
        (false, _) => "completed",
    }
}

/// The certificate operation as Key Vault answers it (`CertificateOperation`).
fn operation_body(ctx: &Ctx<'_>, cert: &Certificate, op: &PendingOperation, status: &str) -> Value {
    let mut body = json!({
        "id": format!("{}/certificates/{}/pending", ctx.base, cert.name),
        "issuer": {"name": cert.policy["issuer"]["name"].as_str().unwrap_or("Self")},
        "csr": STANDARD.encode(&op.csr),
        "cancellation_requested": op.cancellation_requested,
        "status": status,
        "request_id": op.request_id,
    });
    match status {
        "completed" => {
            body["target"] = json!(format!("{}/certificates/{}", ctx.base, cert.name));
        }
        "inProgress" => {
            body["status_details"] = json!(
                "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later."
            );
        }
        _ => {}
    }
    body
}

fn pending_not_found(name: &str) -> Response {
    kv_error(
        StatusCode::NOT_FOUND,
        "PendingCertificateNotFound",
        &format!("Pending certificate not found: {name}"),
        None,
    )
}

/// Answers `GET|PATCH|DELETE .../pending` after applying `change` to the operation.
fn operation(ctx: &Ctx<'_>, name: &str, change: OperationChange) -> Result<Response, Response> {
    let cert = ctx
        .change_vault(|v| Ok(operation_in(v, name, change)))?
        .ok_or_else(|| pending_not_found(name))?;
    let op = cert
        .pending
        .as_ref()
        .ok_or_else(|| pending_not_found(name))?;
    // A cancellation asked for just now shows as `inProgress` with `cancellation_requested`,
    // as Key Vault answers the PATCH.
    let status = match (change, operation_status(op, false)) {
        (OperationChange::Cancel, "cancelled") => "inProgress",
        (_, status) => status,
    };
    let mut response = ok_json(StatusCode::OK, operation_body(ctx, &cert, op, status));
    if change == OperationChange::Poll && status == "inProgress" {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(OPERATION_RETRY_AFTER_S),
        );
    }
    Ok(response)
}

/// Handles `/certificates/...`.
pub fn handle(
    ctx: &Ctx<'_>,
    method: &Method,
    rest: &[&str],
    body: &Bytes,
) -> Result<Response, Response> {
    match (rest, method) {
        ([] | [""], &Method::GET) => ctx.list(
            Permission::CertificatesList,
            "/certificates",
            |vault, page| {
                let listed = vault.certificates.values();
                for (c, v) in listed.filter_map(|c| Some((c, c.versions.last()?))) {
                    page.offer(|| item_body(format!("{}/certificates/{}", ctx.base, c.name), v));
                }
            },
        ),
        ([name, "create"], &Method::POST) => {
            check_name("Certificate", name)?;
            require(ctx, Permission::CertificatesCreate, name)?;
            let input: CreateIn = parse_body(body)?;
            let policy = input.policy.unwrap_or(Value::Null);
            let enabled = input.attributes.and_then(|a| a.enabled).unwrap_or(true);
            let polls = ctx.state.traffic.faults(&ctx.vault).pending_polls;
            let tags = input.tags.unwrap_or_default();
            let unknown = policy["issuer"]["name"]
                .as_str()
                .is_some_and(|i| i.eq_ignore_ascii_case("Unknown"));
            ctx.change_vault(|v| {
                if unknown {
                    return create_unknown_in(v, name, &policy, enabled, tags);
                }
                create_in(v, name, &policy, enabled, tags)?;
                start_operation_in(v, name, polls)
            })?;
            let cert = get_cert(ctx, name).ok_or_else(|| cert_not_found(name, None))?;
            let op = cert
                .pending
                .as_ref()
                .ok_or_else(|| pending_not_found(name))?;
            let status = operation_status(op, true);
            let mut response =
                ok_json(StatusCode::ACCEPTED, operation_body(ctx, &cert, op, status));
            let location = format!(
                "{}/certificates/{}/pending?api-version={}&request_id={}",
                ctx.base, cert.name, ctx.api_version, op.request_id
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(OPERATION_RETRY_AFTER_S),
            );
            Ok(response)
        }
        ([name, "import"], &Method::POST) => {
            check_name("Certificate", name)?;
            require(ctx, Permission::CertificatesImport, name)?;
            let input: ImportIn = parse_body(body)?;
            let Some(value) = input.value else {
                return Err(bad_parameter(
                    "The request body must contain the property 'value'.",
                ));
            };
            let policy = input.policy.unwrap_or(Value::Null);
            let is_pem = value.trim_start().starts_with("-----BEGIN");
            let import = CertificateImport {
                pfx: (!is_pem).then(|| value.clone()),
                pem: is_pem.then_some(value),
                password: input.pwd,
                content_type: None,
                tags: input.tags.unwrap_or_default(),
            };
            let created = ctx.change_vault(|v| {
                let created = import_in(v, name, &import, &policy)?;
                if let Some(false) = input.attributes.and_then(|a| a.enabled)
                    && let Some(c) = v.certificates.get_mut(&name.to_ascii_lowercase())
                    && let Some(last) = c.versions.last_mut()
                {
                    last.enabled = false;
                }
                Ok(created)
            })?;
            Ok(ok_json(
                StatusCode::OK,
                version_bundle(ctx, name, &created.version, None)?,
            ))
        }
        ([name, "pending"], &Method::GET) => {
            require(ctx, Permission::CertificatesGet, name)?;
            operation(ctx, name, OperationChange::Poll)
        }
        ([name, "pending"], &Method::PATCH) => {
            require(ctx, Permission::CertificatesCreate, name)?;
            let input: OperationIn = parse_body(body)?;
            let change = if input.cancellation_requested == Some(true) {
                OperationChange::Cancel
            } else {
                OperationChange::Read
            };
            operation(ctx, name, change)
        }
        ([name, "pending"], &Method::DELETE) => {
            require(ctx, Permission::CertificatesDelete, name)?;
            operation(ctx, name, OperationChange::Delete)
        }
        ([name, "pending", "merge"], &Method::POST) => {
            check_name("Certificate", name)?;
            require(ctx, Permission::CertificatesCreate, name)?;
            let input: MergeIn = parse_body(body)?;
            let x5c = input
                .x5c
                .unwrap_or_default()
                .iter()
                .map(|c| STANDARD.decode(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad_parameter(&format!("x5c is not base64: {e}")))?;
            if x5c.is_empty() {
                return Err(bad_parameter(
                    "The request body must contain the property 'x5c'.",
                ));
            }
            let merged = ctx
                .state
                .with_vault(&ctx.vault, |v| merge_in(v, name, &x5c))
                .map_err(|e| match e {
                    AdminError::Invalid(msg) => bad_parameter(&msg),
                    other => admin_to_response(other),
                })?
                .ok_or_else(|| pending_not_found(name))?;
            let bundle = version_bundle(ctx, name, &merged.version, None)?;
            Ok(ok_json(StatusCode::CREATED, bundle))
        }
        ([name, "policy"], &Method::GET) => {
            require(ctx, Permission::CertificatesGet, name)?;
            let cert = get_cert(ctx, name).ok_or_else(|| cert_not_found(name, None))?;
            Ok(ok_json(StatusCode::OK, policy_body(ctx, &cert)))
        }
        ([name, "policy"], &Method::PATCH) => {
            check_name("Certificate", name)?;
            require(ctx, Permission::CertificatesCreate, name)?;
            let patch: Value = parse_body(body)?;
            let cert = ctx
                .state
                .with_vault(&ctx.vault, |v| update_policy_in(v, name, &patch))
                .map_err(|e| match e {
                    AdminError::NotFound { .. } => cert_not_found(name, None),
                    other => admin_to_response(other),
                })?;
            Ok(ok_json(StatusCode::OK, policy_body(ctx, &cert)))
        }
        ([name, "versions"], &Method::GET) => {
            check_name("Certificate", name)?;
            require(ctx, Permission::CertificatesList, name)?;
            // An unknown name has no versions: Key Vault answers an empty list, not a 404
            // (azure-sdk-for-js recording_can_list_certificate_versions_non_existing.json).
            let items = get_cert(ctx, name)
                .map(|cert| {
                    listing_order(&cert.versions, |v| &v.version)
                        .into_iter()
                        .map(|v| {
                            item_body(
                                format!("{}/certificates/{}/{}", ctx.base, cert.name, v.version),
                                v,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            list_page(ctx, items, &format!("/certificates/{name}/versions"))
        }
        ([name] | [name, ""], &Method::GET) => get_version(ctx, name, None),
        ([name, version], &Method::GET) => get_version(ctx, name, Some(version)),
        ([name] | [name, ""], &Method::PATCH) => update(ctx, name, None, body),
        ([name, version], &Method::PATCH) => update(ctx, name, Some(version), body),
        ([name], &Method::DELETE) => {
            require(ctx, Permission::CertificatesDelete, name)?;
            let delay = ctx.deletion_delay_ms();
            let deleted = ctx
                .state
                .with_vault(&ctx.vault, |v| {
                    let deleted = soft_delete_in(v, name)?;
                    v.start_deletion(name, delay);
                    Ok(deleted)
                })
                .map_err(|e| match e {
                    AdminError::NotFound { .. } => cert_not_found(name, None),
                    other => admin_to_response(other),
                })?;
            deleted_bundle(ctx, &deleted)
                .map(|body| ok_json(StatusCode::OK, body))
                .ok_or_else(|| cert_not_found(name, None))
        }
        ([name, "backup"], &Method::POST) => backup_certificate(ctx, name),
        (["restore"], &Method::POST) => restore_certificate(ctx, body),
        ([_] | [_, _] | [_, "pending", "merge"], _) => Err(method_not_allowed(method)),
        _ => Err(not_found_path(&format!("/certificates/{}", rest.join("/")))),
    }
}

fn get_version(ctx: &Ctx<'_>, name: &str, version: Option<&str>) -> Result<Response, Response> {
    check_name("Certificate", name)?;
    require(ctx, Permission::CertificatesGet, name)?;
    let cert = get_cert(ctx, name).ok_or_else(|| cert_not_found(name, version))?;
    let v = version_index(&cert.versions, version, |v| &v.version)
        .map(|i| &cert.versions[i])
        .ok_or_else(|| cert_not_found(name, version))?;
    Ok(ok_json(StatusCode::OK, bundle_body(ctx, &cert, v)))
}

fn update(
    ctx: &Ctx<'_>,
    name: &str,
    version: Option<&str>,
    body: &Bytes,
) -> Result<Response, Response> {
    check_name("Certificate", name)?;
    require(ctx, Permission::CertificatesCreate, name)?;
    let input: UpdateIn = parse_body(body)?;
    let enabled = input.attributes.and_then(|a| a.enabled);
    let tags = input.tags;
    if let Some(policy) = &input.policy {
        ctx.state
            .with_vault(&ctx.vault, |v| update_policy_in(v, name, policy))
            .map_err(|e| match e {
                AdminError::NotFound { .. } => cert_not_found(name, version),
                other => admin_to_response(other),
            })?;
    }
    let found = ctx.change_vault(|v| Ok(set_version(v, name, version, enabled, tags)))?;
    let Some(ver) = found else {
        return Err(cert_not_found(name, version));
    };
    Ok(ok_json(
        StatusCode::OK,
        version_bundle(ctx, name, &ver, version)?,
    ))
}

/// `POST /certificates/{name}/backup`: the certificate with every version, its policy and its
/// managed secret as an opaque blob (`{"value": base64url}`), as Key Vault's backup.
fn backup_certificate(ctx: &Ctx<'_>, name: &str) -> Result<Response, Response> {
    check_name("Certificate", name)?;
    require(ctx, Permission::CertificatesBackup, name)?;
    let blob = ctx
        .read_vault(|vault| {
            (!vault.is_being_recovered(name))
                .then(|| crate::state::certificate_backup::certificate_backup(vault, name))
                .flatten()
        })
        .ok_or_else(|| cert_not_found(name, None))?;
    Ok(ok_json(
        StatusCode::OK,
        json!({"value": URL_SAFE_NO_PAD.encode(blob)}),
    ))
}

/// `POST /certificates/restore` `{"value": blob}`: the certificate of a backup blob under its own
/// name. A blob this vault did not make is Key Vault's 400 (as for secrets); a name in use is
/// Key Vault's 409 ([`restore_conflict`]).
fn restore_certificate(ctx: &Ctx<'_>, body: &Bytes) -> Result<Response, Response> {
    ctx.require(Permission::CertificatesRestore, "")?;
    let blob = restore_blob(body)?;
    let restored = ctx
        .state
        .with_vault(&ctx.vault, |v| {
            crate::state::certificate_backup::restore_certificate_in(v, &blob)
        })
        .map_err(|e| match e {
            AdminError::Conflict {
                what: "certificate",
                name,
            } => {
                let version = crate::state::certificate_backup::current_version(&blob);
                let id = format!(
                    "{}/certificates/{name}/{}",
                    ctx.base,
                    version.unwrap_or_default()
                );
                restore_conflict("certificate", &id)
            }
            other => admin_to_response(other),
        })?;
    let cert = restored.ok_or_else(malformed_backup)?;
    let last = cert
        .versions
        .last()
        .ok_or_else(|| cert_not_found(&cert.name, None))?;
    Ok(ok_json(StatusCode::OK, bundle_body(ctx, &cert, last)))
}

/// A `DeletedCertificateBundle`: the latest version with where to recover it from.
fn deleted_bundle(ctx: &Ctx<'_>, d: &DeletedCertificate) -> Option<Value> {
    let cert = &d.certificate;
    let body = bundle_body(ctx, cert, cert.versions.last()?);
    Some(deletion(ctx, body, d))
}

/// `body` with what a deleted certificate's answer carries ([`with_deletion`]).
fn deletion(ctx: &Ctx<'_>, body: Value, d: &DeletedCertificate) -> Value {
    let name = &d.certificate.name;
    with_deletion(
        ctx,
        body,
        "deletedcertificates",
        name,
        d.deleted_date,
        d.scheduled_purge_date,
    )
}

/// Handles `/deletedcertificates/...`: get, list, purge and recover certificates that the
/// data plane deleted.
pub fn deleted(ctx: &Ctx<'_>, method: &Method, rest: &[&str]) -> Result<Response, Response> {
    let deleted = DeletedObjects {
        ctx,
        kind: "Certificate",
        collection: "deletedcertificates",
    };
    match (rest, method) {
        ([] | [""], &Method::GET) => ctx.list(
            Permission::CertificatesList,
            "/deletedcertificates",
            |vault, page| {
                let listed = vault.deleted_certificates.values();
                let listed = listed.filter(|d| !vault.is_being_deleted(&d.certificate.name));
                for (d, v) in listed.filter_map(|d| Some((d, d.certificate.versions.last()?))) {
                    page.offer(|| {
                        let url = format!("{}/certificates/{}", ctx.base, d.certificate.name);
                        deletion(ctx, item_body(url, v), d)
                    });
                }
            },
        ),
        ([name], &Method::GET) => deleted.get(
            Permission::CertificatesList,
            name,
            |vault, key| vault.deleted_certificates.get(key).cloned(),
            |d| deleted_bundle(ctx, d),
        ),
        ([name], &Method::DELETE) => deleted.purge(
            Permission::CertificatesPurge,
            name,
            purge_deleted_certificate,
        ),
        ([name, "recover"], &Method::POST) => {
            let recovered = deleted.recover(
                Permission::CertificatesRecover,
                name,
                recover_deleted_certificate,
            )?;
            let cert = recovered.ok_or_else(|| deleted.not_found(name))?;
            let last = cert
                .versions
                .last()
                .ok_or_else(|| deleted.not_found(name))?;
            Ok(ok_json(StatusCode::OK, bundle_body(ctx, &cert, last)))
        }
        _ => Err(deleted.unsupported(rest)),
    }
}
