//! Chain validation before install (what the 4.x extension documents for certificates carrying
//! the TLS server-authentication EKU): [`validate_chain`] walks the chain as delivered (leaf,
//! then the intermediates and root in the secret, then issuers fetched through the caIssuers
//! URL of the Authority Information Access extension with an injectable [`IssuerFetcher`]) and
//! gives a [`ChainVerdict`]:
//! - [`ChainVerdict::NotServerAuth`]: the leaf has no serverAuth EKU; nothing is checked.
//! - [`ChainVerdict::Trusted`]: the chain reaches a trust anchor of this machine
//!   ([`TrustAnchors`]: the system's CA bundle and akvvm's `caCertificates`), and rustls-webpki's
//!   path validation accepts it (signatures, validity, CA flags, path lengths, name constraints,
//!   serverAuth EKU down the chain).
//! - [`ChainVerdict::Warning`]: install, with a [`ChainWarning`] for the status file and metrics:
//!   the chain is sound but ends at a root this machine does not trust (a self-signed
//!   certificate, as Key Vault's own are, or a private PKI: [`UNTRUSTED`]), or it could not be
//!   completed (an issuer neither delivered nor fetchable: no caIssuers URL, a network error or
//!   an unusable answer: [`UNVERIFIED`]). Both are fail-open: they never block an install.
//! - [`ChainVerdict::Invalid`]: a [`ChainError`] naming the failing link: a signature that does
//!   not verify, a certificate outside its validity period, an issuer that is not a CA, a path
//!   length or EKU violation. The engine refuses the version; the installed one stays.
//!
//! The function is pure over its inputs (certificates, anchors, time, fetcher), so that it is
//! tested with generated chains; the engine decides when it runs (4.x) and how issuers are
//! fetched (HTTP).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier};
use der::oid::AssociatedOid;
use der::{Decode, Reader, SliceReader};
use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, BasicConstraints, ExtendedKeyUsage};

use super::{Certificate, pem_blocks};

/// The TLS server-authentication EKU (`id-kp-serverAuth`).
pub const SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
const ANY_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");
const CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");

/// The warning code of a sound chain ending at a root this machine does not trust.
pub const UNTRUSTED: &str = "cert.chain_untrusted";
/// The warning code of a chain that could not be completed (an issuer not delivered and not
/// fetched).
pub const UNVERIFIED: &str = "cert.chain_unverified";

/// The longest chain walked (leaf included).
pub const MAX_DEPTH: usize = 10;

/// The system CA bundles looked for, first found wins (Debian/Ubuntu, RHEL/Fedora, SUSE,
/// Alpine/others); without any, every `*.pem` and `*.crt` of `/etc/ssl/certs`.
pub const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The directory of individual system CA certificates.
pub const SYSTEM_CERT_DIR: &str = "/etc/ssl/certs";

/// Why a fetch of an issuer certificate failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Timeout, connection refused, DNS failure, 5xx: may work next time.
    Transient(String),
    /// Anything else (4xx, an unsupported scheme).
    Failed(String),
}

/// Fetches the document at a caIssuers URL (DER or PEM certificates).
pub trait IssuerFetcher {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError>;
}

/// A fetcher that fetches nothing (every fetch fails as not attempted).
pub struct NoFetch;

impl IssuerFetcher for NoFetch {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        Err(FetchError::Failed(format!("fetching {url} is not enabled")))
    }
}

impl<F: Fn(&str) -> Result<Vec<u8>, FetchError>> IssuerFetcher for F {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        self(url)
    }
}

/// The certificates this machine trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    certs: Vec<Certificate>,
    /// Files that could not be read or held unreadable certificates (reported, not fatal).
    pub problems: Vec<String>,
}

impl TrustAnchors {
    /// Anchors from certificates.
    pub fn new(certs: Vec<Certificate>) -> Self {
        TrustAnchors {
            certs,
            problems: Vec::new(),
        }
    }

