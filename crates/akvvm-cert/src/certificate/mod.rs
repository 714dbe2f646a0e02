//! A decoded certificate bundle: the private key, the leaf it belongs to, and the chain ordered
//! leaf to root from the certificates' own names and key identifiers.
//!
//! [`decode_secret`] turns a Key Vault secret value into a [`CertificateBundle`];
//! [`decode_pfx`] and [`decode_pem`] do the same for a PFX or PEM text. Every decoder checks that
//! the key matches the leaf, orders the chain whatever order it came in, and records a warning
//! when the chain stops short of a self-signed root. [`CertificateBundle::to_pem`] is the store
//! file's content: leaf, intermediates, root, then the PKCS#8 `PRIVATE KEY`.
//!
//! This module holds the types (keys, [`Certificate`], [`CertificateBundle`]); `decode` reads
//! secret values, PFX and PEM into a bundle, `pem` splits and writes PEM text. To support another
//! key type, extend [`KeyType`], [`PrivateKey::from_pkcs8_der`] and `public_key_bits`.

pub mod chain;
mod decode;
mod pem;

use std::fmt;
use std::net::IpAddr;

use der::asn1::ObjectIdentifier;
use der::oid::AssociatedOid;
use der::{Decode, Encode, Tag, Tagged};
use pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use sha1::Digest as _;
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, SubjectAltName, SubjectKeyIdentifier,
};
use zeroize::Zeroizing;

use crate::error::CertError;
use pem::pem_block;

pub use decode::{decode_pem, decode_pfx, decode_secret, pfx_base64};
pub use pem::{PemBlock, pem_blocks};

/// The secret content type of a PFX (base64 in the secret value).
pub const CONTENT_TYPE_PKCS12: &str = "application/x-pkcs12";
/// The secret content type of a PEM bundle.
pub const CONTENT_TYPE_PEM: &str = "application/x-pem-file";

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// An elliptic curve akvvm supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum EcCurve {
    #[serde(rename = "P-256")]
    P256,
    #[serde(rename = "P-384")]
    P384,
    #[serde(rename = "P-521")]
    P521,
}

impl fmt::Display for EcCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        })
    }
}

/// The type of a key. Private keys are always `Rsa` or `Ec`; a certificate in the chain may
/// carry another public key type (`Other`), which akvvm reports but never matches.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kty", rename_all = "UPPERCASE")]
pub enum KeyType {
    Rsa { bits: usize },
    Ec { curve: EcCurve },
    Other { algorithm: String },
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { bits } => write!(f, "RSA {bits}"),
            Self::Ec { curve } => write!(f, "EC {curve}"),
            Self::Other { algorithm } => write!(f, "other ({algorithm})"),
        }
    }
}

/// A private key, held as normalised PKCS#8 DER that is wiped on drop. `Debug` never shows it.
#[derive(Clone)]
pub struct PrivateKey {
    der: Zeroizing<Vec<u8>>,
    key_type: KeyType,
    /// The public half in the canonical form [`public_key_bits`] gives, for matching.
    public: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("key_type", &self.key_type)
            .field("der", &"<redacted>")
            .finish()
    }
}

