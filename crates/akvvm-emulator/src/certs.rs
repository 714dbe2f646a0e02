//! Key Vault certificates: import (PFX with or without password, PEM), create self-signed from a
//! policy (RSA 2048/3072/4096, EC P-256/P-384/P-521), get (with `x5t`, `cer`, `sid`, `kid`,
//! `policy`), list, versions, the pending operation, policy, update and delete.
//!
//! Every version also becomes a managed secret version with the same version id: its value is
//! the PFX encoded the way Key Vault encodes it ([`akvvm_cert::pkcs12::encode_keyvault`]) or the
//! PEM bundle, as the policy's `secret_props.contentType` says.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha1::Digest;

use akvvm_cert::certificate::{
    CONTENT_TYPE_PEM, CONTENT_TYPE_PKCS12, CertificateBundle, EcCurve, KeyType, San,
};

use crate::keyvault::{
    Ctx, admin_to_response, bad_parameter, check_name, kv_error, list_page, method_not_allowed,
    no_content, not_found_path, ok_json, parse_body,
};
use crate::state::{
    AdminError, Certificate, CertificateVersion, DeletedCertificate, Permission, RECOVERABLE_DAYS,
    RECOVERY_LEVEL, SecretSpec, Vault, insert_secret_version, new_version,
};
use crate::token::now_unix;

/// Default validity of a self-signed certificate, in months (Key Vault's default).
pub const DEFAULT_VALIDITY_MONTHS: i64 = 12;

/// A Key Vault certificate policy for a self-signed certificate valid 12 months: `kty` "EC"
/// (P-256) or "RSA" (2048), its secret stored as `content_type` (`application/x-pkcs12` or
/// `application/x-pem-file`), with `subject` (`CN=...`).
pub fn self_signed_policy(kty: &str, content_type: &str, subject: &str) -> Value {
    let key = if kty == "EC" {
        json!({"kty": "EC", "crv": "P-256"})
    } else {
        json!({"kty": "RSA", "key_size": 2048})
    };
    json!({
        "key_props": key,
        "secret_props": {"contentType": content_type},
        "x509_props": {"subject": subject, "validity_months": 12}
    })
}

/// How a certificate is imported (admin API and seed file). `Debug` shows no PFX, password or PEM.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateImport {
    /// A base64 PFX.
    #[serde(default)]
    pub pfx: Option<String>,
    /// The PFX password (none or empty for no password).
    #[serde(default)]
    pub password: Option<String>,
    /// A PEM bundle: PKCS#8 `PRIVATE KEY` and certificates.
    #[serde(default)]
    pub pem: Option<String>,
    /// The secret's content type: `application/x-pkcs12` (default) or `application/x-pem-file`.
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl std::fmt::Debug for CertificateImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|v| crate::state::Redacted(v.len()));
        f.debug_struct("CertificateImport")
            .field("pfx", &redacted(&self.pfx))
            .field("password", &redacted(&self.password))
            .field("pem", &redacted(&self.pem))
            .field("content_type", &self.content_type)
            .field("tags", &self.tags)
            .finish()
    }
}

/// A summary of a new certificate version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateCreated {
    pub name: String,
    pub version: String,
    /// Upper-case hex SHA-1 thumbprint.
    pub thumbprint: String,
    pub not_after: i64,
}

fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::Invalid(message.into())
}

fn months_to_seconds(months: i64) -> i64 {
    months * 365 * 86_400 / 12
}