    /// The system's CA bundle ([`SYSTEM_BUNDLES`], else [`SYSTEM_CERT_DIR`]) and `extra` PEM
    /// files (akvvm's `caCertificates`).
    pub fn system_and(extra: &[PathBuf]) -> Self {
        let mut files: Vec<PathBuf> = match SYSTEM_BUNDLES.iter().find(|p| Path::new(p).is_file()) {
            Some(bundle) => vec![PathBuf::from(bundle)],
            None => std::fs::read_dir(SYSTEM_CERT_DIR)
                .map(|dir| {
                    dir.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|e| e == "pem" || e == "crt"))
                        .collect()
                })
                .unwrap_or_default(),
        };
        files.extend(extra.iter().cloned());
        Self::from_files(&files)
    }

    /// Anchors from PEM files; what cannot be read is listed in [`TrustAnchors::problems`].
    pub fn from_files(files: &[PathBuf]) -> Self {
        let mut anchors = TrustAnchors::default();
        for file in files {
            match std::fs::read_to_string(file) {
                Ok(text) => anchors.add_pem(&text, &file.display().to_string()),
                Err(e) => anchors
                    .problems
                    .push(format!("cannot read {}: {e}", file.display())),
            }
        }
        anchors
    }

    fn add_pem(&mut self, text: &str, source: &str) {
        match pem_blocks(text) {
            Ok(blocks) => {
                for block in blocks.iter().filter(|b| b.label == "CERTIFICATE") {
                    match Certificate::from_der(&block.der) {
                        Ok(cert) => self.certs.push(cert),
                        Err(e) => self.problems.push(format!("{source}: {e}")),
                    }
                }
            }
            Err(e) => self.problems.push(format!("{source}: {e}")),
        }
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// Why a chain is refused; the message names the failing certificate and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// A certificate's signature does not verify with its issuer's key.
    #[error(
        "chain validation failed: the signature of {subject} does not verify with the key of \
         {issuer}, {where_}; upload the certificate with its own issuer chain (the PFX or PEM \
         must hold the intermediates that signed it)"
    )]
    Signature {
        subject: String,
        issuer: String,
        where_: String,
    },
    /// A certificate of the chain is expired or not valid yet.
    #[error("chain validation failed: {which} is valid {period}; {advice}")]
    Validity {
        /// "the certificate \"CN=..\"", "its intermediate \"CN=..\"", "its root \"CN=..\"".
        which: String,
        /// "from `<not before>` to `<not after>`, not now (`<now>`)".
        period: String,
        advice: String,
    },
    /// The chain is malformed: an issuer that is not a CA, a path length or EKU violation, a
    /// chain too long, or what the path validator refused.
    #[error("chain validation failed: {0}")]
    Structure(String),
}

crate::error_codes! {
    ChainError {
        ChainError::Signature { .. } => "cert.chain_bad_signature",
        ChainError::Validity { .. } => "cert.chain_outside_validity",
        ChainError::Structure(_) => "cert.chain_malformed",
    }
}

/// A reason to install with a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainWarning {
    /// [`UNTRUSTED`] or [`UNVERIFIED`].
    pub code: &'static str,
    pub message: String,
}

/// What [`validate_chain`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainVerdict {
    NotServerAuth,
    Trusted { anchor: String },
    Warning(ChainWarning),
    Invalid(ChainError),
}

/// What validation reads from a certificate beyond [`Certificate`].
struct Extras {
    eku: Option<Vec<ObjectIdentifier>>,
    path_len: Option<u8>,
    ca_issuers: Vec<String>,
}

fn extras(cert: &Certificate) -> Extras {
    let mut out = Extras {
        eku: None,
        path_len: None,
        ca_issuers: Vec::new(),
    };
    let Ok(parsed) = x509_cert::Certificate::from_der(cert.der()) else {
        return out;
    };
    for ext in parsed.tbs_certificate.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        if ext.extn_id == ExtendedKeyUsage::OID {
            out.eku = ExtendedKeyUsage::from_der(value).ok().map(|e| e.0);
        } else if ext.extn_id == BasicConstraints::OID {
            out.path_len = BasicConstraints::from_der(value)
                .ok()
                .and_then(|b| b.path_len_constraint);
        } else if ext.extn_id == AuthorityInfoAccessSyntax::OID
            && let Ok(aia) = AuthorityInfoAccessSyntax::from_der(value)
        {
            for access in aia.0 {
                if access.access_method == CA_ISSUERS
                    && let GeneralName::UniformResourceIdentifier(uri) = access.access_location
                {
                    out.ca_issuers.push(uri.to_string());
                }
            }
        }
    }
    out
}

/// Whether `cert` carries the serverAuth EKU.
pub fn has_server_auth(cert: &Certificate) -> bool {
    extras(cert)
        .eku
        .is_some_and(|ekus| ekus.contains(&SERVER_AUTH))
}