impl PrivateKey {
    /// Reads a PKCS#8 `PrivateKeyInfo` (RSA, or EC on P-256, P-384, P-521) and checks it.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CertError> {
        let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(|e| CertError::KeyInvalid {
            reason: format!("not PKCS#8: {e}"),
        })?;
        let invalid = |e: &dyn fmt::Display| CertError::KeyInvalid {
            reason: e.to_string(),
        };
        let algorithm = info.algorithm.oid;
        if algorithm == RSA_ENCRYPTION {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| invalid(&e))?;
            let public = rsa::RsaPublicKey::from(&key);
            let normalised = key.to_pkcs8_der().map_err(|e| invalid(&e))?;
            return Ok(Self {
                der: Zeroizing::new(normalised.as_bytes().to_vec()),
                key_type: rsa_key_type(&public),
                public: rsa_public_bits(&public)?,
            });
        }
        if algorithm != EC_PUBLIC_KEY {
            return Err(CertError::unsupported(format!(
                "private key algorithm {algorithm} (akvvm supports RSA and EC P-256/P-384/P-521)"
            )));
        }
        let curve = info
            .algorithm
            .parameters_oid()
            .map_err(|e| CertError::KeyInvalid {
                reason: format!("EC key without a named curve: {e}"),
            })?;
        macro_rules! ec_key {
            ($crate_:ident, $curve:expr) => {{
                let key = $crate_::SecretKey::from_pkcs8_der(der).map_err(|e| invalid(&e))?;
                let normalised = key.to_pkcs8_der().map_err(|e| invalid(&e))?;
                let point = key.public_key().to_sec1_bytes().to_vec();
                Ok(Self {
                    der: Zeroizing::new(normalised.as_bytes().to_vec()),
                    key_type: KeyType::Ec { curve: $curve },
                    public: point,
                })
            }};
        }
        if curve == SECP256R1 {
            ec_key!(p256, EcCurve::P256)
        } else if curve == SECP384R1 {
            ec_key!(p384, EcCurve::P384)
        } else if curve == SECP521R1 {
            ec_key!(p521, EcCurve::P521)
        } else {
            Err(CertError::unsupported(format!(
                "EC curve {curve} (akvvm supports P-256, P-384 and P-521)"
            )))
        }
    }

    /// The normalised PKCS#8 DER (no attributes).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.der
    }

    pub fn key_type(&self) -> &KeyType {
        &self.key_type
    }

    /// The `-----BEGIN PRIVATE KEY-----` PEM block.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        pem_block(&mut out, "PRIVATE KEY", &self.der);
        out
    }

    /// Whether this key is the private half of `cert`'s public key.
    pub fn matches(&self, cert: &Certificate) -> bool {
        cert.public.as_deref() == Some(self.public.as_slice())
    }
}

fn rsa_key_type(public: &rsa::RsaPublicKey) -> KeyType {
    use rsa::traits::PublicKeyParts;
    KeyType::Rsa {
        bits: public.n().bits(),
    }
}

/// RSA public keys compare as their PKCS#1 `RSAPublicKey` DER.
fn rsa_public_bits(public: &rsa::RsaPublicKey) -> Result<Vec<u8>, CertError> {
    use rsa::pkcs1::EncodeRsaPublicKey;
    public
        .to_pkcs1_der()
        .map(|doc| doc.as_bytes().to_vec())
        .map_err(|e| CertError::KeyInvalid {
            reason: e.to_string(),
        })
}

/// The key type of a `SubjectPublicKeyInfo` and its canonical public bits (PKCS#1 DER for RSA,
/// the uncompressed SEC1 point for EC), `None` for key types akvvm does not match.
fn public_key_bits(
    spki_der: &[u8],
    algorithm: ObjectIdentifier,
    curve: Option<ObjectIdentifier>,
) -> Result<(KeyType, Option<Vec<u8>>), String> {
    if algorithm == RSA_ENCRYPTION {
        let public = rsa::RsaPublicKey::from_public_key_der(spki_der).map_err(|e| e.to_string())?;
        let bits = rsa_public_bits(&public).map_err(|e| e.to_string())?;
        return Ok((rsa_key_type(&public), Some(bits)));
    }
    if algorithm == EC_PUBLIC_KEY {
        macro_rules! ec_public {
            ($crate_:ident, $curve:expr) => {{
                let public =
                    $crate_::PublicKey::from_public_key_der(spki_der).map_err(|e| e.to_string())?;
                Ok((
                    KeyType::Ec { curve: $curve },
                    Some(public.to_sec1_bytes().to_vec()),
                ))
            }};
        }
        return match curve {
            Some(c) if c == SECP256R1 => ec_public!(p256, EcCurve::P256),
            Some(c) if c == SECP384R1 => ec_public!(p384, EcCurve::P384),
            Some(c) if c == SECP521R1 => ec_public!(p521, EcCurve::P521),
            other => Ok((
                KeyType::Other {
                    algorithm: format!(
                        "EC on {}",
                        other.map_or_else(|| "an unnamed curve".to_string(), |c| c.to_string())
                    ),
                },
                None,
            )),
        };
    }
    Ok((
        KeyType::Other {
            algorithm: algorithm.to_string(),
        },
        None,
    ))
}

