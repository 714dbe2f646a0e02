//! The certificates the benchmarks serve: RSA 2048 leaves issued by an RSA 2048 intermediate and
//! root (a 3-certificate chain), each encoded as Key Vault stores a certificate's secret (a PFX
//! made by [`akvvm_cert::pkcs12::encode_keyvault`], base64, `application/x-pkcs12`). A small pool
//! is made once per run; every observed certificate takes a value from it, and a rotation moves
//! a certificate to another value, so every new version installs different bytes.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_RSA_SHA256, RsaKeySize,
};
use time::{Duration, OffsetDateTime};

/// The content type of a certificate's secret in Key Vault.
pub const PFX: &str = "application/x-pkcs12";

/// Secret values (base64 Key Vault PFX), all different.
pub struct Pool {
    pub values: Vec<String>,
}

fn rsa_key() -> anyhow::Result<KeyPair> {
    KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
        .context("failed to generate an RSA 2048 key")
}

impl Pool {
    /// `size` leaves under one intermediate and root.
    pub fn generate(size: usize) -> anyhow::Result<Pool> {
        let now = OffsetDateTime::now_utc();
        let ca_params = |cn: &str| -> anyhow::Result<CertificateParams> {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, cn);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.use_authority_key_identifier_extension = true;
            params.not_before = now - Duration::days(1);
            params.not_after = now + Duration::days(3650);
            Ok(params)
        };
        let root = CertifiedIssuer::self_signed(ca_params("akvvm bench root")?, rsa_key()?)?;
        let intermediate =
            CertifiedIssuer::signed_by(ca_params("akvvm bench intermediate")?, rsa_key()?, &root)?;
        let mut values = Vec::with_capacity(size);
        for i in 0..size {
            let host = format!("bench{i}.example.com");
            let mut params = CertificateParams::new(vec![host.clone()])?;
            params.distinguished_name.push(DnType::CommonName, host);
            params.use_authority_key_identifier_extension = true;
            params.not_before = now - Duration::days(1);
            params.not_after = now + Duration::days(365);
            let key = rsa_key()?;
            let leaf = params.signed_by(&key, &intermediate)?;
            let chain = vec![
                leaf.der().to_vec(),
                intermediate.der().to_vec(),
                root.der().to_vec(),
            ];
            let pfx = akvvm_cert::pkcs12::encode_keyvault(&key.serialize_der(), &chain)
                .context("failed to encode a Key Vault PFX")?;
            values.push(STANDARD.encode(pfx));
        }
        Ok(Pool { values })
    }

    /// The value of certificate `i` at its `generation`-th version.
    pub fn value(&self, i: usize, generation: usize) -> &str {
        &self.values[(i + generation) % self.values.len()]
    }
}
