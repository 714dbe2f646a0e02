//! Real Key Vault secret values for certificates (issue 4 item 1), taken from the Azure SDK for
//! .NET's public test recordings (crates/akvvm-testkit/fixtures/pkcs12/README.md says which test and when). Each
//! is compared with what the same recording says about the certificate: its `x5t` (the SHA-1
//! thumbprint), serial, `nbf`/`exp` and the public key of the key Key Vault made for it.

use std::os::unix::fs::PermissionsExt;

use akvvm_cert::certificate::{CertificateBundle, EcCurve, KeyType, decode_pem, decode_secret};
use akvvm_cert::store::{DEFAULT_KEEP, InstallRequest, Store};
use akvvm_testkit::certs::{assert_same_secret, pem_labels};
use akvvm_testkit::fixtures;
use time::macros::datetime;

const KEY_VAULT_MAC: (&str, Option<u32>) = ("1.3.14.3.2.26", Some(2000));

/// Decodes a base64 PFX answer the way the agent does (content type from the answer, empty
/// password) and checks Key Vault's MAC parameters on the way.
fn pfx_answer(name: &str) -> CertificateBundle {
    let value = fixtures::text(&format!("pkcs12/{name}"));
    let der = akvvm_cert::certificate::pfx_base64(&value).expect("base64 PFX");
    let mac = akvvm_cert::pkcs12::mac_summary(&der).expect("a PFX with MacData");
    assert_eq!(
        mac.as_ref()
            .map(|(oid, iterations)| (oid.as_str(), *iterations)),
        Some(KEY_VAULT_MAC),
        "{name}: Key Vault MACs with HMAC-SHA1 over 2000 iterations"
    );
    decode_secret(Some("application/x-pkcs12"), &value)
        .unwrap_or_else(|e| panic!("{name}: [{}] {e}", e.code()))
}