/// The signed part, the signature algorithm's content and the signature of a DER certificate.
fn signed_parts(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let outer = AnyRef::from_der(der).ok()?;
    let mut reader = SliceReader::new(outer.value()).ok()?;
    let tbs = reader.tlv_bytes().ok()?;
    let algorithm = AnyRef::decode(&mut reader).ok()?;
    let signature = BitStringRef::decode(&mut reader).ok()?;
    Some((tbs, algorithm.value(), signature.raw_bytes()))
}

/// Whether `issuer`'s key verifies `cert`'s signature: `Some(true|false)`, or `None` when the
/// signature algorithm or key is one rustls-webpki does not support.
fn signed_by(cert: &Certificate, issuer: &Certificate) -> Option<bool> {
    let (tbs, algorithm, signature) = signed_parts(cert.der())?;
    let issuer_der = CertificateDer::from(issuer.der());
    let issuer = webpki::EndEntityCert::try_from(&issuer_der).ok()?;
    let mut supported = false;
    for alg in webpki::ALL_VERIFICATION_ALGS {
        if alg.signature_alg_id().as_ref() != algorithm {
            continue;
        }
        match issuer.verify_signature(*alg, tbs, signature) {
            Ok(()) => return Some(true),
            Err(webpki::Error::InvalidSignatureForPublicKey) => supported = true,
            Err(_) => {}
        }
    }
    supported.then_some(false)
}

fn unix(now: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now.unix_timestamp()).unwrap_or(0),
    ))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn quoted(cert: &Certificate) -> String {
    format!("\"{}\"", cert.subject)
}

/// rustls-webpki's path validation of `leaf` through `intermediates` to one of `anchors`.
fn webpki_verify(
    leaf: &Certificate,
    intermediates: &[&Certificate],
    anchors: &[&Certificate],
    now: OffsetDateTime,
) -> Result<(), webpki::Error> {
    let anchor_ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|a| CertificateDer::from(a.der()))
        .collect();
    let trust: Vec<_> = anchor_ders
        .iter()
        .filter_map(|d| webpki::anchor_from_trusted_cert(d).ok())
        .collect();
    let chain: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.der()))
        .collect();
    let leaf_der = CertificateDer::from(leaf.der());
    let ee = webpki::EndEntityCert::try_from(&leaf_der)?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &trust,
        &chain,
        unix(now),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map(|_| ())
}

/// What a path validator's refusal means for the chain that ends at `end`.
fn from_webpki(error: webpki::Error, end: &Certificate) -> ChainError {
    use webpki::Error as E;
    let what = match error {
        E::InvalidSignatureForPublicKey => {
            return ChainError::Signature {
                subject: "a certificate of the chain".into(),
                issuer: "its issuer".into(),
                where_: format!("in the chain ending at {}", quoted(end)),
            };
        }
        E::RequiredEkuNotFoundContext(_) => {
            "a certificate of the chain restricts its extended key usage and leaves out TLS \
             server authentication"
                .to_owned()
        }
        E::CaUsedAsEndEntity => {
            "the leaf is a CA certificate (basicConstraints cA=true) issued by another CA; issue \
             the server certificate as an end entity"
                .to_owned()
        }
        E::PathLenConstraintViolated => "a CA's path length constraint is exceeded".to_owned(),
        E::NameConstraintViolation => "a CA's name constraints exclude the leaf's names".to_owned(),
        other => format!("the path validator refused it: {other}"),
    };
    ChainError::Structure(format!(
        "{what} (the chain ending at {}); fix the certificate chain in Key Vault",
        quoted(end)
    ))
}