/// Fills a policy's defaults the way Key Vault echoes them.
pub fn normalize_policy(policy: &Value, issuer: &str) -> Result<Value, AdminError> {
    let empty = json!({});
    let policy = if policy.is_null() { &empty } else { policy };
    if !policy.is_object() {
        return Err(invalid("the certificate policy must be a JSON object"));
    }
    let key = &policy["key_props"];
    let kty = key["kty"].as_str().unwrap_or("RSA").to_owned();
    let mut key_props = json!({
        "exportable": key["exportable"].as_bool().unwrap_or(true),
        "kty": kty,
        "reuse_key": key["reuse_key"].as_bool().unwrap_or(false),
    });
    match kty.as_str() {
        "RSA" | "RSA-HSM" => {
            let size = key["key_size"].as_u64().unwrap_or(2048);
            if ![2048, 3072, 4096].contains(&size) {
                return Err(invalid(format!(
                    "key_props.key_size {size} is not supported: use 2048, 3072 or 4096"
                )));
            }
            key_props["key_size"] = json!(size);
        }
        "EC" | "EC-HSM" => {
            let crv = key["crv"].as_str().unwrap_or("P-256");
            if !["P-256", "P-384", "P-521"].contains(&crv) {
                return Err(invalid(format!(
                    "key_props.crv {crv:?} is not supported: use P-256, P-384 or P-521"
                )));
            }
            key_props["crv"] = json!(crv);
            key_props["key_size"] = json!(match crv {
                "P-256" => 256,
                "P-384" => 384,
                _ => 521,
            });
        }
        other => {
            return Err(invalid(format!(
                "key_props.kty {other:?} is not supported: use RSA or EC"
            )));
        }
    }
    let content_type = policy["secret_props"]["contentType"]
        .as_str()
        .unwrap_or(CONTENT_TYPE_PKCS12);
    if content_type != CONTENT_TYPE_PKCS12 && content_type != CONTENT_TYPE_PEM {
        return Err(invalid(format!(
            "secret_props.contentType {content_type:?} is not supported: use {CONTENT_TYPE_PKCS12} or {CONTENT_TYPE_PEM}"
        )));
    }
    let x509 = &policy["x509_props"];
    let mut x509_props = json!({
        "subject": x509["subject"].as_str().unwrap_or("CN=DefaultPolicy"),
        "validity_months": x509["validity_months"].as_i64().unwrap_or(DEFAULT_VALIDITY_MONTHS),
        "basic_constraints": {"ca": false},
    });
    if x509["sans"].is_object() {
        x509_props["sans"] = x509["sans"].clone();
    }
    x509_props["ekus"] = x509["ekus"].as_array().map_or_else(
        || json!(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]),
        |e| json!(e),
    );
    x509_props["key_usage"] = x509["key_usage"].as_array().map_or_else(
        || json!(["digitalSignature", "keyEncipherment"]),
        |k| json!(k),
    );
    let lifetime_actions = policy["lifetime_actions"].as_array().map_or_else(
        || json!([{"trigger": {"lifetime_percentage": 80}, "action": {"action_type": "AutoRenew"}}]),
        |a| json!(a),
    );
    let issuer_name = policy["issuer"]["name"].as_str().unwrap_or(issuer);
    let mut issuer_obj = json!({"name": issuer_name});
    if let Some(t) = policy["issuer"]["cty"].as_str() {
        issuer_obj["cty"] = json!(t);
    }
    Ok(json!({
        "key_props": key_props,
        "secret_props": {"contentType": content_type},
        "x509_props": x509_props,
        "lifetime_actions": lifetime_actions,
        "issuer": issuer_obj,
        "attributes": {"enabled": policy["attributes"]["enabled"].as_bool().unwrap_or(true)},
    }))
}

fn parse_subject(subject: &str) -> Result<rcgen::DistinguishedName, AdminError> {
    // The string names the most specific attribute first (as Key Vault and RFC 4514 print it);
    // the DER holds them in the opposite order.
    let mut dn = rcgen::DistinguishedName::new();
    for part in subject
        .split([',', ';'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .rev()
    {
        let Some((k, v)) = part.split_once('=') else {
            return Err(invalid(format!(
                "x509_props.subject part {part:?} is not KEY=value"
            )));
        };
        let ty = match k.trim().to_ascii_uppercase().as_str() {
            "CN" => rcgen::DnType::CommonName,
            "O" => rcgen::DnType::OrganizationName,
            "OU" => rcgen::DnType::OrganizationalUnitName,
            "L" => rcgen::DnType::LocalityName,
            "S" | "ST" => rcgen::DnType::StateOrProvinceName,
            "C" => rcgen::DnType::CountryName,
            other => {
                return Err(invalid(format!(
                    "x509_props.subject attribute {other:?} is not supported: use CN, O, OU, L, ST or C"
                )));
            }
        };
        dn.push(ty, v.trim());
    }
    if dn.iter().next().is_none() {
        return Err(invalid("x509_props.subject is empty: give at least CN=..."));
    }
    Ok(dn)
}

/// Generates a self-signed certificate for a normalized policy: (certificate DER, PKCS#8 key).
pub fn self_signed(policy: &Value) -> Result<(Vec<u8>, Vec<u8>), AdminError> {
    let key_props = &policy["key_props"];
    let gen_err = |e: rcgen::Error| invalid(format!("failed to generate the key: {e}"));
    let key = match key_props["kty"].as_str().unwrap_or("RSA") {
        "EC" | "EC-HSM" => match key_props["crv"].as_str().unwrap_or("P-256") {
            "P-384" => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            "P-521" => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512),
            _ => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        },
        _ => {
            let size = match key_props["key_size"].as_u64() {
                Some(3072) => rcgen::RsaKeySize::_3072,
                Some(4096) => rcgen::RsaKeySize::_4096,
                _ => rcgen::RsaKeySize::_2048,
            };
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
        }
    }
    .map_err(gen_err)?;
    let x509 = &policy["x509_props"];
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name =
        parse_subject(x509["subject"].as_str().unwrap_or("CN=DefaultPolicy"))?;
    let sans = &x509["sans"];
    for dns in sans["dns_names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let name = dns
            .to_owned()
            .try_into()
            .map_err(|e| invalid(format!("x509_props.sans.dns_names {dns:?}: {e}")))?;
        params.subject_alt_names.push(rcgen::SanType::DnsName(name));
    }
    for email in sans["emails"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let name = email
            .to_owned()
            .try_into()
            .map_err(|e| invalid(format!("x509_props.sans.emails {email:?}: {e}")))?;
        params
            .subject_alt_names
            .push(rcgen::SanType::Rfc822Name(name));
    }
    for usage in x509["key_usage"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        use rcgen::KeyUsagePurpose::*;
        params.key_usages.push(match usage {
            "digitalSignature" => DigitalSignature,
            "nonRepudiation" => ContentCommitment,
            "keyEncipherment" => KeyEncipherment,
            "dataEncipherment" => DataEncipherment,
            "keyAgreement" => KeyAgreement,
            "keyCertSign" => KeyCertSign,
            "cRLSign" => CrlSign,
            "encipherOnly" => EncipherOnly,
            "decipherOnly" => DecipherOnly,
            other => {
                return Err(invalid(format!(
                    "x509_props.key_usage {other:?} is not a key usage"
                )));
            }
        });
    }
    for eku in x509["ekus"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        use rcgen::ExtendedKeyUsagePurpose::*;
        params.extended_key_usages.push(match eku {
            "1.3.6.1.5.5.7.3.1" => ServerAuth,
            "1.3.6.1.5.5.7.3.2" => ClientAuth,
            "1.3.6.1.5.5.7.3.3" => CodeSigning,
            "1.3.6.1.5.5.7.3.4" => EmailProtection,
            other => {
                let arcs = other
                    .split('.')
                    .map(str::parse::<u64>)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| invalid(format!("x509_props.ekus {other:?} is not an OID")))?;
                Other(arcs)
            }
        });
    }
    let months = x509["validity_months"]
        .as_i64()
        .unwrap_or(DEFAULT_VALIDITY_MONTHS);
    if !(1..=1200).contains(&months) {
        return Err(invalid(format!(
            "x509_props.validity_months {months} is out of range (1 to 1200)"
        )));
    }
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::seconds(months_to_seconds(months));
    let mut serial = [0u8; 16];
    serial.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..]);
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params
        .self_signed(&key)
        .map_err(|e| invalid(format!("failed to create the certificate: {e}")))?;
    Ok((cert.der().to_vec(), key.serialize_der()))
}