/// A subject alternative name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", content = "value")]
pub enum San {
    #[serde(rename = "DNS")]
    Dns(String),
    #[serde(rename = "IP")]
    Ip(IpAddr),
    #[serde(rename = "email")]
    Email(String),
    #[serde(rename = "URI")]
    Uri(String),
    #[serde(rename = "DirName")]
    DirectoryName(String),
    #[serde(rename = "other")]
    Other(String),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => write!(f, "DNS:{name}"),
            Self::Ip(ip) => write!(f, "IP:{ip}"),
            Self::Email(email) => write!(f, "email:{email}"),
            Self::Uri(uri) => write!(f, "URI:{uri}"),
            Self::DirectoryName(name) => write!(f, "DirName:{name}"),
            Self::Other(what) => write!(f, "other:{what}"),
        }
    }
}

/// An X.509 certificate: its DER and what akvvm reads from it.
#[derive(Clone, Debug)]
pub struct Certificate {
    der: Vec<u8>,
    /// RFC 4514 form, most specific first (`CN=www.contoso.com, O=Contoso`).
    pub subject: String,
    subject_cn: Option<String>,
    pub issuer: String,
    pub sans: Vec<San>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Upper-case hex, as printed by Windows and Key Vault.
    pub serial: String,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    pub key_type: KeyType,
    /// Basic constraints `cA`.
    pub is_ca: bool,
    subject_der: Vec<u8>,
    issuer_der: Vec<u8>,
    public: Option<Vec<u8>>,
}

/// Why DER bytes are not a certificate akvvm can read ([`Certificate::from_der`]). Its text is
/// the `reason` of [`CertError::CertificateInvalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateParseError {
    /// The bytes are not a DER X.509 certificate (or a part of it does not encode again).
    #[error("{0}")]
    Der(#[from] der::Error),
    /// An extension akvvm reads (`subjectAltName`, `subjectKeyIdentifier`,
    /// `authorityKeyIdentifier`, `basicConstraints`) does not decode.
    #[error("{extension}: {error}")]
    Extension {
        extension: &'static str,
        error: der::Error,
    },
    /// The subject public key does not decode, or its algorithm is not one akvvm knows.
    #[error("{0}")]
    PublicKey(String),
    /// A validity time is out of range.
    #[error("{0}")]
    Validity(String),
}