/// Validates the chain of `leaf` as delivered (`delivered`: the other certificates of the
/// secret, in any order), against `anchors` at `now`, fetching missing issuers with `fetcher`.
pub fn validate_chain(
    leaf: &Certificate,
    delivered: &[Certificate],
    anchors: &TrustAnchors,
    now: OffsetDateTime,
    fetcher: &dyn IssuerFetcher,
) -> ChainVerdict {
    let leaf_extras = extras(leaf);
    if !leaf_extras
        .eku
        .as_ref()
        .is_some_and(|e| e.contains(&SERVER_AUTH))
    {
        return ChainVerdict::NotServerAuth;
    }
    let mut pool: Vec<Certificate> = delivered.to_vec();
    let mut path: Vec<Certificate> = vec![leaf.clone()];
    let mut tried: BTreeSet<String> = BTreeSet::new();
    let mut fetch_problems: Vec<String> = Vec::new();
    loop {
        let position = path.len() - 1;
        let current = path[position].clone();
        if let Err(e) = check_link(&current, position, &path, now) {
            return ChainVerdict::Invalid(e);
        }
        // A self-signed leaf this machine trusts as it is (caCertificates): trusted, whatever
        // its basicConstraints say.
        if position == 0
            && current.is_self_issued()
            && anchors.certs.iter().any(|a| a.der() == current.der())
            && signed_by(&current, &current) == Some(true)
        {
            return ChainVerdict::Trusted {
                anchor: current.subject.clone(),
            };
        }
        // A trust anchor of this machine issues it: the path validator has the last word.
        let trusted: Vec<&Certificate> = anchors
            .certs
            .iter()
            .filter(|a| current.is_issued_by(a))
            .collect();
        if !trusted.is_empty() {
            let intermediates: Vec<&Certificate> = path[1..].iter().collect();
            let all: Vec<&Certificate> = anchors.certs.iter().collect();
            match webpki_verify(leaf, &intermediates, &all, now) {
                Ok(()) => {
                    return ChainVerdict::Trusted {
                        anchor: trusted[0].subject.clone(),
                    };
                }
                // Same name, another key: not this machine's anchor after all.
                Err(webpki::Error::UnknownIssuer) => {}
                Err(e) => return ChainVerdict::Invalid(from_webpki(e, trusted[0])),
            }
        }
        // Its own root: sound, not trusted here.
        if current.is_self_issued() {
            match signed_by(&current, &current) {
                Some(true) => {}
                Some(false) => {
                    return ChainVerdict::Invalid(ChainError::Signature {
                        subject: quoted(&current),
                        issuer: "itself".into(),
                        where_: "a self-signed certificate whose own signature is broken".into(),
                    });
                }
                None => return unverified(&current, "its signature algorithm is not supported"),
            }
            if position > 0 {
                let intermediates: Vec<&Certificate> = path[1..position].iter().collect();
                if let Err(e) = webpki_verify(leaf, &intermediates, &[&current], now) {
                    return ChainVerdict::Invalid(from_webpki(e, &current));
                }
            }
            let message = if position == 0 {
                format!(
                    "{} is self-signed: no machine trusts it unless told to (Key Vault's \
                     self-signed certificates are); clients must pin it or add it to their trust \
                     store, or issue it from a CA they trust",
                    quoted(leaf)
                )
            } else {
                format!(
                    "the chain of {} is sound but ends at the root {}, which this machine does \
                     not trust (a private CA?); clients need that root in their trust store \
                     (add it to akvvm's caCertificates to silence this warning)",
                    quoted(leaf),
                    quoted(&current)
                )
            };
            return ChainVerdict::Warning(ChainWarning {
                code: UNTRUSTED,
                message,
            });
        }
        if path.len() >= MAX_DEPTH {
            return ChainVerdict::Invalid(ChainError::Structure(format!(
                "the chain of {} is longer than {MAX_DEPTH} certificates; fix the certificate \
                 chain in Key Vault",
                quoted(leaf)
            )));
        }
        // Its issuer among the delivered (and fetched) certificates.
        let candidates: Vec<usize> = (0..pool.len())
            .filter(|&i| current.is_issued_by(&pool[i]))
            .collect();
        if !candidates.is_empty() {
            let mut unsupported = false;
            let found = candidates
                .iter()
                .copied()
                .find(|&i| match signed_by(&current, &pool[i]) {
                    Some(ok) => ok,
                    None => {
                        unsupported = true;
                        false
                    }
                });
            match found {
                Some(i) => {
                    path.push(pool.remove(i));
                    continue;
                }
                None if unsupported => {
                    return unverified(&current, "its signature algorithm is not supported");
                }
                None => {
                    return ChainVerdict::Invalid(ChainError::Signature {
                        subject: quoted(&current),
                        issuer: quoted(&pool[candidates[0]]),
                        where_: if tried.is_empty() {
                            "the issuer delivered with it".to_owned()
                        } else {
                            "the issuer delivered with it or fetched from its caIssuers URL"
                                .to_owned()
                        },
                    });
                }
            }
        }
        // Not delivered: fetch it from the caIssuers URL(s).
        let urls: Vec<String> = extras(&current)
            .ca_issuers
            .into_iter()
            .filter(|u| !tried.contains(u))
            .collect();
        if urls.is_empty() {
            let why = if fetch_problems.is_empty() {
                "it names no caIssuers URL to fetch it from".to_owned()
            } else {
                fetch_problems.join("; ")
            };
            return ChainVerdict::Warning(ChainWarning {
                code: UNVERIFIED,
                message: format!(
                    "chain validation could not complete: the issuer \"{}\" of {} is neither in \
                     the certificate nor trusted by this machine, and {why}; installed anyway \
                     (clients that lack that issuer will not trust {}: upload the full chain)",
                    current.issuer,
                    quoted(&current),
                    quoted(leaf)
                ),
            });
        }
        for url in urls {
            tried.insert(url.clone());
            match fetcher.fetch(&url) {
                Ok(bytes) => {
                    let certs = parse_fetched(&bytes);
                    if certs.is_empty() {
                        fetch_problems.push(format!("{url} gave no certificate"));
                    } else if !certs.iter().any(|c| current.is_issued_by(c)) {
                        fetch_problems
                            .push(format!("{url} gave another certificate than the issuer"));
                    } else {
                        pool.extend(certs);
                        break;
                    }
                }
                Err(FetchError::Transient(why)) => {
                    fetch_problems.push(format!("fetching {url} failed ({why}; may be transient)"));
                }
                Err(FetchError::Failed(why)) => {
                    fetch_problems.push(format!("fetching {url} failed ({why})"));
                }
            }
        }
    }
}