/// The policy Key Vault reports for an imported certificate.
fn policy_from_bundle(bundle: &CertificateBundle, content_type: &str, given: &Value) -> Value {
    let (kty, size, crv) = match &bundle.key.key_type() {
        KeyType::Ec { curve } => (
            "EC",
            match curve {
                EcCurve::P256 => 256,
                EcCurve::P384 => 384,
                EcCurve::P521 => 521,
            },
            Some(curve.to_string()),
        ),
        KeyType::Rsa { bits } => ("RSA", *bits, None),
        KeyType::Other { .. } => ("RSA", 0, None),
    };
    let leaf = &bundle.leaf;
    let dns: Vec<&str> = leaf
        .sans
        .iter()
        .filter_map(|s| {
            if let San::Dns(d) = s {
                Some(d.as_str())
            } else {
                None
            }
        })
        .collect();
    let months = ((leaf.not_after - leaf.not_before).whole_seconds() * 12 / (365 * 86_400)).max(1);
    let mut key_props = json!({"exportable": given["key_props"]["exportable"].as_bool().unwrap_or(true), "kty": kty, "key_size": size, "reuse_key": given["key_props"]["reuse_key"].as_bool().unwrap_or(false)});
    if let Some(crv) = crv {
        key_props["crv"] = json!(crv);
    }
    let mut x509 = json!({"subject": leaf.subject, "validity_months": months, "basic_constraints": {"ca": leaf.is_ca}});
    if !dns.is_empty() {
        x509["sans"] = json!({"dns_names": dns});
    }
    json!({
        "key_props": key_props,
        "secret_props": {"contentType": content_type},
        "x509_props": x509,
        "lifetime_actions": [{"trigger": {"lifetime_percentage": 80}, "action": {"action_type": "EmailContacts"}}],
        "issuer": {"name": "Unknown"},
        "attributes": {"enabled": true},
    })
}

/// A managed PFX secret's value as a PEM bundle (the `outContentType` conversion).
pub fn pkcs12_value_to_pem(value: &str) -> Result<String, AdminError> {
    let bundle = akvvm_cert::certificate::decode_secret(Some(CONTENT_TYPE_PKCS12), value)
        .map_err(|e| invalid(format!("the stored PFX does not load: {e}")))?;
    secret_value(CONTENT_TYPE_PEM, &bundle)
}