impl Certificate {
    /// Parses a DER X.509 certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateParseError> {
        let extension = |extension: &'static str| {
            move |error: der::Error| CertificateParseError::Extension { extension, error }
        };
        let cert = x509_cert::Certificate::from_der(der)?;
        let tbs = &cert.tbs_certificate;
        let spki_der = tbs.subject_public_key_info.to_der()?;
        let algorithm = &tbs.subject_public_key_info.algorithm;
        let curve = algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        let (key_type, public) = public_key_bits(&spki_der, algorithm.oid, curve)
            .map_err(CertificateParseError::PublicKey)?;

        let mut sans = Vec::new();
        let mut subject_key_id = None;
        let mut authority_key_id = None;
        let mut is_ca = false;
        for ext in tbs.extensions.iter().flatten() {
            let value = ext.extn_value.as_bytes();
            if ext.extn_id == SubjectAltName::OID {
                let names = SubjectAltName::from_der(value).map_err(extension("subjectAltName"))?;
                sans = names.0.iter().map(san).collect();
            } else if ext.extn_id == SubjectKeyIdentifier::OID {
                let ski = SubjectKeyIdentifier::from_der(value)
                    .map_err(extension("subjectKeyIdentifier"))?;
                subject_key_id = Some(ski.0.as_bytes().to_vec());
            } else if ext.extn_id == AuthorityKeyIdentifier::OID {
                let aki = AuthorityKeyIdentifier::from_der(value)
                    .map_err(extension("authorityKeyIdentifier"))?;
                authority_key_id = aki.key_identifier.map(|id| id.as_bytes().to_vec());
            } else if ext.extn_id == BasicConstraints::OID {
                let bc =
                    BasicConstraints::from_der(value).map_err(extension("basicConstraints"))?;
                is_ca = bc.ca;
            }
        }
        Ok(Self {
            der: der.to_vec(),
            subject: tbs.subject.to_string(),
            subject_cn: common_name(&tbs.subject),
            issuer: tbs.issuer.to_string(),
            sans,
            not_before: to_datetime(tbs.validity.not_before)
                .map_err(CertificateParseError::Validity)?,
            not_after: to_datetime(tbs.validity.not_after)
                .map_err(CertificateParseError::Validity)?,
            serial: serial_hex(tbs.serial_number.as_bytes()),
            subject_key_id,
            authority_key_id,
            key_type,
            is_ca,
            subject_der: tbs.subject.to_der()?,
            issuer_der: tbs.issuer.to_der()?,
            public,
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The subject's common name: its first `CN` attribute, `None` when it has none or the
    /// value is not a string.
    pub fn subject_common_name(&self) -> Option<&str> {
        self.subject_cn.as_deref()
    }

    /// SHA-1 of the DER, upper-case hex: the thumbprint Windows, Key Vault (`x5t`) and `.cscfg`
    /// files show.
    pub fn thumbprint(&self) -> String {
        hex::encode_upper(sha1::Sha1::digest(&self.der))
    }

    /// SHA-256 of the DER, upper-case hex.
    pub fn sha256_fingerprint(&self) -> String {
        hex::encode_upper(sha2::Sha256::digest(&self.der))
    }

    /// The `-----BEGIN CERTIFICATE-----` PEM block.
    pub fn to_pem(&self) -> String {
        let mut out = String::new();
        pem_block(&mut out, "CERTIFICATE", &self.der);
        out
    }

    /// Subject and issuer are the same name (a root, or a self-signed leaf).
    pub fn is_self_issued(&self) -> bool {
        self.subject_der == self.issuer_der
            && match (&self.authority_key_id, &self.subject_key_id) {
                (Some(aki), Some(ski)) => aki == ski,
                _ => true,
            }
    }

    /// Whether `candidate` can be the issuer of `self`: its subject is our issuer, and the key
    /// identifiers agree when both are present.
    pub fn is_issued_by(&self, candidate: &Certificate) -> bool {
        self.issuer_der == candidate.subject_der
            && match (&self.authority_key_id, &candidate.subject_key_id) {
                (Some(aki), Some(ski)) => aki == ski,
                _ => true,
            }
    }
}

/// The subject common name of a DER certificate, as [`Certificate::subject_common_name`] gives it,
/// reading nothing but the certificate's structure and subject: a cheap check of which
/// certificate a file holds, which names the subject even of a certificate whose extensions or
/// key akvvm cannot read. `None` when `der` is not a certificate.
pub fn subject_common_name(der: &[u8]) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    common_name(&cert.tbs_certificate.subject)
}

/// The first `CN` attribute of `name`, when its value is a UTF-8, printable, IA5, teletex or
/// BMP string.
fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid != COMMON_NAME {
                continue;
            }
            let value = &atv.value;
            return match value.tag() {
                Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
                    std::str::from_utf8(value.value()).ok().map(str::to_owned)
                }
                Tag::BmpString => {
                    let units: Vec<u16> = value
                        .value()
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16(&units).ok()
                }
                _ => None,
            };
        }
    }
    None
}

/// The serial number as OpenSSL and Windows print it: upper-case hex without the DER sign byte.
fn serial_hex(bytes: &[u8]) -> String {
    match bytes {
        [0, rest @ ..] if !rest.is_empty() => hex::encode_upper(rest),
        _ => hex::encode_upper(bytes),
    }
}