fn unverified(cert: &Certificate, why: &str) -> ChainVerdict {
    ChainVerdict::Warning(ChainWarning {
        code: UNVERIFIED,
        message: format!(
            "chain validation could not complete at {}: {why}; installed anyway",
            quoted(cert)
        ),
    })
}

/// Checks of one certificate at `position` in the chain (0: the leaf): validity at `now`; for
/// an issuer, that it is a CA, its path length, and an EKU that allows server authentication.
fn check_link(
    cert: &Certificate,
    position: usize,
    path: &[Certificate],
    now: OffsetDateTime,
) -> Result<(), ChainError> {
    let role = match position {
        0 => "the certificate",
        _ if cert.is_self_issued() => "its root",
        _ => "its intermediate",
    };
    if now < cert.not_before || now > cert.not_after {
        let advice = match (position, now < cert.not_before) {
            (0, true) => "wait until it is valid, or check this machine's clock".to_owned(),
            (0, false) => "renew it in Key Vault".to_owned(),
            (_, true) => {
                "the CA issued it too early, or this machine's clock is wrong; check the clock"
                    .to_owned()
            }
            (_, false) => format!(
                "replace it in the certificate's chain with the CA's current one (the version \
                 installed before stays), then renew {}",
                quoted(&path[0])
            ),
        };
        return Err(ChainError::Validity {
            which: format!("{role} {}", quoted(cert)),
            period: format!(
                "from {} to {}, not now ({})",
                rfc3339(cert.not_before),
                rfc3339(cert.not_after),
                rfc3339(now)
            ),
            advice,
        });
    }
    if position == 0 {
        return Ok(());
    }
    let child = &path[position - 1];
    if !cert.is_ca {
        return Err(ChainError::Structure(format!(
            "{} issued {}, but it is not a CA certificate (no basicConstraints cA=true); \
             upload the chain with the CA certificate that really issued it",
            quoted(cert),
            quoted(child)
        )));
    }
    let extras = extras(cert);
    if let Some(limit) = extras.path_len
        && position - 1 > usize::from(limit)
    {
        return Err(ChainError::Structure(format!(
            "{} allows {limit} intermediate(s) below it, but the chain has {}; fix the chain",
            quoted(cert),
            position - 1
        )));
    }
    if let Some(ekus) = &extras.eku
        && !ekus.contains(&SERVER_AUTH)
        && !ekus.contains(&ANY_EKU)
    {
        return Err(ChainError::Structure(format!(
            "{} restricts its extended key usage to purposes that leave out TLS server \
             authentication, so it cannot issue server certificates such as {}; issue it from a \
             CA that may",
            quoted(cert),
            quoted(&path[0])
        )));
    }
    Ok(())
}

/// The certificates of a caIssuers document: DER, or PEM (one or more).
fn parse_fetched(bytes: &[u8]) -> Vec<Certificate> {
    if let Ok(cert) = Certificate::from_der(bytes) {
        return vec![cert];
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| pem_blocks(text).ok())
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b.label == "CERTIFICATE")
                .filter_map(|b| Certificate::from_der(&b.der).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