/// The managed secret's value for a version.
fn secret_value(content_type: &str, bundle: &CertificateBundle) -> Result<String, AdminError> {
    let mut certs = vec![bundle.leaf.der().to_vec()];
    certs.extend(bundle.chain.iter().map(|c| c.der().to_vec()));
    if content_type == CONTENT_TYPE_PEM {
        let mut pem = bundle.key.to_pem().to_string();
        pem.push_str(&bundle.fullchain_pem());
        Ok(pem)
    } else {
        let pfx = akvvm_cert::pkcs12::encode_keyvault(bundle.key.pkcs8_der(), &certs)
            .map_err(|e| invalid(format!("failed to encode the PFX: {e}")))?;
        Ok(STANDARD.encode(pfx))
    }
}

/// Adds a version (and its managed secret) to a certificate in `vault`.
pub fn add_version(
    vault: &mut Vault,
    name: &str,
    policy: Value,
    bundle: &CertificateBundle,
    enabled: bool,
    tags: BTreeMap<String, String>,
) -> Result<CertificateCreated, AdminError> {
    let content_type = policy["secret_props"]["contentType"]
        .as_str()
        .unwrap_or(CONTENT_TYPE_PKCS12)
        .to_owned();
    let value = secret_value(&content_type, bundle)?;
    let key = name.to_ascii_lowercase();
    if vault.deleted_certificates.contains_key(&key) {
        return Err(AdminError::Conflict {
            what: "certificate (deleted but recoverable)",
            name: name.to_owned(),
        });
    }
    if vault
        .secrets
        .get(&key)
        .is_some_and(|s| s.versions.last().is_some_and(|v| !v.managed))
    {
        return Err(AdminError::Conflict {
            what: "secret (not a certificate's)",
            name: name.to_owned(),
        });
    }
    let now = now_unix();
    let (nbf, exp) = (
        bundle.leaf.not_before.unix_timestamp(),
        bundle.leaf.not_after.unix_timestamp(),
    );
    let secret = insert_secret_version(
        vault,
        name,
        SecretSpec {
            value,
            content_type: Some(content_type),
            enabled: Some(enabled),
            nbf: Some(nbf),
            exp: Some(exp),
            tags: tags.clone(),
        },
        true,
    )?;
    let version = CertificateVersion {
        version: secret.version.clone(),
        cer: bundle.leaf.der().to_vec(),
        chain: bundle.chain.iter().map(|c| c.der().to_vec()).collect(),
        key_pkcs8: bundle.key.pkcs8_der().to_vec(),
        enabled,
        nbf,
        exp,
        created: now,
        updated: now,
        tags,
    };
    let cert = vault
        .certificates
        .entry(key)
        .or_insert_with(|| Certificate {
            name: name.to_owned(),
            policy: policy.clone(),
            policy_created: now,
            versions: Vec::new(),
        });
    cert.policy = policy;
    cert.versions.push(version);
    Ok(CertificateCreated {
        name: cert.name.clone(),
        version: secret.version,
        thumbprint: bundle.leaf.thumbprint(),
        not_after: exp,
    })
}

/// Decodes an import: a PFX (base64) or a PEM bundle.
pub fn decode_import(value: &str, password: &str) -> Result<CertificateBundle, AdminError> {
    let trimmed = value.trim_start();
    if trimmed.starts_with("-----BEGIN") {
        return akvvm_cert::certificate::decode_pem(value)
            .map_err(|e| invalid(format!("the PEM does not load: {e}")));
    }
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(compact)
        .map_err(|e| invalid(format!("the value is neither PEM nor a base64 PFX: {e}")))?;
    if der.starts_with(b"-----BEGIN") {
        let text = String::from_utf8(der)
            .map_err(|_| invalid("the base64 value decodes to PEM that is not UTF-8"))?;
        return akvvm_cert::certificate::decode_pem(&text)
            .map_err(|e| invalid(format!("the PEM does not load: {e}")));
    }
    akvvm_cert::certificate::decode_pfx(&der, password)
        .map_err(|e| invalid(format!("the PFX does not load: {e}")))
}

/// Creates a self-signed certificate version from a policy.
pub fn create_in(
    vault: &mut Vault,
    name: &str,
    policy: &Value,
    enabled: bool,
    tags: BTreeMap<String, String>,
) -> Result<CertificateCreated, AdminError> {
    let policy = normalize_policy(policy, "Self")?;
    let (cer, key) = self_signed(&policy)?;
    let bundle = CertificateBundle::from_parts(&key, &[cer])
        .map_err(|e| invalid(format!("the new certificate does not load: {e}")))?;
    add_version(vault, name, policy, &bundle, enabled, tags)
}