fn san(name: &GeneralName) -> San {
    match name {
        GeneralName::DnsName(dns) => San::Dns(dns.to_string()),
        GeneralName::Rfc822Name(email) => San::Email(email.to_string()),
        GeneralName::UniformResourceIdentifier(uri) => San::Uri(uri.to_string()),
        GeneralName::DirectoryName(dn) => San::DirectoryName(dn.to_string()),
        GeneralName::IpAddress(bytes) => match bytes.as_bytes().len() {
            4 => {
                let mut octets = [0u8; 4];
                octets.copy_from_slice(bytes.as_bytes());
                San::Ip(IpAddr::from(octets))
            }
            16 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(bytes.as_bytes());
                San::Ip(IpAddr::from(octets))
            }
            _ => San::Other(format!("IP address of {} bytes", bytes.as_bytes().len())),
        },
        GeneralName::OtherName(other) => San::Other(other.type_id.to_string()),
        GeneralName::RegisteredId(id) => San::Other(id.to_string()),
        GeneralName::EdiPartyName(_) => San::Other("EDI party name".into()),
    }
}

fn to_datetime(t: x509_cert::time::Time) -> Result<OffsetDateTime, String> {
    let secs = i64::try_from(t.to_unix_duration().as_secs()).map_err(|e| e.to_string())?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| e.to_string())
}

/// A certificate with its private key and ordered chain: what akvvm installs.
#[derive(Clone, Debug)]
pub struct CertificateBundle {
    pub key: PrivateKey,
    pub leaf: Certificate,
    /// Intermediates, then the root: each certificate is the issuer of the one before it.
    pub chain: Vec<Certificate>,
    /// Things that do not stop an install but that an operator should hear about (an
    /// incomplete chain, certificates unrelated to the leaf).
    pub warnings: Vec<String>,
}

/// The most certificates one secret may hold (a leaf and its chain are a handful; Key Vault
/// keeps at most a few dozen in a PFX).
pub const MAX_CERTIFICATES: usize = 100;

impl CertificateBundle {
    /// Builds a bundle from one PKCS#8 key and certificates in any order: finds the leaf the key
    /// belongs to and orders the chain from it.
    pub fn from_parts(key_pkcs8_der: &[u8], certs_der: &[Vec<u8>]) -> Result<Self, CertError> {
        // Before any work on them: the chain is built in time quadratic in their number.
        if certs_der.len() > MAX_CERTIFICATES {
            return Err(CertError::TooManyCertificates {
                count: certs_der.len(),
                limit: MAX_CERTIFICATES,
            });
        }
        let key = PrivateKey::from_pkcs8_der(key_pkcs8_der)?;
        let mut certs = Vec::with_capacity(certs_der.len());
        for (index, der) in certs_der.iter().enumerate() {
            if certs.iter().any(|c: &Certificate| c.der == *der) {
                continue; // the same certificate twice
            }
            let cert =
                Certificate::from_der(der).map_err(|reason| CertError::CertificateInvalid {
                    index,
                    reason: reason.to_string(),
                })?;
            certs.push(cert);
        }
        if certs.is_empty() {
            return Err(CertError::EmptyChain);
        }
        // The leaf is the certificate the key belongs to; should a CA share the key, prefer the
        // certificate that issues none of the others.
        let matching: Vec<usize> = (0..certs.len())
            .filter(|&i| key.matches(&certs[i]))
            .collect();
        let leaf_index = matching
            .iter()
            .copied()
            .find(|&i| {
                !certs
                    .iter()
                    .enumerate()
                    .any(|(j, c)| j != i && c.is_issued_by(&certs[i]))
            })
            .or_else(|| matching.first().copied())
            .ok_or_else(|| CertError::KeyMismatch {
                key_type: key.key_type.to_string(),
                certificates: certs.len(),
                first_subject: certs[0].subject.clone(),
            })?;
        let leaf = certs.remove(leaf_index);

        let mut chain: Vec<Certificate> = Vec::new();
        let mut warnings = Vec::new();
        loop {
            let current = chain.last().unwrap_or(&leaf);
            if current.is_self_issued() {
                break;
            }
            // Prefer an issuer whose key identifier matches over one that only matches by name.
            let by_key_id = certs.iter().position(|c| {
                current.is_issued_by(c)
                    && current.authority_key_id.is_some()
                    && current.authority_key_id == c.subject_key_id
            });
            match by_key_id.or_else(|| certs.iter().position(|c| current.is_issued_by(c))) {
                Some(i) => chain.push(certs.remove(i)),
                None => {
                    warnings.push(format!(
                        "the chain is incomplete: no certificate for \"{}\", the issuer of \"{}\"; \
                         clients that lack it will not trust \"{}\"",
                        current.issuer, current.subject, leaf.subject
                    ));
                    break;
                }
            }
        }
        for unrelated in &certs {
            warnings.push(format!(
                "certificate \"{}\" (thumbprint {}) is not in the chain of \"{}\" and was left out",
                unrelated.subject,
                unrelated.thumbprint(),
                leaf.subject
            ));
        }
        Ok(Self {
            key,
            leaf,
            chain,
            warnings,
        })
    }

