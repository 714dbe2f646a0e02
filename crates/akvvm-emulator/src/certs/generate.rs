//! Self-signed certificates made from a normalized Key Vault policy (see [`super::policy`]):
//! RSA 2048/3072/4096 or EC P-256/P-384/P-521, subject, SANs, key usages, EKUs and validity; and
//! a new certificate on an existing key (a rotation with `reuse_key`).

use akvvm_cert::certificate::San;
use serde_json::Value;

use super::policy::DEFAULT_VALIDITY_MONTHS;
use crate::error::{AdminError, invalid};

fn months_to_seconds(months: i64) -> i64 {
    months * 365 * 86_400 / 12
}

/// Makes a SAN of one kind (`x509_props.sans.dns_names`, `.emails`) from its string.
type SanOf = fn(rcgen::string::Ia5String) -> rcgen::SanType;

/// The strings of a JSON array (none when `value` is not an array).
fn strings(value: &Value) -> impl Iterator<Item = &str> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
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
    let san_kinds: [(&str, SanOf); 2] = [
        ("dns_names", rcgen::SanType::DnsName),
        ("emails", rcgen::SanType::Rfc822Name),
    ];
    for (field, san) in san_kinds {
        for value in strings(&x509["sans"][field]) {
            let name = value
                .to_owned()
                .try_into()
                .map_err(|e| invalid(format!("x509_props.sans.{field} {value:?}: {e}")))?;
            params.subject_alt_names.push(san(name));
        }
    }
    for usage in strings(&x509["key_usage"]) {
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
    for eku in strings(&x509["ekus"]) {
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

/// A new self-signed certificate for `policy` on an existing PKCS#8 key: (certificate DER, key).
pub fn self_signed_with_key(
    policy: &Value,
    key_pkcs8: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), AdminError> {
    // rcgen signs with an existing key; build the same parameters as `self_signed`.
    let key = rcgen::KeyPair::try_from(key_pkcs8)
        .map_err(|e| invalid(format!("the certificate's key does not load: {e}")))?;
    let (fresh_cer, _) = self_signed(policy)?;
    let fresh = akvvm_cert::certificate::Certificate::from_der(&fresh_cer)
        .map_err(|e| invalid(e.to_string()))?;
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

/// A PKCS#10 request (DER) for `key_pkcs8` with the policy's subject, as the certificate
/// operation of a new certificate carries it.
pub fn csr(policy: &Value, key_pkcs8: &[u8]) -> Result<Vec<u8>, AdminError> {
    let key = rcgen::KeyPair::try_from(key_pkcs8)
        .map_err(|e| invalid(format!("the certificate's key does not load: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = parse_subject(
        policy["x509_props"]["subject"]
            .as_str()
            .unwrap_or("CN=DefaultPolicy"),
    )?;
    let request = params
        .serialize_request(&key)
        .map_err(|e| invalid(format!("failed to make the CSR: {e}")))?;
    Ok(request.der().to_vec())
}

#[cfg(test)]
mod tests {
    use akvvm_cert::certificate::{CertificateBundle, EcCurve, KeyType};
    use serde_json::json;

    use super::*;
    use crate::certs::normalize_policy;

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
