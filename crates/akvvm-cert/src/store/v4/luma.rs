//! The `.luma` file of the 4.x layout: JSON metadata naming a certificate's current pair of
//! files, rewritten atomically after both links point to that pair. Microsoft documents only
//! that it is "certificate management metadata" that applications should watch; what akvvm puts
//! in it is documented in `docs/store.md` and here, and readers should ignore fields they do not
//! know.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::certificate::CertificateBundle;

/// Mode of the `.luma` file: it holds no secret, and applications watch it.
pub const LUMA_FILE_MODE: u32 = 0o644;

/// The current format of [`Luma`].
pub(super) const LUMA_FORMAT: u32 = 1;

/// What `<vault>.<cert>.luma` holds (JSON, camelCase keys):
///
/// ```json
/// {
///   "format": 1,
///   "vault": "mykv",
///   "certificate": "server-tls",
///   "version": "0123456789abcdef0123456789abcdef",
///   "timestamp": "20261202T013124.123456789Z",
///   "pem": "mykv.server-tls.0123456789abcdef0123456789abcdef.pem.20261202T013124.123456789Z",
///   "keyid": "mykv.server-tls.0123456789abcdef0123456789abcdef.keyid.20261202T013124.123456789Z",
///   "thumbprint": "9F1C3A5E0D2B4C6F8A1E3D5B7C9F0A2B4D6E8F01",
///   "sha256": "…64 hex digits…",
///   "subject": "CN=www.contoso.com",
///   "notBefore": "2026-11-01T00:00:00Z",
///   "notAfter": "2027-11-01T00:00:00Z",
///   "installedAt": "2026-12-02T01:31:24.123456789Z"
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Luma {
    /// The format of this file, 1; [`Luma::parse`] refuses a newer one.
    pub format: u32,
    /// The vault name.
    pub vault: String,
    /// The certificate (secret) name.
    pub certificate: String,
    /// The Key Vault version of the current pair.
    pub version: String,
    /// The timestamp in the current pair's names.
    pub timestamp: String,
    /// The current full-chain file's name, in the store directory.
    pub pem: String,
    /// The current private key file's name, in the store directory.
    pub keyid: String,
    /// SHA-1 of the DER leaf, upper-case hex.
    pub thumbprint: String,
    /// SHA-256 of the DER leaf, upper-case hex.
    pub sha256: String,
    /// The leaf's subject (RFC 4514).
    pub subject: String,
    /// The leaf's validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// When the pair was installed: the instant its timestamp names.
    #[serde(with = "time::serde::rfc3339")]
    pub installed_at: OffsetDateTime,
}

impl Luma {
    /// The metadata of the pair `pem`/`keyid` (names in the store) of `bundle`, installed at
    /// `installed_at` (the instant of `timestamp`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        vault: &str,
        certificate: &str,
        version: &str,
        timestamp: &str,
        pem: &str,
        keyid: &str,
        bundle: &CertificateBundle,
        installed_at: OffsetDateTime,
    ) -> Luma {
        Luma {
            format: LUMA_FORMAT,
            vault: vault.to_owned(),
            certificate: certificate.to_owned(),
            version: version.to_owned(),
            timestamp: timestamp.to_owned(),
            pem: pem.to_owned(),
            keyid: keyid.to_owned(),
            thumbprint: bundle.thumbprint(),
            sha256: bundle.sha256_fingerprint(),
            subject: bundle.leaf.subject.clone(),
            not_before: bundle.leaf.not_before,
            not_after: bundle.leaf.not_after,
            installed_at,
        }
    }

    /// The file's bytes: pretty JSON and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a Luma always serializes");
        bytes.push(b'\n');
        bytes
    }

    /// Reads a `.luma` file's content; `None` when it is not one of a format this akvvm knows.
    pub fn parse(bytes: &[u8]) -> Option<Luma> {
        serde_json::from_slice::<Luma>(bytes)
            .ok()
            .filter(|luma| luma.format <= LUMA_FORMAT)
    }
}
