//! Between a certificate and the forms Key Vault keeps it in: an import ([`CertificateImport`]:
//! a base64 PFX, with or without password, or a PEM bundle) decoded into a
//! [`CertificateBundle`], and the value of a certificate's managed secret (the PFX encoded as
//! Key Vault encodes it, or the PEM bundle), with the PFX-to-PEM conversion of `outContentType`.

use std::collections::BTreeMap;

use akvvm_cert::certificate::{CONTENT_TYPE_PEM, CONTENT_TYPE_PKCS12, CertificateBundle};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::error::{AdminError, invalid};
use crate::redact::Redacted;

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
        let redacted = |v: &Option<String>| v.as_ref().map(|v| Redacted(v.len()));
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

/// A managed PFX secret's value as a PEM bundle (the `outContentType` conversion).
pub fn pkcs12_value_to_pem(value: &str) -> Result<String, AdminError> {
    let bundle = akvvm_cert::certificate::decode_secret(Some(CONTENT_TYPE_PKCS12), value)
        .map_err(|e| invalid(format!("the stored PFX does not load: {e}")))?;
    secret_value(CONTENT_TYPE_PEM, &bundle)
}

/// The managed secret's value for a version.
pub fn secret_value(content_type: &str, bundle: &CertificateBundle) -> Result<String, AdminError> {
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