/// Base64url (as in `x5t`) of the upper-case hex thumbprint.
fn x5t(thumbprint: &str) -> String {
    use base64::Engine as _;
    let bytes = hex::decode(thumbprint).expect("hex thumbprint");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The uncompressed EC point of a JWK's `x` and `y`, which must appear in the leaf's
/// SubjectPublicKeyInfo.
fn assert_leaf_holds_jwk_point(bundle: &CertificateBundle, x: &str, y: &str) {
    use base64::Engine as _;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut point = vec![0x04];
    point.extend(b64url.decode(x).expect("jwk x"));
    point.extend(b64url.decode(y).expect("jwk y"));
    assert!(
        bundle.leaf.der().windows(point.len()).any(|w| w == point),
        "the leaf's public key is not the key Key Vault reported"
    );
}

/// What every self-signed Key Vault certificate made by these tests has in common.
fn assert_self_signed_default(bundle: &CertificateBundle) {
    assert_eq!(bundle.leaf.subject, "CN=default");
    assert_eq!(bundle.leaf.issuer, "CN=default");
    assert!(bundle.leaf.sans.is_empty());
    assert!(!bundle.leaf.is_ca);
    assert!(bundle.key.matches(&bundle.leaf));
    assert!(bundle.chain.is_empty(), "self-signed: a chain of one");
    assert!(bundle.warnings.is_empty(), "{:?}", bundle.warnings);
    // Key Vault's self-signed certificates name themselves in both key identifiers.
    assert!(bundle.leaf.subject_key_id.is_some());
    assert_eq!(bundle.leaf.subject_key_id, bundle.leaf.authority_key_id);
}

#[test]
fn keyvault_ec_p256_pfx() {
    let bundle = pfx_answer("kv-ecp256-net-2021.pfx.b64");
    assert_self_signed_default(&bundle);
    let ec = KeyType::Ec {
        curve: EcCurve::P256,
    };
    assert_eq!(bundle.key.key_type(), &ec);
    assert_eq!(bundle.leaf.key_type, ec);
    assert_eq!(
        bundle.thumbprint(),
        "35A0201B94EAB59EDFEC709FA7015F53A15E7F3F"
    );
    assert_eq!(x5t(&bundle.thumbprint()), "NaAgG5TqtZ7f7HCfpwFfU6Fefz8");
    assert_eq!(
        bundle.sha256_fingerprint(),
        "1FBEC0DDB3CECDE9C5C62D863181F7A27A618720AB2803FAB0F7B4AE3071EAB4"
    );
    assert_eq!(bundle.leaf.serial, "365B2F15562847AC9B9B904B9574AF4F");
    // nbf 1626228114, exp 1657764714 in the recording.
    assert_eq!(bundle.leaf.not_before, datetime!(2021-07-14 02:01:54 UTC));
    assert_eq!(bundle.leaf.not_after, datetime!(2022-07-14 02:11:54 UTC));
    assert_leaf_holds_jwk_point(
        &bundle,
        "MbWePwPA1Iagdl5awQ2fb8_94nNXIrDBN0M4rxwa2ds",
        "PFY3qccGBnIVAoNADyfQQv02LjH0EYxWRvyQJAto3BM",
    );
}

#[test]
fn keyvault_ec_p384_pfx() {
    let bundle = pfx_answer("kv-ecp384-net-2021.pfx.b64");
    assert_self_signed_default(&bundle);
    let ec = KeyType::Ec {
        curve: EcCurve::P384,
    };
    assert_eq!(bundle.key.key_type(), &ec);
    assert_eq!(bundle.leaf.key_type, ec);
    assert_eq!(
        bundle.thumbprint(),
        "ED6AA5CB0EE3B9B4D857BA5F5CBB22D36F309CC3"
    );
    assert_eq!(x5t(&bundle.thumbprint()), "7Wqlyw7jubTYV7pfXLsi028wnMM");
    assert_eq!(
        bundle.sha256_fingerprint(),
        "886A8AD9B0908F95F8626D07FCE136A5D6D42052EB8F447B8D428DEF37C6BC1D"
    );
    // The recording's "serialnumber".
    assert_eq!(bundle.leaf.serial, "66BCAD1697654D6C87705E8C781607F1");
    // nbf 1614984557, exp 1646521157.
    assert_eq!(bundle.leaf.not_before, datetime!(2021-03-05 22:49:17 UTC));
    assert_eq!(bundle.leaf.not_after, datetime!(2022-03-05 22:59:17 UTC));
    assert_leaf_holds_jwk_point(
        &bundle,
        "Oxy2RC5BJYkRZfZDyMLy8kJD4sPyzz-l5YJGXgact06DfYywLpQeGgfKXtWUDgk5",
        "TqXzNoE5dwzvU6n7TNqmz1qdpMp1giw5ZlkU4KLCPOiUTsDa5Kifn2fRZArTTitc",
    );
}

#[test]
fn keyvault_ec_p521_pfx() {
    let bundle = pfx_answer("kv-ecp521-net-2022.pfx.b64");
    assert_self_signed_default(&bundle);
    let ec = KeyType::Ec {
        curve: EcCurve::P521,
    };
    assert_eq!(bundle.key.key_type(), &ec);
    assert_eq!(bundle.leaf.key_type, ec);
    assert_eq!(
        bundle.thumbprint(),
        "9C9506B9C0918D99482F84A4C0808BC1AF6390D2"
    );
    assert_eq!(x5t(&bundle.thumbprint()), "nJUGucCRjZlIL4SkwICLwa9jkNI");
    assert_eq!(
        bundle.sha256_fingerprint(),
        "F2045FB538B8CDA325C8E259A9F11521E8DF4CA391609E55ABD3B838CE085E15"
    );
    assert_eq!(bundle.leaf.serial, "7530BC85DE614C48818F7339CEBD51D7");
    // nbf 1648059659, exp 1679596259.
    assert_eq!(bundle.leaf.not_before, datetime!(2022-03-23 18:20:59 UTC));
    assert_eq!(bundle.leaf.not_after, datetime!(2023-03-23 18:30:59 UTC));
    assert_leaf_holds_jwk_point(
        &bundle,
        "AG9k5ghsm7LLMO2vr4Jn5hUlIzXMoiV0jUiJI76yQi5_-nKYUaLM0v9wSrCWC5mPKuPS3tEvksIwClv4XPyNa1sA",
        "AQInlurrU4AIFowetLaLHMxs2HNrt3FhLH-8rZ6V0MBuQe-fbv4ayuTodP_RpA0oJNlmNy0k_ldtXudD-YbQ1vrH",
    );
}

#[test]
fn keyvault_rsa_pfx_from_a_2022_service_version() {
    let bundle = pfx_answer("kv-rsa2048-net-2022.pfx.b64");
    assert_self_signed_default(&bundle);
    assert_eq!(bundle.key.key_type(), &KeyType::Rsa { bits: 2048 });
    assert_eq!(bundle.leaf.key_type, KeyType::Rsa { bits: 2048 });
    assert_eq!(
        bundle.thumbprint(),
        "7E1745F6B58847A8F9568654C1D761817BA23645"
    );
    assert_eq!(x5t(&bundle.thumbprint()), "fhdF9rWIR6j5VoZUwddhgXuiNkU");
    assert_eq!(
        bundle.sha256_fingerprint(),
        "89BD0B04BC1954DD07CAAF4CCAE5D6F6B5DC598E84CF077E1E728A39D434B2A9"
    );
    assert_eq!(bundle.leaf.serial, "17D19F3A105347B3BDA0F4847A14A7EE");
    // nbf 1648059819, exp 1679596419.
    assert_eq!(bundle.leaf.not_before, datetime!(2022-03-23 18:23:39 UTC));
    assert_eq!(bundle.leaf.not_after, datetime!(2023-03-23 18:33:39 UTC));
}

#[test]
fn keyvault_ec_p256_pem_key_first_with_pkcs8_attributes() {
    // Key Vault's PEM answer lists the key before the certificate, and its PKCS#8 key carries an
    // attribute (key usage) that a strict reader could trip on.
    let value = fixtures::text("pem/kv-ecp256-net-2021.pem");
    let labels: Vec<&str> = value
        .lines()
        .filter(|l| l.starts_with("-----BEGIN "))
        .collect();
    assert_eq!(
        labels,
        ["-----BEGIN PRIVATE KEY-----", "-----BEGIN CERTIFICATE-----"]
    );
    let bundle = decode_secret(Some("application/x-pem-file"), &value)
        .unwrap_or_else(|e| panic!("[{}] {e}", e.code()));
    assert_self_signed_default(&bundle);
    let ec = KeyType::Ec {
        curve: EcCurve::P256,
    };
    assert_eq!(bundle.key.key_type(), &ec);
    assert_eq!(
        bundle.thumbprint(),
        "A93C2BD5896F99DF3E8357CCD4293B1CAB0235EE"
    );
    assert_eq!(x5t(&bundle.thumbprint()), "qTwr1Ylvmd8-g1fM1Ck7HKsCNe4");
    assert_eq!(
        bundle.sha256_fingerprint(),
        "BBBB7FAD448AECED2A500640644A5BBC8A7CB1B9A841D0C39DD1DFB793E8930E"
    );
    assert_eq!(bundle.leaf.serial, "080A32B050AD4594963608DC8B054CA1");
    // nbf 1617848399, exp 1649384999.
    assert_eq!(bundle.leaf.not_before, datetime!(2021-04-08 02:19:59 UTC));
    assert_eq!(bundle.leaf.not_after, datetime!(2022-04-08 02:29:59 UTC));
    assert_leaf_holds_jwk_point(
        &bundle,
        "r1GS2btyKSHv62ksvhQpV6uGwkPRSIhwMoiPkh6FmiQ",
        "u31BRAKB1EEPo4vaR5M5lRinopwa_xB0VodtRSXfTwc",
    );
    // The store writes it back leaf first, key last, and that reads the same.
    let again = akvvm_cert::certificate::decode_pem(&bundle.to_pem()).expect("store PEM");
    assert_eq!(again.thumbprint(), bundle.thumbprint());
    assert!(again.key.matches(&again.leaf));
}

#[test]
fn every_keyvault_answer_is_recognised_without_its_content_type() {
    // Sync passes the content type, but a secret set by hand may lack it: the form decides.
    for name in [
        "pkcs12/kv-ecp256-net-2021.pfx.b64",
        "pkcs12/kv-ecp384-net-2021.pfx.b64",
        "pkcs12/kv-ecp521-net-2022.pfx.b64",
        "pkcs12/kv-rsa2048-net-2022.pfx.b64",
        "pem/kv-ecp256-net-2021.pem",
    ] {
        let bundle = decode_secret(None, &fixtures::text(name))
            .unwrap_or_else(|e| panic!("{name}: [{}] {e}", e.code()));
        assert!(bundle.key.matches(&bundle.leaf), "{name}");
    }
}

#[test]
fn a_pem_answer_saved_with_crlf_line_ends_and_a_byte_order_mark_reads_the_same() {
    // What Windows tools make of the same value when it is saved and uploaded again.
    let value = fixtures::text("pem/kv-ecp256-net-2021.pem");
    let windows = format!("\u{feff}{}", value.replace('\n', "\r\n"));
    for content_type in [Some("application/x-pem-file"), None] {
        let bundle = decode_secret(content_type, &windows)
            .unwrap_or_else(|e| panic!("{content_type:?}: [{}] {e}", e.code()));
        assert_eq!(
            bundle.thumbprint(),
            "A93C2BD5896F99DF3E8357CCD4293B1CAB0235EE"
        );
        assert!(bundle.key.matches(&bundle.leaf));
    }
    // A base64 PFX value with a byte order mark and CRLF-wrapped lines, likewise.
    let pfx = fixtures::text("pkcs12/kv-ecp256-net-2021.pfx.b64");
    let wrapped: Vec<String> = pfx
        .trim()
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let windows = format!("\u{feff}{}\r\n", wrapped.join("\r\n"));
    for content_type in [Some("application/x-pkcs12"), None] {
        let bundle = decode_secret(content_type, &windows)
            .unwrap_or_else(|e| panic!("{content_type:?}: [{}] {e}", e.code()));
        assert_eq!(
            bundle.thumbprint(),
            "35A0201B94EAB59EDFEC709FA7015F53A15E7F3F"
        );
    }
}

#[test]
fn every_keyvault_answer_installs_into_the_store_and_reads_back() {
    // (fixture, content type, the recording's secret name and version)
    let answers = [
        (
            "pkcs12/kv-ecp256-net-2021.pfx.b64",
            "application/x-pkcs12",
            "1455109331",
            "36307d2fcdd142999c87412b51547193",
        ),
        (
            "pkcs12/kv-ecp384-net-2021.pfx.b64",
            "application/x-pkcs12",
            "192356644",
            "b2b25330cf944e16b7a61914be9e285e",
        ),
        (
            "pkcs12/kv-ecp521-net-2022.pfx.b64",
            "application/x-pkcs12",
            "652274975",
            "5a605a0159df45d49f48654fd027926f",
        ),
        (
            "pkcs12/kv-rsa2048-net-2022.pfx.b64",
            "application/x-pkcs12",
            "1845388769",
            "34bea50ec7274b4d844a04698b502925",
        ),
        (
            "pem/kv-ecp256-net-2021.pem",
            "application/x-pem-file",
            "601438262",
            "57f09a9616b34bcab49984e938106af2",
        ),
    ];
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    for (file, content_type, name, version) in answers {
        let bundle = decode_secret(Some(content_type), &fixtures::text(file)).expect(file);
        let installed = store
            .install(&InstallRequest {
                vault: "heathskvtest",
                name,
                version,
                bundle: &bundle,
                link_name: None,
                acls: &[],
                keep: DEFAULT_KEEP,
                certbot_layout: false,
            })
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            installed.link,
            store.path().join(format!("heathskvtest.{name}"))
        );
        let mode = std::fs::metadata(&installed.file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file}");
        // Through the stable link: the certificate, then the key, and the same certificate and
        // key as the answer.
        let text = std::fs::read_to_string(&installed.link).unwrap();
        assert_eq!(pem_labels(&text), ["CERTIFICATE", "PRIVATE KEY"], "{file}");
        let again = decode_pem(&text).expect(file);
        assert_eq!(again.thumbprint(), bundle.thumbprint(), "{file}");
        assert_same_secret(again.key.pkcs8_der(), bundle.key.pkcs8_der(), file);
        // OpenSSL loads both halves of the store file, as a web server would.
        let checks: [&[&str]; 2] = [&["x509", "-noout"], &["pkey", "-noout"]];
        let openssl = akvvm_cert::machine::require_program(
            "keyvault answers: openssl cross-check",
            "openssl",
            &["version"],
        );
        for args in checks.into_iter().filter(|_| openssl) {
            let out = std::process::Command::new("openssl")
                .args(args)
                .arg("-in")
                .arg(&installed.file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?} rejects the store file of {file}"
            );
        }
    }
}
