//! Chain ordering from the certificates themselves (issue 4 item 2): subject/issuer names first,
//! key identifiers to tell apart CAs that share a name, whatever order the secret lists them in.

use akvvm_cert::certificate::{CertificateBundle, decode_pem};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
};

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "akvvm chain test");
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = name(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.use_authority_key_identifier_extension = true;
    params
}

fn root(cn: &str) -> Ca {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).expect("key");
    let mut params = ca_params(cn);
    params.use_authority_key_identifier_extension = false;
    let pem = params.self_signed(&key).expect("root").pem();
    Ca { params, key, pem }
}

fn intermediate(cn: &str, issuer: &Ca) -> Ca {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let params = ca_params(cn);
    let pem = params
        .signed_by(&key, &Issuer::from_params(&issuer.params, &issuer.key))
        .expect("intermediate")
        .pem();
    Ca { params, key, pem }
}

/// A leaf signed by `issuer`: (its certificate PEM, its PKCS#8 key PEM).
fn leaf(dns: &str, issuer: &Ca) -> (String, String) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(vec![dns.to_string()]).expect("params");
    params.distinguished_name = name(dns);
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &Issuer::from_params(&issuer.params, &issuer.key))
        .expect("leaf");
    (cert.pem(), key.serialize_pem())
}

fn subjects(bundle: &CertificateBundle) -> Vec<String> {
    bundle.chain.iter().map(|c| c.subject.clone()).collect()
}

#[test]
fn a_reversed_chain_of_five_is_put_in_order() {
    let root = root("Root");
    let i1 = intermediate("Policy CA", &root);
    let i2 = intermediate("Issuing CA", &i1);
    let i3 = intermediate("Server CA", &i2);
    let (leaf_pem, key_pem) = leaf("www.example.test", &i3);
    let pem = [
        root.pem.as_str(),
        &i1.pem,
        &key_pem,
        &i2.pem,
        &i3.pem,
        &leaf_pem,
    ]
    .concat();
    let bundle = decode_pem(&pem).expect("bundle");
    assert_eq!(
        bundle.leaf.subject,
        "CN=www.example.test,O=akvvm chain test"
    );
    assert_eq!(
        subjects(&bundle),
        vec![
            "CN=Server CA,O=akvvm chain test",
            "CN=Issuing CA,O=akvvm chain test",
            "CN=Policy CA,O=akvvm chain test",
            "CN=Root,O=akvvm chain test",
        ]
    );
    for pair in std::iter::once(&bundle.leaf)
        .chain(bundle.chain.iter())
        .collect::<Vec<_>>()
        .windows(2)
    {
        assert!(pair[0].is_issued_by(pair[1]));
        assert_eq!(pair[0].authority_key_id, pair[1].subject_key_id);
    }
    assert!(bundle.chain.last().expect("root").is_self_issued());
    assert!(bundle.warnings.is_empty(), "{:?}", bundle.warnings);
}

#[test]
fn key_identifiers_pick_the_right_ca_among_two_with_the_same_name() {
    let root = root("Root");
    let old_ca = intermediate("Issuing CA", &root);
    let new_ca = intermediate("Issuing CA", &root);
    let (leaf_pem, key_pem) = leaf("renewed.example.test", &new_ca);
    // The old CA, same name, different key, comes first.
    let pem = [
        key_pem.as_str(),
        &leaf_pem,
        &old_ca.pem,
        &root.pem,
        &new_ca.pem,
    ]
    .concat();
    let bundle = decode_pem(&pem).expect("bundle");
    let new_ca_der = pem_der(&new_ca.pem);
    assert_eq!(bundle.chain.len(), 2);
    assert_eq!(bundle.chain[0].der(), new_ca_der.as_slice());
    assert_eq!(bundle.chain[1].subject, "CN=Root,O=akvvm chain test");
    assert_eq!(bundle.warnings.len(), 1, "{:?}", bundle.warnings);
    let old_thumbprint = akvvm_cert::certificate::Certificate::from_der(&pem_der(&old_ca.pem))
        .expect("old CA")
        .thumbprint();
    assert!(
        bundle.warnings[0].contains(&old_thumbprint)
            && bundle.warnings[0].contains("is not in the chain"),
        "{:?}",
        bundle.warnings
    );
}

#[test]
fn a_missing_intermediate_is_a_warning_naming_it() {
    let root = root("Root");
    let ca = intermediate("Issuing CA", &root);
    let (leaf_pem, key_pem) = leaf("partial.example.test", &ca);
    let bundle = decode_pem(&[key_pem.as_str(), &leaf_pem, &root.pem].concat()).expect("bundle");
    assert!(bundle.chain.is_empty());
    assert_eq!(bundle.warnings.len(), 2, "{:?}", bundle.warnings);
    assert!(bundle.warnings[0].starts_with(
        "the chain is incomplete: no certificate for \"CN=Issuing CA,O=akvvm chain test\""
    ));
    assert!(bundle.warnings[1].starts_with("certificate \"CN=Root,O=akvvm chain test\""));
}

#[test]
fn a_self_signed_leaf_is_a_complete_chain_of_one() {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(vec!["self.example.test".into()]).expect("params");
    params.distinguished_name = name("self.example.test");
    let cert = params.self_signed(&key).expect("cert");
    let bundle = decode_pem(&[key.serialize_pem(), cert.pem()].concat()).expect("bundle");
    assert!(bundle.chain.is_empty());
    assert!(bundle.warnings.is_empty());
    assert!(bundle.leaf.is_self_issued());
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body")
}
