//! Real certificates for the store tests: a root, an intermediate and a leaf made with rcgen,
//! decoded through akvvm's own PEM decoder so the store gets what the agent would give it.

use akvvm_cert::certificate::{CONTENT_TYPE_PEM, CertificateBundle, decode_secret};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A generated certificate: its PEM (key first, certificates out of order, as Key Vault may
/// return them) and the bundle decoded from it.
pub struct Generated {
    pub pem: String,
    pub bundle: CertificateBundle,
}

/// A leaf for `host` valid for `days` days, issued by a fresh intermediate and root.
pub fn generate(host: &str, days: i64) -> Generated {
    let now = OffsetDateTime::now_utc();
    let ca_params = |cn: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(days + 365);
        params
    };
    let root = CertifiedIssuer::self_signed(
        ca_params(&format!("{host} test root")),
        KeyPair::generate().unwrap(),
    )
    .unwrap();
    let intermediate = CertifiedIssuer::signed_by(
        ca_params(&format!("{host} test intermediate")),
        KeyPair::generate().unwrap(),
        &root,
    )
    .unwrap();
    let mut params = CertificateParams::new(vec![host.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, host);
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(days);
    let key = KeyPair::generate().unwrap();
    let leaf = params.signed_by(&key, &intermediate).unwrap();
    let pem = format!(
        "{}{}{}{}",
        key.serialize_pem(),
        root.pem(),
        leaf.pem(),
        intermediate.pem()
    );
    let bundle = decode_secret(Some(CONTENT_TYPE_PEM), &pem).unwrap();
    assert_eq!(
        bundle.chain.len(),
        2,
        "leaf, intermediate and root expected"
    );
    Generated { pem, bundle }
}

/// The labels of the PEM blocks in `text`, in order.
pub fn pem_labels(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("-----BEGIN "))
        .map(|rest| rest.trim_end_matches('-').to_owned())
        .collect()
}

/// Fails when two texts or byte strings holding key material differ, showing only their lengths
/// and SHA-256 digests: a private key never reaches the test output.
#[track_caller]
pub fn assert_same_secret(actual: impl AsRef<[u8]>, expected: impl AsRef<[u8]>, what: &str) {
    use sha2::{Digest, Sha256};
    let (actual, expected) = (actual.as_ref(), expected.as_ref());
    let digest = |bytes: &[u8]| hex::encode(&Sha256::digest(bytes)[..8]);
    assert!(
        actual == expected,
        "{what} differs (key material, not shown): {} bytes, sha256 {}.., where {} bytes, \
         sha256 {}.. were expected",
        actual.len(),
        digest(actual),
        expected.len(),
        digest(expected)
    );
}
