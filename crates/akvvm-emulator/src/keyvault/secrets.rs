//! `/secrets` and `/deletedsecrets`: set (a new version), get (with `outContentType`), list,
//! versions, update, delete (soft), backup and restore, and get, list, purge and recover deleted
//! secrets.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::wire::{
    Ctx, DeletedObjects, admin_to_response, bad_parameter, check_name, kv_error, list_page,
    malformed_backup, method_not_allowed, not_found_path, ok_json, parse_body, restore_blob,
    restore_conflict, with_deletion,
};
use crate::error::AdminError;
use crate::state::model::{listing_order, version_index};
use crate::state::secrets::{
    backup_blob, insert_secret_version, purge_deleted_secret, recover_deleted_secret,
    restore_secret_in, secret_from_backup, soft_delete_secret, update_secret_version,
};
use crate::state::{
    DeletedSecret, Permission, RECOVERABLE_DAYS, RECOVERY_LEVEL, SecretSpec, SecretUpdate,
    SecretVersion,
};

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
fn secret_bundle(ctx: &Ctx<'_>, name: &str, v: &SecretVersion, with_value: bool) -> Value {
    let id = format!("{}/secrets/{}/{}", ctx.base, name, v.version);
    let mut body = secret_common(v, id);
    if v.managed {
        body["kid"] = json!(format!("{}/keys/{}/{}", ctx.base, name, v.version));
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

pub fn handle(
    ctx: &Ctx<'_>,
    method: &Method,
    rest: &[&str],
    body: &Bytes,
) -> Result<Response, Response> {
    match (rest, method) {
        ([] | [""], &Method::GET) => {
            ctx.list(Permission::SecretsList, "/secrets", |vault, page| {
                let listed = vault
                    .secrets
                    .values()
                    .filter(|s| !vault.is_being_recovered(&s.name));
                for (s, v) in listed.filter_map(|s| Some((s, s.versions.last()?))) {
                    page.offer(|| secret_common(v, format!("{}/secrets/{}", ctx.base, s.name)));
                }
            })
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
            let (secret, version) = ctx.change_vault(|v| {
                let version = insert_secret_version(v, name, spec, false)?;
                Ok((v.secrets[&name.to_ascii_lowercase()].clone(), version))
            })?;
            Ok(ok_json(
                StatusCode::OK,
                secret_bundle(ctx, &secret.name, &version, true),
            ))
        }
        ([name, "versions"], &Method::GET) => {
            check_name("Secret", name)?;
            ctx.require(Permission::SecretsList, &format!("/secrets/{name}"))?;
            // An unknown name has no versions: Key Vault answers an empty list, not a 404
            // (azure-sdk-for-js recording_can_list_secret_versions_non_existing.json).
            let items = ctx.read_vault(|vault| {
                vault
                    .secrets
                    .get(&name.to_ascii_lowercase())
                    .filter(|_| !vault.is_being_recovered(name))
                    .map(|s| {
                        listing_order(&s.versions, |v| &v.version)
                            .into_iter()
                            .map(|v| {
                                secret_common(
                                    v,
                                    format!("{}/secrets/{}/{}", ctx.base, s.name, v.version),
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            });
            list_page(ctx, items, &format!("/secrets/{name}/versions"))
        }
        ([name] | [name, ""], &Method::GET) => get_secret(ctx, name, None),
        ([name, version], &Method::GET) => get_secret(ctx, name, Some(version)),
        ([name, "backup"], &Method::POST) => {
            check_name("Secret", name)?;
            ctx.require(Permission::SecretsBackup, &format!("/secrets/{name}"))?;
            let secret = ctx
                .read_vault(|vault| {
                    let secret = vault.secrets.get(&name.to_ascii_lowercase())?;
                    (!vault.is_being_recovered(name)).then(|| secret.clone())
                })
                .ok_or_else(|| secret_not_found(name, None))?;
            Ok(ok_json(
                StatusCode::OK,
                json!({"value": URL_SAFE_NO_PAD.encode(backup_blob(&secret))}),
            ))
        }
        (["restore"], &Method::POST) => restore_secret(ctx, body),
        ([name] | [name, ""], &Method::PATCH) => update_secret(ctx, name, None, body),
        ([name, version], &Method::PATCH) => update_secret(ctx, name, Some(version), body),
        ([name], &Method::DELETE) => {
            check_name("Secret", name)?;
            ctx.require(Permission::SecretsDelete, &format!("/secrets/{name}"))?;
            let delay = ctx.deletion_delay_ms();
            let deleted = ctx
                .state
                .with_vault(&ctx.vault, |v| {
                    let deleted = soft_delete_secret(v, name)?;
                    v.start_deletion(name, delay);
                    Ok(deleted)
                })
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

/// `POST /secrets/restore` `{"value": blob}`: the secret of a backup blob, with all its versions,
/// under its own name. A blob this vault did not make is Key Vault's 400 (azure-sdk-for-js
/// `recording_can_restore_a_secret_malformed_backup_bytes.json`); a name in use is Key Vault's
/// 409 ([`restore_conflict`]).
fn restore_secret(ctx: &Ctx<'_>, body: &Bytes) -> Result<Response, Response> {
    ctx.require(Permission::SecretsRestore, "")?;
    let secret = secret_from_backup(&restore_blob(body)?).ok_or_else(malformed_backup)?;
    let id = secret.versions.last().map_or_else(String::new, |v| {
        format!("{}/secrets/{}/{}", ctx.base, secret.name, v.version)
    });
    let restored = ctx
        .state
        .with_vault(&ctx.vault, |v| restore_secret_in(v, secret))
        .map_err(|e| match e {
            AdminError::Conflict { what: "secret", .. } => restore_conflict("secret", &id),
            other => admin_to_response(other),
        })?;
    let Some(current) = restored.versions.last() else {
        return Err(secret_not_found(&restored.name, None));
    };
    Ok(ok_json(
        StatusCode::OK,
        secret_bundle(ctx, &restored.name, current, false),
    ))
}

fn get_secret(ctx: &Ctx<'_>, name: &str, version: Option<&str>) -> Result<Response, Response> {
    check_name("Secret", name)?;
    ctx.require(Permission::SecretsGet, &format!("/secrets/{name}"))?;
    let found = ctx.read_vault(|vault| {
        // Not there until its recovery completes.
        let s = vault
            .secrets
            .get(&name.to_ascii_lowercase())
            .filter(|_| !vault.is_being_recovered(name))?;
        let v = &s.versions[version_index(&s.versions, version, |v| &v.version)?];
        // The name and this one version only: a GET costs the same whatever the secret's
        // number of versions.
        Some((s.name.clone(), v.clone()))
    });
    let Some((secret_name, v)) = found else {
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
        secret_bundle(ctx, &secret_name, &v, true),
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
    let attributes = input.attributes.unwrap_or_default();
    let update = SecretUpdate {
        content_type: input.content_type,
        enabled: attributes.enabled,
        nbf: attributes.nbf,
        exp: attributes.exp,
        tags: input.tags,
    };
    let updated =
        ctx.change_vault(|vault| Ok(update_secret_version(vault, name, version, update)))?;
    let Some((secret, v)) = updated else {
        return Err(secret_not_found(name, version));
    };
    Ok(ok_json(
        StatusCode::OK,
        secret_bundle(ctx, &secret.name, &v, false),
    ))
}

fn deleted_bundle(ctx: &Ctx<'_>, d: &DeletedSecret) -> Value {
    let body = match d.secret.versions.last() {
        Some(v) => secret_bundle(ctx, &d.secret.name, v, false),
        None => json!({}),
    };
    with_deletion(
        ctx,
        body,
        "deletedsecrets",
        &d.secret.name,
        d.deleted_date,
        d.scheduled_purge_date,
    )
}

pub fn deleted(ctx: &Ctx<'_>, method: &Method, rest: &[&str]) -> Result<Response, Response> {
    let deleted = DeletedObjects {
        ctx,
        kind: "Secret",
        collection: "deletedsecrets",
    };
    match (rest, method) {
        ([] | [""], &Method::GET) => {
            ctx.list(Permission::SecretsList, "/deletedsecrets", |vault, page| {
                let listed = vault.deleted_secrets.values();
                for d in listed.filter(|d| !vault.is_being_deleted(&d.secret.name)) {
                    page.offer(|| {
                        let mut item = deleted_bundle(ctx, d);
                        item["id"] = json!(format!("{}/secrets/{}", ctx.base, d.secret.name));
                        if let Some(fields) = item.as_object_mut() {
                            fields.remove("kid");
                        }
                        item
                    });
                }
            })
        }
        ([name], &Method::GET) => deleted.get(
            Permission::SecretsList,
            name,
            |vault, key| vault.deleted_secrets.get(key).cloned(),
            |d| Some(deleted_bundle(ctx, d)),
        ),
        ([name], &Method::DELETE) => {
            deleted.purge(Permission::SecretsPurge, name, purge_deleted_secret)
        }
        ([name, "recover"], &Method::POST) => {
            let recovered =
                deleted.recover(Permission::SecretsRecover, name, recover_deleted_secret)?;
            let Some(secret) = recovered else {
                return Err(secret_not_found(name, None));
            };
            let Some(v) = secret.versions.last() else {
                return Err(deleted.not_found(name));
            };
            Ok(ok_json(
                StatusCode::OK,
                secret_bundle(ctx, &secret.name, v, false),
            ))
        }
        _ => Err(deleted.unsupported(rest)),
    }
}
