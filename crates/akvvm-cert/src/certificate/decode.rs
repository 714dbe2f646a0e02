//! Decoding into a [`CertificateBundle`]: a Key Vault secret value by its content type, a PFX
//! (DER, with its password) and a PEM bundle (PKCS#8, PKCS#1 or SEC1 keys, certificates in any
//! order).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use der::Decode;
use pkcs8::EncodePrivateKey;
use zeroize::Zeroizing;

use super::pem::{PemBlock, pem_blocks};
use super::{
    CONTENT_TYPE_PEM, CONTENT_TYPE_PKCS12, CertificateBundle, SECP256R1, SECP384R1, SECP521R1,
};
use crate::error::CertError;
use crate::pkcs12;

/// Decodes a Key Vault secret value by its content type: `application/x-pkcs12` is a base64 PFX
/// with an empty password, `application/x-pem-file` is PEM text. Without a content type (or with
/// an unknown one) the value is recognised by its form.
pub fn decode_secret(
    content_type: Option<&str>,
    value: &str,
) -> Result<CertificateBundle, CertError> {
    let declared = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or(ct)
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|ct| !ct.is_empty());
    // A value saved by a Windows tool may start with a byte order mark.
    let value = value.strip_prefix('\u{feff}').unwrap_or(value);
    let looks_pem = value.trim_start().starts_with("-----BEGIN");
    match declared.as_deref() {
        Some(CONTENT_TYPE_PEM) => decode_pem(value),
        Some(CONTENT_TYPE_PKCS12) if !looks_pem => decode_secret_pfx(&pfx_base64(value)?),
        _ if looks_pem => decode_pem(value),
        declared => {
            let der = pfx_base64(value).map_err(|_| CertError::NotACertificate {
                reason: match declared {
                    Some(ct) => format!(
                        "content type \"{ct}\", and the value is neither PEM nor a base64 PFX"
                    ),
                    None => "the value is neither PEM nor a base64 PFX".into(),
                },
            })?;
            decode_secret_pfx(&der)
        }
    }
}

/// A PFX from a secret value: Key Vault's own have no password, so one that needs a password was
/// put into the secret by hand, and the way out is to import it as a certificate instead.
fn decode_secret_pfx(der: &[u8]) -> Result<CertificateBundle, CertError> {
    decode_pfx(der, "").map_err(|err| match err {
        CertError::PfxBadPassword { .. } => CertError::PfxBadPassword {
            detail: " (Key Vault's own PFX secrets have an empty password, which does not open \
                     this one): the secret holds a password-protected PFX set by hand; import it \
                     as a certificate instead (az keyvault certificate import --file FILE \
                     --password ...), which Key Vault stores without a password"
                .into(),
        },
        other => other,
    })
}

/// The DER of a base64 PFX secret value (whitespace allowed), wiped from memory when dropped
/// (as is the copy of the value without whitespace).
pub fn pfx_base64(value: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, CertError> {
    let compact: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(value.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    if compact.is_empty() {
        return Err(CertError::NotACertificate {
            reason: "the value is empty".into(),
        });
    }
    let der = zeroize::Zeroizing::new(BASE64.decode(compact.as_bytes()).map_err(|e| {
        CertError::NotACertificate {
            reason: format!("the value is not base64 ({e})"),
        }
    })?);
    if der.first() != Some(&0x30) {
        return Err(CertError::NotACertificate {
            reason: "the base64 value does not decode to a PFX (ASN.1 SEQUENCE)".into(),
        });
    }
    Ok(der)
}

/// Opens a PFX (DER) and builds the bundle.
pub fn decode_pfx(der: &[u8], password: &str) -> Result<CertificateBundle, CertError> {
    let contents = pkcs12::decode(der, password)?;
    let key = match contents.keys.as_slice() {
        [key] => key,
        [] => {
            return Err(CertError::PfxNoKey {
                certificates: contents.certs.len(),
            });
        }
        keys => return Err(CertError::MultipleKeys { count: keys.len() }),
    };
    CertificateBundle::from_parts(key, &contents.certs)
}

/// Decodes a PEM bundle: one private key (`PRIVATE KEY`, or the traditional `RSA PRIVATE KEY`
/// and `EC PRIVATE KEY`) and certificates, in any order.
pub fn decode_pem(text: &str) -> Result<CertificateBundle, CertError> {
    let mut keys: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut certs = Vec::new();
    let blocks = pem_blocks(text)?;
    for (index, PemBlock { label, der }) in blocks.iter().enumerate() {
        let invalid = |reason: String| CertError::PemInvalid {
            index,
            label: label.clone(),
            reason,
        };
        match label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" => certs.push(der.to_vec()),
            "PRIVATE KEY" => keys.push(der.clone()),
            "RSA PRIVATE KEY" => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                let key =
                    rsa::RsaPrivateKey::from_pkcs1_der(der).map_err(|e| invalid(e.to_string()))?;
                let pkcs8 = key.to_pkcs8_der().map_err(|e| invalid(e.to_string()))?;
                keys.push(Zeroizing::new(pkcs8.as_bytes().to_vec()));
            }
            "EC PRIVATE KEY" => keys.push(Zeroizing::new(sec1_to_pkcs8(der).map_err(invalid)?)),
            "ENCRYPTED PRIVATE KEY" => {
                return Err(CertError::unsupported(
                    "an ENCRYPTED PRIVATE KEY in a PEM secret (Key Vault PEM secrets hold the key \
                     unencrypted)",
                ));
            }
            other => tracing::debug!(label = other, "skipping a PEM block"),
        }
    }
    if blocks.is_empty() {
        return Err(CertError::NotACertificate {
            reason: "the text holds no PEM block".into(),
        });
    }
    match keys.as_slice() {
        [key] => CertificateBundle::from_parts(key, &certs),
        [] => Err(CertError::PemNoKey {
            certificates: certs.len(),
        }),
        keys => Err(CertError::MultipleKeys { count: keys.len() }),
    }
}

/// Converts a SEC1 `EC PRIVATE KEY` to PKCS#8 (the curve comes from its parameters).
fn sec1_to_pkcs8(der: &[u8]) -> Result<Vec<u8>, String> {
    let key = sec1::EcPrivateKey::from_der(der).map_err(|e| e.to_string())?;
    let curve = key
        .parameters
        .and_then(|p| p.named_curve())
        .ok_or("an EC PRIVATE KEY without a named curve")?;
    macro_rules! convert {
        ($crate_:ident) => {{
            let secret = $crate_::SecretKey::from_sec1_der(der).map_err(|e| e.to_string())?;
            secret
                .to_pkcs8_der()
                .map(|doc| doc.as_bytes().to_vec())
                .map_err(|e| e.to_string())
        }};
    }
    if curve == SECP256R1 {
        convert!(p256)
    } else if curve == SECP384R1 {
        convert!(p384)
    } else if curve == SECP521R1 {
        convert!(p521)
    } else {
        Err(format!("EC curve {curve} is not supported"))
    }
}
