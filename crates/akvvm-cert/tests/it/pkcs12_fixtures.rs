//! Every PKCS#12 variant akvvm must open (issue 4 item 1), from real Key Vault answers and from
//! OpenSSL 3 (crates/akvvm-testkit/fixtures/pkcs12/README.md), compared against fully spelled-out values.

use akvvm_cert::certificate::{
    CertificateBundle, EcCurve, KeyType, San, decode_pfx, decode_secret,
};
use akvvm_testkit::certs::assert_same_secret;
use akvvm_testkit::fixtures;
use time::macros::datetime;

const PASSWORD: &str = "correct horse";
const ROOT: &str = "CN=akvvm Test Root CA,O=akvvm test,C=US";
const INTERMEDIATE: &str = "CN=akvvm Test Intermediate CA,O=akvvm test,C=US";
const ROOT_THUMBPRINT: &str = "9AC8EB76BAA4CDB379A2A5A152EF4192FBD9C972";
const INTERMEDIATE_THUMBPRINT: &str = "9AB05F3C22EF7DE47769263835F5FB0EBCD3C3A0";

fn open(name: &str, password: &str) -> CertificateBundle {
    decode_pfx(&fixtures::bytes(&format!("pkcs12/{name}")), password)
        .unwrap_or_else(|e| panic!("{name}: [{}] {e}", e.code()))
}