/// Imports a certificate version.
pub fn import_in(
    vault: &mut Vault,
    name: &str,
    import: &CertificateImport,
    policy: &Value,
) -> Result<CertificateCreated, AdminError> {
    let value = match (&import.pfx, &import.pem) {
        (Some(pfx), None) => pfx,
        (None, Some(pem)) => pem,
        _ => return Err(invalid("give exactly one of pfx (base64) or pem")),
    };
    let bundle = decode_import(value, import.password.as_deref().unwrap_or(""))?;
    let content_type = import
        .content_type
        .as_deref()
        .or_else(|| policy["secret_props"]["contentType"].as_str())
        .unwrap_or(if import.pem.is_some() {
            CONTENT_TYPE_PEM
        } else {
            CONTENT_TYPE_PKCS12
        });
    if content_type != CONTENT_TYPE_PKCS12 && content_type != CONTENT_TYPE_PEM {
        return Err(invalid(format!(
            "content type {content_type:?} is not supported: use {CONTENT_TYPE_PKCS12} or {CONTENT_TYPE_PEM}"
        )));
    }
    let policy = policy_from_bundle(&bundle, content_type, policy);
    add_version(vault, name, policy, &bundle, true, import.tags.clone())
}

/// A new version of an existing certificate: a fresh self-signed one from its policy (the same
/// key when the policy says `reuse_key`).
pub fn rotate_in(vault: &mut Vault, name: &str) -> Result<CertificateCreated, AdminError> {
    let cert = vault
        .certificates
        .get(&name.to_ascii_lowercase())
        .ok_or_else(|| AdminError::NotFound {
            what: "certificate",
            name: name.to_owned(),
        })?;
    let policy = cert.policy.clone();
    let Some(current) = cert.versions.last().cloned() else {
        return Err(AdminError::NotFound {
            what: "certificate version",
            name: name.to_owned(),
        });
    };
    let issuer = policy["issuer"]["name"].as_str().unwrap_or("");
    let bundle = if issuer == "Self" {
        let (cer, key) = if policy["key_props"]["reuse_key"].as_bool() == Some(true) {
            self_signed_with_key(&policy, &current.key_pkcs8)?
        } else {
            self_signed(&policy)?
        };
        CertificateBundle::from_parts(&key, &[cer])
            .map_err(|e| invalid(format!("the new certificate does not load: {e}")))?
    } else {
        // Imported certificates: re-issue a self-signed certificate with the same subject, SANs and key type.
        let mut p = policy.clone();
        p["x509_props"]["basic_constraints"] = json!({"ca": false});
        let (cer, key) = self_signed(&normalize_policy(&p, "Self")?)?;
        CertificateBundle::from_parts(&key, &[cer])
            .map_err(|e| invalid(format!("the new certificate does not load: {e}")))?
    };
    add_version(vault, name, policy, &bundle, true, current.tags)
}

fn self_signed_with_key(
    policy: &Value,
    key_pkcs8: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), AdminError> {
    // rcgen signs with an existing key; build the same parameters as `self_signed`.
    let key = rcgen::KeyPair::try_from(key_pkcs8)
        .map_err(|e| invalid(format!("the certificate's key does not load: {e}")))?;
    let (fresh_cer, _) = self_signed(policy)?;
    let fresh = akvvm_cert::certificate::Certificate::from_der(&fresh_cer).map_err(invalid)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = parse_subject(&fresh.subject)?;
    params.not_before = fresh.not_before;
    params.not_after = fresh.not_after;
    for san in &fresh.sans {
        if let San::Dns(d) = san {
            params.subject_alt_names.push(rcgen::SanType::DnsName(
                d.clone().try_into().map_err(|e| invalid(format!("{e}")))?,
            ));
        }
    }
    let cert = params
        .self_signed(&key)
        .map_err(|e| invalid(format!("failed to create the certificate: {e}")))?;
    Ok((cert.der().to_vec(), key_pkcs8.to_vec()))
}

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
    p["attributes"]["updated"] = json!(cert.policy_created);
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
    let id = version.map_or_else(|| name.to_owned(), |v| format!("{name}/{v}"));
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
struct UpdateIn {
    attributes: Option<AttributesIn>,
    tags: Option<BTreeMap<String, String>>,
}

fn get_cert(ctx: &Ctx<'_>, name: &str) -> Option<Certificate> {
    ctx.state.read(|m| {
        m.vaults[&ctx.vault]
            .certificates
            .get(&name.to_ascii_lowercase())
            .cloned()
    })
}

/// The certificate operation. Creation is synchronous here, but the create answer says
/// `inProgress` as Key Vault's does (the SDKs' pollers only fetch the certificate after seeing the
/// pending operation complete); the pending operation then reads `completed`.
fn operation_body(ctx: &Ctx<'_>, cert: &Certificate, completed: bool) -> Value {
    let mut body = json!({
        "id": format!("{}/certificates/{}/pending", ctx.base, cert.name),
        "issuer": {"name": cert.policy["issuer"]["name"].as_str().unwrap_or("Self")},
        "csr": cert.versions.last().map(|v| STANDARD.encode(&v.cer)).unwrap_or_default(),
        "cancellation_requested": false,
        "request_id": new_version(),
    });
    if completed {
        body["status"] = json!("completed");
        body["target"] = json!(format!("{}/certificates/{}", ctx.base, cert.name));
    } else {
        body["status"] = json!("inProgress");
        body["status_details"] = json!(
            "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later."
        );
    }
    body
}

