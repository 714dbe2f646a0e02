//! The error type of certificate decoding: one variant per way a secret can fail to be a usable
//! certificate, each with a stable machine code ([`CertError::code`]) that goes into the status
//! file and metrics. Add a variant (and a test in `tests`) rather than reusing one whose code
//! means something else.

/// Why a secret value, PFX or PEM could not be turned into a certificate bundle.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The value is neither a PFX nor a PEM bundle.
    #[error(
        "the secret is not a certificate ({reason}); store a PFX (application/x-pkcs12) or a PEM \
         bundle (application/x-pem-file) in it, or remove it from observedCertificates"
    )]
    NotACertificate { reason: String },

    /// The PFX structure could not be parsed (corrupt or truncated file).
    #[error("the PFX is corrupt or truncated: {reason}; re-import the certificate into Key Vault")]
    PfxCorrupt { reason: String },

    /// Nothing in the PFX decrypts with the password given.
    #[error("the PFX does not open with the password given{detail}")]
    PfxBadPassword { detail: String },

    /// The content decrypts, but its integrity MAC does not match: the file was altered.
    #[error(
        "the PFX integrity check (MAC) failed although its content decrypts: the file was \
         altered or damaged; re-import the certificate into Key Vault"
    )]
    PfxMacMismatch,

    /// A PEM bundle holds no private key.
    #[error(
        "the PEM bundle holds no private key (found {certificates} certificate(s)); a \
         certificate secret must hold a PKCS#8 PRIVATE KEY block as well"
    )]
    PemNoKey { certificates: usize },

    /// A PEM block could not be read.
    #[error(
        "invalid PEM block {index} ({label}): {reason}; each block needs its complete base64 \
         between its BEGIN and END lines: export the PEM again"
    )]
    PemInvalid {
        index: usize,
        label: String,
        reason: String,
    },

    /// A PFX holds no private key.
    #[error(
        "the PFX holds no private key (found {certificates} certificate(s)); export it with its \
         private key"
    )]
    PfxNoKey { certificates: usize },

    /// More than one private key: akvvm cannot tell which one belongs to the certificate.
    #[error(
        "the secret holds {count} private keys; a certificate secret must hold exactly one: keep \
         only the key of the leaf certificate"
    )]
    MultipleKeys { count: usize },

    /// The private key matches none of the certificates.
    #[error(
        "the private key ({key_type}) matches none of the {certificates} certificate(s) (first: \
         {first_subject}); the key and the leaf certificate must belong together"
    )]
    KeyMismatch {
        key_type: String,
        certificates: usize,
        first_subject: String,
    },

    /// More certificates than any chain has: a hostile or broken answer.
    #[error(
        "the secret holds {count} certificates, more than the {limit} akvvm accepts in one \
         chain; keep only the certificate and its chain in the secret"
    )]
    TooManyCertificates { count: usize, limit: usize },

    /// There are no certificates at all.
    #[error(
        "the secret holds a private key but no certificate; add the certificate and its chain \
         to it, or import the certificate into Key Vault as a certificate"
    )]
    EmptyChain,

    /// A certificate is not valid X.509 DER.
    #[error(
        "certificate {index} is not a valid X.509 certificate: {reason}; replace it with the \
         certificate as its issuer delivered it and import it into Key Vault again"
    )]
    CertificateInvalid { index: usize, reason: String },

    /// The private key is not a valid key of its declared type.
    #[error(
        "the private key is invalid: {reason}; export the key again (an RSA or EC key, \
         unencrypted PKCS#8) and import it into Key Vault again"
    )]
    KeyInvalid { reason: String },

    /// A cipher, MAC, key type or structure akvvm does not implement.
    #[error(
        "unsupported algorithm: {what}; akvvm reads PFX files made by Key Vault (3DES, RC2) or \
         OpenSSL (PBES2 with AES), PEM with unencrypted keys, RSA and EC P-256/P-384/P-521 keys: \
         export the certificate in one of those forms"
    )]
    UnsupportedAlgorithm { what: String },

    /// Building a PFX failed (bad input key or certificate).
    #[error("cannot build the PFX: {reason}")]
    PfxEncode { reason: String },
}

crate::error_codes! {
    CertError {
        CertError::NotACertificate { .. } => "cert.not_a_certificate",
        CertError::PfxCorrupt { .. } => "cert.pfx_corrupt",
        CertError::PfxBadPassword { .. } => "cert.pfx_bad_password",
        CertError::PfxMacMismatch => "cert.pfx_mac_mismatch",
        CertError::PemNoKey { .. } => "cert.pem_no_key",
        CertError::PemInvalid { .. } => "cert.pem_invalid",
        CertError::PfxNoKey { .. } => "cert.pfx_no_key",
        CertError::MultipleKeys { .. } => "cert.multiple_keys",
        CertError::KeyMismatch { .. } => "cert.key_mismatch",
        CertError::EmptyChain => "cert.empty_chain",
        CertError::TooManyCertificates { .. } => "cert.too_many_certificates",
        CertError::CertificateInvalid { .. } => "cert.certificate_invalid",
        CertError::KeyInvalid { .. } => "cert.key_invalid",
        CertError::UnsupportedAlgorithm { .. } => "cert.unsupported_algorithm",
        CertError::PfxEncode { .. } => "cert.pfx_encode",
    }
}

impl CertError {
    pub(crate) fn corrupt(reason: impl std::fmt::Display) -> Self {
        Self::PfxCorrupt {
            reason: reason.to_string(),
        }
    }

    pub(crate) fn unsupported(what: impl Into<String>) -> Self {
        Self::UnsupportedAlgorithm { what: what.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::CertError;

    /// One of every variant; `tests/it/certificate_errors.rs` produces each from real input.
    fn all() -> Vec<CertError> {
        let s = || "x".to_string();
        vec![
            CertError::NotACertificate { reason: s() },
            CertError::PfxCorrupt { reason: s() },
            CertError::PfxBadPassword { detail: s() },
            CertError::PfxMacMismatch,
            CertError::PemNoKey { certificates: 2 },
            CertError::PemInvalid {
                index: 0,
                label: s(),
                reason: s(),
            },
            CertError::PfxNoKey { certificates: 1 },
            CertError::MultipleKeys { count: 2 },
            CertError::KeyMismatch {
                key_type: s(),
                certificates: 1,
                first_subject: s(),
            },
            CertError::EmptyChain,
            CertError::TooManyCertificates {
                count: 101,
                limit: 100,
            },
            CertError::CertificateInvalid {
                index: 0,
                reason: s(),
            },
            CertError::KeyInvalid { reason: s() },
            CertError::UnsupportedAlgorithm { what: s() },
            CertError::PfxEncode { reason: s() },
        ]
    }

    #[test]
    fn codes_are_distinct_snake_case_and_stable() {
        let codes: Vec<&str> = all().iter().map(CertError::code).collect();
        assert_eq!(codes, CertError::CODES);
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        assert!(codes.iter().all(|c| crate::codes::is_well_formed(c)));
    }

    #[test]
    fn every_message_is_a_lowercase_sentence_without_trailing_period() {
        for err in all() {
            let text = err.to_string();
            assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
            assert!(!text.ends_with('.'), "{text}");
        }
    }
}