    /// The store file's content: leaf, intermediates, root, then the PKCS#8 private key.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(self.fullchain_pem());
        out.push_str(&self.key.to_pem());
        out
    }

    /// The leaf certificate alone (certbot's `cert.pem`).
    pub fn leaf_pem(&self) -> String {
        self.leaf.to_pem()
    }

    /// Intermediates then root (certbot's `chain.pem`); empty for a self-signed leaf.
    pub fn chain_pem(&self) -> String {
        self.chain.iter().map(Certificate::to_pem).collect()
    }

    /// Leaf then chain (certbot's `fullchain.pem`).
    pub fn fullchain_pem(&self) -> String {
        let mut out = self.leaf_pem();
        out.push_str(&self.chain_pem());
        out
    }

    /// The private key alone (certbot's `privkey.pem`).
    pub fn key_pem(&self) -> Zeroizing<String> {
        self.key.to_pem()
    }

    /// The leaf's SHA-1 thumbprint, upper-case hex.
    pub fn thumbprint(&self) -> String {
        self.leaf.thumbprint()
    }

    /// The leaf's SHA-256 fingerprint, upper-case hex.
    pub fn sha256_fingerprint(&self) -> String {
        self.leaf.sha256_fingerprint()
    }

    /// When the leaf expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.leaf.not_after
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair};

    use super::{Certificate, subject_common_name};

    fn der_with(name: DistinguishedName) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name = name;
        let key = KeyPair::generate().expect("key");
        params
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec()
    }

    #[test]
    fn the_subject_common_name_is_read_from_every_string_type_akvvm_meets() {
        let cases = [
            (
                DnValue::Utf8String("utf8.contoso.com".into()),
                Some("utf8.contoso.com"),
            ),
            (
                DnValue::PrintableString("printable.contoso.com".try_into().expect("printable")),
                Some("printable.contoso.com"),
            ),
            (
                DnValue::BmpString("bmp.contoso.com".try_into().expect("bmp")),
                Some("bmp.contoso.com"),
            ),
            (
                DnValue::TeletexString("teletex.contoso.com".try_into().expect("teletex")),
                Some("teletex.contoso.com"),
            ),
        ];
        for (value, expected) in cases {
            let mut name = DistinguishedName::new();
            name.push(DnType::OrganizationName, "Contoso");
            name.push(DnType::CommonName, value);
            let der = der_with(name);
            let cert = Certificate::from_der(&der).expect("certificate");
            assert_eq!(cert.subject_common_name(), expected);
            assert_eq!(subject_common_name(&der).as_deref(), expected);
        }
    }

    #[test]
    fn a_subject_without_a_common_name_has_none() {
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "Contoso");
        let der = der_with(name);
        assert_eq!(
            Certificate::from_der(&der)
                .expect("certificate")
                .subject_common_name(),
            None
        );
        assert_eq!(subject_common_name(&der), None);
        assert_eq!(subject_common_name(b"not a certificate"), None);
    }
}