/// Handles `/certificates/...`.
pub fn handle(
    ctx: &Ctx<'_>,
    method: &Method,
    rest: &[&str],
    body: &Bytes,
) -> Result<Response, Response> {
    match (rest, method) {
        ([] | [""], &Method::GET) => {
            ctx.require(Permission::CertificatesList, "")?;
            let items = ctx.state.read(|m| {
                m.vaults[&ctx.vault]
                    .certificates
                    .values()
                    .filter_map(|c| {
                        c.versions
                            .last()
                            .map(|v| item_body(format!("{}/certificates/{}", ctx.base, c.name), v))
                    })
                    .collect::<Vec<_>>()
            });
            list_page(ctx, items, "/certificates")
        }
        ([name, "create"], &Method::POST) => {
            check_name("Certificate", name)?;
            ctx.require(
                Permission::CertificatesCreate,
                &format!("/certificates/{name}"),
            )?;
            let input: CreateIn = parse_body(body)?;
            let policy = input.policy.unwrap_or(Value::Null);
            let enabled = input.attributes.and_then(|a| a.enabled).unwrap_or(true);
            ctx.state
                .with_vault(&ctx.vault, |v| {
                    create_in(v, name, &policy, enabled, input.tags.unwrap_or_default())
                })
                .map_err(admin_to_response)?;
            let cert = get_cert(ctx, name).ok_or_else(|| cert_not_found(name, None))?;
            let mut response = ok_json(StatusCode::ACCEPTED, operation_body(ctx, &cert, false));
            let location = format!(
                "{}/certificates/{}/pending?api-version={}",
                ctx.base, cert.name, ctx.api_version
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            Ok(response)
        }
        ([name, "import"], &Method::POST) => {
            check_name("Certificate", name)?;
            ctx.require(
                Permission::CertificatesImport,
                &format!("/certificates/{name}"),
            )?;
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
            let created = ctx
                .state
                .with_vault(&ctx.vault, |v| {
                    let created = import_in(v, name, &import, &policy)?;
                    if let Some(false) = input.attributes.and_then(|a| a.enabled)
                        && let Some(c) = v.certificates.get_mut(&name.to_ascii_lowercase())
                        && let Some(last) = c.versions.last_mut()
                    {
                        last.enabled = false;
                    }
                    Ok(created)
                })
                .map_err(admin_to_response)?;
            let cert = get_cert(ctx, name).ok_or_else(|| cert_not_found(name, None))?;
            let v = cert
                .versions
                .iter()
                .find(|v| v.version == created.version)
                .ok_or_else(|| cert_not_found(name, None))?;
            Ok(ok_json(StatusCode::OK, bundle_body(ctx, &cert, v)))
        }
        ([name, "pending"], &Method::GET) => {
            ctx.require(
                Permission::CertificatesGet,
                &format!("/certificates/{name}"),
            )?;
            let cert = get_cert(ctx, name).ok_or_else(|| {
                kv_error(
                    StatusCode::NOT_FOUND,
                    "PendingCertificateNotFound",
                    &format!("Pending certificate not found: {name}"),
                    None,
                )
            })?;
            Ok(ok_json(StatusCode::OK, operation_body(ctx, &cert, true)))
        }
        ([name, "policy"], &Method::GET) => {
            ctx.require(
                Permission::CertificatesGet,
                &format!("/certificates/{name}"),
            )?;
            let cert = get_cert(ctx, name).ok_or_else(|| cert_not_found(name, None))?;
            Ok(ok_json(StatusCode::OK, policy_body(ctx, &cert)))
        }
        ([name, "versions"], &Method::GET) => {
            ctx.require(
                Permission::CertificatesList,
                &format!("/certificates/{name}"),
            )?;
            let cert = get_cert(ctx, name).ok_or_else(|| cert_not_found(name, None))?;
            let items = cert
                .versions
                .iter()
                .map(|v| {
                    item_body(
                        format!("{}/certificates/{}/{}", ctx.base, cert.name, v.version),
                        v,
                    )
                })
                .collect();
            list_page(ctx, items, &format!("/certificates/{name}/versions"))
        }
        ([name] | [name, ""], &Method::GET) => get_version(ctx, name, None),
        ([name, version], &Method::GET) => get_version(ctx, name, Some(version)),
        ([name] | [name, ""], &Method::PATCH) => update(ctx, name, None, body),
        ([name, version], &Method::PATCH) => update(ctx, name, Some(version), body),
        ([name], &Method::DELETE) => {
            ctx.require(
                Permission::CertificatesDelete,
                &format!("/certificates/{name}"),
            )?;
            let deleted = ctx
                .state
                .with_vault(&ctx.vault, |v| soft_delete_in(v, name))
                .map_err(|e| match e {
                    AdminError::NotFound { .. } => cert_not_found(name, None),
                    other => admin_to_response(other),
                })?;
            deleted_bundle(ctx, &deleted)
                .map(|body| ok_json(StatusCode::OK, body))
                .ok_or_else(|| cert_not_found(name, None))
        }
        ([_] | [_, _], _) => Err(method_not_allowed(method)),
        _ => Err(not_found_path(&format!("/certificates/{}", rest.join("/")))),
    }
}

fn get_version(ctx: &Ctx<'_>, name: &str, version: Option<&str>) -> Result<Response, Response> {
    check_name("Certificate", name)?;
    ctx.require(
        Permission::CertificatesGet,
        &format!("/certificates/{name}"),
    )?;
    let cert = get_cert(ctx, name).ok_or_else(|| cert_not_found(name, version))?;
    let v = match version {
        Some(ver) => cert
            .versions
            .iter()
            .find(|v| v.version.eq_ignore_ascii_case(ver)),
        None => cert.versions.last(),
    }
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
    ctx.require(
        Permission::CertificatesCreate,
        &format!("/certificates/{name}"),
    )?;
    let input: UpdateIn = parse_body(body)?;
    let enabled = input.attributes.and_then(|a| a.enabled);
    let tags = input.tags;
    let found = ctx
        .state
        .with_vault(&ctx.vault, |v| {
            Ok(set_version(v, name, version, enabled, tags))
        })
        .map_err(admin_to_response)?;
    let Some(ver) = found else {
        return Err(cert_not_found(name, version));
    };
    let cert = get_cert(ctx, name).ok_or_else(|| cert_not_found(name, version))?;
    let v = cert
        .versions
        .iter()
        .find(|v| v.version == ver)
        .ok_or_else(|| cert_not_found(name, version))?;
    Ok(ok_json(StatusCode::OK, bundle_body(ctx, &cert, v)))
}

/// A `DeletedCertificateBundle`: the latest version with where to recover it from.
fn deleted_bundle(ctx: &Ctx<'_>, d: &DeletedCertificate) -> Option<Value> {
    let cert = &d.certificate;
    let mut body = bundle_body(ctx, cert, cert.versions.last()?);
    body["recoveryId"] = json!(format!("{}/deletedcertificates/{}", ctx.base, cert.name));
    body["deletedDate"] = json!(d.deleted_date);
    body["scheduledPurgeDate"] = json!(d.scheduled_purge_date);
    Some(body)
}

/// Handles `/deletedcertificates/...`: get, list, purge and recover certificates that the
/// data plane deleted.
pub fn deleted(ctx: &Ctx<'_>, method: &Method, rest: &[&str]) -> Result<Response, Response> {
    let not_found = |name: &str| {
        kv_error(
            StatusCode::NOT_FOUND,
            "CertificateNotFound",
            &format!("Deleted Certificate not found: {name}"),
            None,
        )
    };
    let find = |name: &str| {
        ctx.state.read(|m| {
            m.vaults[&ctx.vault]
                .deleted_certificates
                .get(&name.to_ascii_lowercase())
                .cloned()
        })
    };
    match (rest, method) {
        ([] | [""], &Method::GET) => {
            ctx.require(Permission::CertificatesList, "")?;
            let items = ctx.state.read(|m| {
                m.vaults[&ctx.vault]
                    .deleted_certificates
                    .values()
                    .filter_map(|d| {
                        let cert = &d.certificate;
                        let mut item = item_body(
                            format!("{}/certificates/{}", ctx.base, cert.name),
                            cert.versions.last()?,
                        );
                        item["recoveryId"] =
                            json!(format!("{}/deletedcertificates/{}", ctx.base, cert.name));
                        item["deletedDate"] = json!(d.deleted_date);
                        item["scheduledPurgeDate"] = json!(d.scheduled_purge_date);
                        Some(item)
                    })
                    .collect::<Vec<_>>()
            });
            list_page(ctx, items, "/deletedcertificates")
        }
        ([name], &Method::GET) => {
            ctx.require(
                Permission::CertificatesList,
                &format!("/deletedcertificates/{name}"),
            )?;
            let d = find(name).ok_or_else(|| not_found(name))?;
            deleted_bundle(ctx, &d)
                .map(|body| ok_json(StatusCode::OK, body))
                .ok_or_else(|| not_found(name))
        }
        ([name], &Method::DELETE) => {
            ctx.require(
                Permission::CertificatesDelete,
                &format!("/deletedcertificates/{name}"),
            )?;
            let purged = ctx
                .state
                .with_vault(&ctx.vault, |v| {
                    Ok(v.deleted_certificates.remove(&name.to_ascii_lowercase()))
                })
                .map_err(admin_to_response)?;
            purged.map(|_| no_content()).ok_or_else(|| not_found(name))
        }
        ([name, "recover"], &Method::POST) => {
            ctx.require(
                Permission::CertificatesCreate,
                &format!("/deletedcertificates/{name}"),
            )?;
            let recovered = ctx
                .state
                .with_vault(&ctx.vault, |v| {
                    let key = name.to_ascii_lowercase();
                    Ok(v.deleted_certificates.remove(&key).map(|d| {
                        if let Some(secret) = d.secret {
                            v.secrets.insert(key.clone(), secret);
                        }
                        v.certificates.insert(key, d.certificate.clone());
                        d.certificate
                    }))
                })
                .map_err(admin_to_response)?;
            let cert = recovered.ok_or_else(|| not_found(name))?;
            let last = cert.versions.last().ok_or_else(|| not_found(name))?;
            Ok(ok_json(StatusCode::OK, bundle_body(ctx, &cert, last)))
        }
        _ => Err(not_found_path(&format!(
            "/deletedcertificates/{}",
            rest.join("/")
        ))),
    }
}

/// Deletes a certificate as Key Vault's API does with soft delete on: it and its managed secret
/// are kept under `/deletedcertificates` until purged or recovered.
pub fn soft_delete_in(v: &mut Vault, name: &str) -> Result<DeletedCertificate, AdminError> {
    let key = name.to_ascii_lowercase();
    let certificate = v
        .certificates
        .remove(&key)
        .ok_or_else(|| AdminError::NotFound {
            what: "certificate",
            name: name.to_owned(),
        })?;
    let now = now_unix();
    let deleted = DeletedCertificate {
        certificate,
        secret: v.secrets.remove(&key),
        deleted_date: now,
        scheduled_purge_date: now + RECOVERABLE_DAYS * 86_400,
    };
    v.deleted_certificates.insert(key, deleted.clone());
    Ok(deleted)
}

/// Deletes a certificate with its managed secret, for good (the admin API).
pub fn delete_in(v: &mut Vault, name: &str) -> Result<Certificate, AdminError> {
    let key = name.to_ascii_lowercase();
    let cert = v
        .certificates
        .remove(&key)
        .ok_or_else(|| AdminError::NotFound {
            what: "certificate",
            name: name.to_owned(),
        })?;
    v.secrets.remove(&key);
    Ok(cert)
}

/// Enables/disables (and retags) one version and its managed secret; returns the version id.
pub fn set_version(
    v: &mut Vault,
    name: &str,
    version: Option<&str>,
    enabled: Option<bool>,
    tags: Option<BTreeMap<String, String>>,
) -> Option<String> {
    let key = name.to_ascii_lowercase();
    let cert = v.certificates.get_mut(&key)?;
    let cv = match version {
        Some(ver) => cert
            .versions
            .iter_mut()
            .find(|c| c.version.eq_ignore_ascii_case(ver)),
        None => cert.versions.last_mut(),
    }?;
    let now = now_unix();
    if let Some(e) = enabled {
        cv.enabled = e;
    }
    if let Some(t) = &tags {
        cv.tags = t.clone();
    }
    cv.updated = now;
    let id = cv.version.clone();
    if let Some(sv) = v
        .secrets
        .get_mut(&key)
        .and_then(|s| s.versions.iter_mut().find(|s| s.version == id))
    {
        if let Some(e) = enabled {
            sv.enabled = e;
        }
        sv.updated = now;
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_get_key_vault_defaults_and_bad_ones_are_named() {
        let p = normalize_policy(&Value::Null, "Self").unwrap();
        assert_eq!(
            p["key_props"],
            json!({"exportable": true, "kty": "RSA", "reuse_key": false, "key_size": 2048})
        );
        assert_eq!(p["secret_props"]["contentType"], CONTENT_TYPE_PKCS12);
        assert_eq!(p["x509_props"]["subject"], "CN=DefaultPolicy");
        let err = normalize_policy(&json!({"key_props": {"kty": "EC", "crv": "P-192"}}), "Self")
            .unwrap_err();
        assert!(err.to_string().contains("key_props.crv \"P-192\""), "{err}");
    }

    #[test]
    fn self_signed_ec_certificates_follow_the_policy() {
        for (crv, curve) in [
            ("P-256", EcCurve::P256),
            ("P-384", EcCurve::P384),
            ("P-521", EcCurve::P521),
        ] {
            let policy = normalize_policy(
                &json!({"key_props": {"kty": "EC", "crv": crv}, "x509_props": {"subject": "CN=web, O=Contoso", "sans": {"dns_names": ["www.contoso.com"]}, "validity_months": 3}}),
                "Self",
            )
            .unwrap();
            let (cer, key) = self_signed(&policy).unwrap();
            let bundle = CertificateBundle::from_parts(&key, &[cer]).unwrap();
            assert_eq!(bundle.key.key_type(), &KeyType::Ec { curve });
            assert_eq!(bundle.leaf.subject, "CN=web,O=Contoso");
            assert_eq!(bundle.leaf.sans, vec![San::Dns("www.contoso.com".into())]);
            let days = (bundle.leaf.not_after - bundle.leaf.not_before).whole_days();
            assert!((90..=92).contains(&days), "{days}");
        }
    }
}