/// What the tests expect of one of the OpenSSL-made leaves.
struct Leaf {
    subject: &'static str,
    serial: &'static str,
    thumbprint: &'static str,
    sha256: &'static str,
    key_type: KeyType,
    dns: [&'static str; 2],
}

const RSA2048: Leaf = Leaf {
    subject: "CN=rsa2048.example.test,O=akvvm test",
    serial: "2276372290C31113",
    thumbprint: "9F5F05E23343FA08A8BD070A5B448B185837CF0D",
    sha256: "BBD398F70D33F743802F75E9E07E04D8974A9E63F3057643B3F06744FF94278E",
    key_type: KeyType::Rsa { bits: 2048 },
    dns: ["rsa2048.example.test", "www.rsa2048.example.test"],
};
const ECP256: Leaf = Leaf {
    subject: "CN=ecp256.example.test,O=akvvm test",
    serial: "FA0F40DAAA199EE8",
    thumbprint: "DC779FC349B28E8A104AC632E45B68A5F35461F8",
    sha256: "D86BA13E4E47D677394D3D3A571ACCBD1447335FAA9B6EE7463E743D65640BF7",
    key_type: KeyType::Ec {
        curve: EcCurve::P256,
    },
    dns: ["ecp256.example.test", "www.ecp256.example.test"],
};
const ECP384: Leaf = Leaf {
    subject: "CN=ecp384.example.test,O=akvvm test",
    serial: "768F7E6DF9497B36",
    thumbprint: "267231972C0BEBCB58B38AE40DC8123B3CF66467",
    sha256: "9B0CC7F26D168ACFAB0917FCAACEE50880A91EE0807D5D636B90451D5B14376D",
    key_type: KeyType::Ec {
        curve: EcCurve::P384,
    },
    dns: ["ecp384.example.test", "www.ecp384.example.test"],
};
const ECP521: Leaf = Leaf {
    subject: "CN=ecp521.example.test,O=akvvm test",
    serial: "BFE70B04EE7DB58D",
    thumbprint: "F2BF0E46BC5959B41749C642C857D831C79022C3",
    sha256: "4ED37F6AEDCD9C7222158581E6851C131CF816E972DF78619812ED32F7AC760A",
    key_type: KeyType::Ec {
        curve: EcCurve::P521,
    },
    dns: ["ecp521.example.test", "www.ecp521.example.test"],
};

fn assert_leaf(bundle: &CertificateBundle, leaf: &Leaf) {
    assert_eq!(bundle.leaf.subject, leaf.subject);
    assert_eq!(bundle.leaf.issuer, INTERMEDIATE);
    assert_eq!(bundle.leaf.serial, leaf.serial);
    assert_eq!(bundle.thumbprint(), leaf.thumbprint);
    assert_eq!(bundle.sha256_fingerprint(), leaf.sha256);
    assert_eq!(bundle.key.key_type(), &leaf.key_type);
    assert_eq!(bundle.leaf.key_type, leaf.key_type);
    assert_eq!(
        bundle.leaf.sans,
        vec![
            San::Dns(leaf.dns[0].into()),
            San::Dns(leaf.dns[1].into()),
            San::Ip("192.0.2.10".parse().expect("an IP address")),
        ]
    );
    assert_eq!(bundle.leaf.not_after, datetime!(2126-10-29 04:53:22 UTC));
    assert_eq!(bundle.not_after(), datetime!(2126-10-29 04:53:22 UTC));
    assert_eq!(bundle.leaf.not_before, datetime!(2026-11-22 04:53:22 UTC));
    assert!(!bundle.leaf.is_ca);
    assert!(bundle.key.matches(&bundle.leaf));
}

/// The PFX files list the root before the intermediate: the bundle must not.
fn assert_full_chain(bundle: &CertificateBundle) {
    let chain: Vec<(&str, String)> = bundle
        .chain
        .iter()
        .map(|c| (c.subject.as_str(), c.thumbprint()))
        .collect();
    assert_eq!(
        chain,
        vec![
            (INTERMEDIATE, INTERMEDIATE_THUMBPRINT.to_string()),
            (ROOT, ROOT_THUMBPRINT.to_string()),
        ]
    );
    assert_eq!(bundle.chain[0].issuer, ROOT);
    assert_eq!(bundle.chain[0].key_type, KeyType::Rsa { bits: 3072 });
    assert_eq!(
        bundle.chain[1].key_type,
        KeyType::Ec {
            curve: EcCurve::P384
        }
    );
    assert!(bundle.chain.iter().all(|c| c.is_ca));
    assert!(bundle.warnings.is_empty(), "{:?}", bundle.warnings);
}

#[test]
fn keyvault_2020_pfx_3des_key_rc2_certs_mac_iterations_left_out() {
    let value = fixtures::text("pkcs12/kv-rsa2048-rc2-2020.pfx.b64");
    let der = base64_decode(&value);
    assert_eq!(
        akvvm_cert::pkcs12::mac_summary(&der).expect("MacData"),
        Some(("1.3.14.3.2.26".to_string(), None)),
        "this real Key Vault file leaves the MAC iteration count out"
    );
    let bundle = decode_secret(Some("application/x-pkcs12"), &value).expect("Key Vault PFX");
    assert_eq!(bundle.leaf.subject, "CN=MyCert");
    assert_eq!(bundle.leaf.issuer, "CN=MyCert");
    assert_eq!(bundle.leaf.serial, "095953B21D1B4BB788CF41E723C0F7A4");
    // Key Vault's x5t for this version is 191IPPKwek_3mOK94Dtd6vDstI4 (base64url of the same).
    assert_eq!(
        bundle.thumbprint(),
        "D7DD483CF2B07A4FF798E2BDE03B5DEAF0ECB48E"
    );
    assert_eq!(
        bundle.sha256_fingerprint(),
        "9DDFCB0AD7C0BEB676B216B61CA529B93A74282E7A2E9956EAF55E0E4F9FF1B9"
    );
    assert_eq!(bundle.leaf.not_before, datetime!(2020-06-25 12:59:45 UTC));
    assert_eq!(bundle.leaf.not_after, datetime!(2021-06-25 13:09:45 UTC));
    assert_eq!(bundle.key.key_type(), &KeyType::Rsa { bits: 2048 });
    assert!(bundle.leaf.sans.is_empty());
    // Self-signed: a complete chain of one.
    assert!(bundle.chain.is_empty());
    assert!(bundle.warnings.is_empty(), "{:?}", bundle.warnings);
    assert_eq!(
        bundle
            .leaf
            .subject_key_id
            .as_deref()
            .map(hex::encode_upper)
            .as_deref(),
        Some("66434D2E7D14FEEDA6EEA971499148E10E02A57E")
    );
}

#[test]
fn keyvault_2021_pfx_3des_everywhere_mac_with_2000_iterations() {
    let value = fixtures::text("pkcs12/kv-rsa2048-js.pfx.b64");
    assert_eq!(
        akvvm_cert::pkcs12::mac_summary(&base64_decode(&value)).expect("MacData"),
        Some(("1.3.14.3.2.26".to_string(), Some(2000)))
    );
    // No content type: recognised as a base64 PFX.
    let bundle = decode_secret(None, &value).expect("Key Vault PFX");
    assert_eq!(bundle.leaf.subject, "CN=MyCert");
    assert_eq!(bundle.leaf.serial, "748A544DD57D42C59AB3F36330B733A2");
    // x5t a3smTonNIUP_pLaBLH80RuxPGOc
    assert_eq!(
        bundle.thumbprint(),
        "6B7B264E89CD2143FFA4B6812C7F3446EC4F18E7"
    );
    assert_eq!(
        bundle.sha256_fingerprint(),
        "A159BB04331615EDBB2649256D11008CB8CC6A665006680D0E54BF62B3127912"
    );
    assert_eq!(bundle.leaf.not_before, datetime!(2021-04-28 20:17:49 UTC));
    assert_eq!(bundle.leaf.not_after, datetime!(2022-04-28 20:27:49 UTC));
    assert_eq!(bundle.key.key_type(), &KeyType::Rsa { bits: 2048 });
    assert_eq!(
        bundle
            .leaf
            .authority_key_id
            .as_deref()
            .map(hex::encode_upper)
            .as_deref(),
        Some("DF5C0E650DFC2D7F735FC3F41E8F1BB697AD4196")
    );
    assert!(bundle.chain.is_empty());
    assert!(bundle.warnings.is_empty());
}

#[test]
fn openssl3_default_aes256_sha256_mac_with_password() {
    let bundle = open("openssl3-aes-rsa2048.pfx", PASSWORD);
    assert_leaf(&bundle, &RSA2048);
    assert_full_chain(&bundle);
    assert_eq!(
        akvvm_cert::pkcs12::mac_summary(&fixtures::bytes("pkcs12/openssl3-aes-rsa2048.pfx"))
            .expect("MacData")
            .map(|(oid, _)| oid),
        Some("2.16.840.1.101.3.4.2.1".to_string()),
        "OpenSSL 3's default MAC is HMAC-SHA256"
    );
}

#[test]
fn openssl3_default_with_empty_password_uses_the_two_zero_byte_form() {
    let bundle = open("openssl3-aes-emptypass-rsa2048.pfx", "");
    assert_leaf(&bundle, &RSA2048);
    assert_full_chain(&bundle);
}

#[test]
fn ec_keys_on_p256_p384_p521() {
    for (file, leaf) in [
        ("openssl3-aes-ecp256.pfx", &ECP256),
        ("openssl3-aes-ecp384.pfx", &ECP384),
        ("openssl3-aes-ecp521.pfx", &ECP521),
    ] {
        let bundle = open(file, PASSWORD);
        assert_leaf(&bundle, leaf);
        assert_full_chain(&bundle);
    }
}

#[test]
fn openssl_legacy_rc2_and_3des_with_and_without_password() {
    let bundle = open("openssl-legacy-rsa2048.pfx", PASSWORD);
    assert_leaf(&bundle, &RSA2048);
    assert_full_chain(&bundle);
    let bundle = open("openssl-legacy-emptypass-ecp256.pfx", "");
    assert_leaf(&bundle, &ECP256);
    assert_full_chain(&bundle);
}

#[test]
fn without_mac_and_without_encryption() {
    assert_eq!(
        akvvm_cert::pkcs12::mac_summary(&fixtures::bytes("pkcs12/openssl3-nomac-rsa2048.pfx"))
            .expect("PFX"),
        None
    );
    let bundle = open("openssl3-nomac-rsa2048.pfx", PASSWORD);
    assert_leaf(&bundle, &RSA2048);
    assert_full_chain(&bundle);
    let bundle = open("openssl3-unencrypted-ecp384.pfx", "");
    assert_leaf(&bundle, &ECP384);
    assert_full_chain(&bundle);
}

#[test]
fn a_leaf_without_its_issuers_loads_with_an_incomplete_chain_warning() {
    let bundle = open("openssl3-leafonly-ecp521.pfx", "");
    assert_leaf(&bundle, &ECP521);
    assert!(bundle.chain.is_empty());
    assert_eq!(
        bundle.warnings,
        vec![format!(
            "the chain is incomplete: no certificate for \"{INTERMEDIATE}\", the issuer of \
             \"{subject}\"; clients that lack it will not trust \"{subject}\"",
            subject = ECP521.subject
        )]
    );
}

#[test]
fn the_store_pem_lists_leaf_intermediate_root_then_the_key() {
    let bundle = open("openssl3-aes-ecp256.pfx", PASSWORD);
    let pem = bundle.to_pem();
    let labels: Vec<&str> = pem
        .lines()
        .filter(|l| l.starts_with("-----BEGIN "))
        .collect();
    assert_eq!(
        labels,
        vec![
            "-----BEGIN CERTIFICATE-----",
            "-----BEGIN CERTIFICATE-----",
            "-----BEGIN CERTIFICATE-----",
            "-----BEGIN PRIVATE KEY-----",
        ]
    );
    assert!(pem.lines().all(|l| l.len() <= 64));
    assert_same_secret(
        &*pem,
        format!("{}{}", bundle.fullchain_pem(), *bundle.key_pem()),
        "the store PEM",
    );
    assert_eq!(
        bundle.fullchain_pem(),
        format!("{}{}", bundle.leaf_pem(), bundle.chain_pem())
    );
    // The store file decodes back to the same bundle.
    let again = akvvm_cert::certificate::decode_pem(&pem).expect("store PEM");
    assert_eq!(again.thumbprint(), ECP256.thumbprint);
    assert_same_secret(again.key.pkcs8_der(), bundle.key.pkcs8_der(), "the key");
    assert_eq!(
        again
            .chain
            .iter()
            .map(|c| c.thumbprint())
            .collect::<Vec<_>>(),
        vec![INTERMEDIATE_THUMBPRINT, ROOT_THUMBPRINT]
    );
}

#[test]
fn private_key_debug_output_never_shows_key_material() {
    let bundle = open("openssl3-aes-rsa2048.pfx", PASSWORD);
    let debug = format!("{bundle:?}");
    assert!(debug.contains("<redacted>"));
    let key_b64 = base64_encode(bundle.key.pkcs8_der());
    assert!(!debug.contains(&key_b64[..40]));
    let der_hex_prefix = format!("{:?}", &bundle.key.pkcs8_der()[..24]);
    assert!(!debug.contains(&der_hex_prefix));
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    let compact: String = text.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .expect("base64 fixture")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
