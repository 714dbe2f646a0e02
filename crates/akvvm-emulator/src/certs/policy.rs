//! Key Vault certificate policies: the defaults Key Vault fills in and echoes
//! ([`normalize_policy`]), the policy it reports for an imported certificate
//! ([`policy_from_bundle`]), and a ready-made self-signed policy ([`self_signed_policy`]).

use akvvm_cert::certificate::{
    CONTENT_TYPE_PEM, CONTENT_TYPE_PKCS12, CertificateBundle, EcCurve, KeyType, San,
};
use der::Decode;
use der::oid::AssociatedOid;
use serde_json::{Value, json};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};

use crate::error::{AdminError, invalid};

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

/// Key usages by Key Vault's names (the REST spec's `KeyUsageType`).
const KEY_USAGES: [(KeyUsages, &str); 9] = [
    (KeyUsages::DigitalSignature, "digitalSignature"),
    (KeyUsages::NonRepudiation, "nonRepudiation"),
    (KeyUsages::KeyEncipherment, "keyEncipherment"),
    (KeyUsages::DataEncipherment, "dataEncipherment"),
    (KeyUsages::KeyAgreement, "keyAgreement"),
    (KeyUsages::KeyCertSign, "keyCertSign"),
    (KeyUsages::CRLSign, "cRLSign"),
    (KeyUsages::EncipherOnly, "encipherOnly"),
    (KeyUsages::DecipherOnly, "decipherOnly"),
];

/// The extended key usages (OIDs) and key usages (Key Vault's names) of the certificate `der`,
/// empty when it has none: an imported certificate's policy reports both, `[]` included
/// (azure-sdk-for-python
/// `test_certificates_client.pyTestCertificateClienttest_import_certificate_not_password_encoded_no_policy[7.3].json`).
fn usages(der: &[u8]) -> (Vec<String>, Vec<&'static str>) {
    let mut ekus = Vec::new();
    let mut key_usage = Vec::new();
    let Ok(cert) = x509_cert::Certificate::from_der(der) else {
        return (ekus, key_usage);
    };
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        if ext.extn_id == ExtendedKeyUsage::OID {
            if let Ok(found) = ExtendedKeyUsage::from_der(value) {
                ekus = found.0.iter().map(ToString::to_string).collect();
            }
        } else if ext.extn_id == KeyUsage::OID
            && let Ok(found) = KeyUsage::from_der(value)
        {
            key_usage = KEY_USAGES
                .iter()
                .filter(|(flag, _)| found.0.contains(*flag))
                .map(|(_, name)| *name)
                .collect();
        }
    }
    (ekus, key_usage)
}

/// The policy Key Vault reports for an imported certificate.
pub fn policy_from_bundle(bundle: &CertificateBundle, content_type: &str, given: &Value) -> Value {
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
    let (ekus, key_usage) = usages(leaf.der());
    let mut x509 = json!({"subject": leaf.subject, "ekus": ekus, "key_usage": key_usage, "validity_months": months, "basic_constraints": {"ca": leaf.is_ca}});
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
    fn an_imported_certificates_usages_are_read_from_it() {
        let policy = normalize_policy(
            &json!({"x509_props": {"subject": "CN=usages", "ekus": ["1.3.6.1.5.5.7.3.2"], "key_usage": ["digitalSignature", "keyAgreement"]}}),
            "Self",
        )
        .unwrap();
        let (der, _) = crate::certs::generate::self_signed(&policy).unwrap();
        assert_eq!(
            usages(&der),
            (
                vec!["1.3.6.1.5.5.7.3.2".to_owned()],
                vec!["digitalSignature", "keyAgreement"]
            )
        );
        assert_eq!(usages(b"not a certificate"), (Vec::new(), Vec::new()));
    }
}
