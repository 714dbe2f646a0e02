//! `encode_keyvault` writes a PFX the way Key Vault does, and both akvvm and OpenSSL read it.

use std::process::Command;

use akvvm_cert::certificate::{decode_pem, decode_pfx, decode_secret};
use akvvm_cert::pkcs12;
use akvvm_testkit::certs::assert_same_secret;
use akvvm_testkit::fixtures;

/// Key, leaf and chain of a fixture, as DER, leaf first.
fn parts(name: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let bundle = decode_pem(&fixtures::text(&format!("pem/{name}"))).expect("fixture bundle");
    let mut certs = vec![bundle.leaf.der().to_vec()];
    certs.extend(bundle.chain.iter().map(|c| c.der().to_vec()));
    (bundle.key.pkcs8_der().to_vec(), certs)
}

#[test]
fn round_trip_rsa_and_ec_with_chains() {
    for name in [
        "rsa2048-shuffled.pem",
        "ecp256.pem",
        "ecp384-sec1-noroot.pem",
    ] {
        let (key, certs) = parts(name);
        let pfx = pkcs12::encode_keyvault(&key, &certs).expect("encode");
        let contents = pkcs12::decode(&pfx, "").expect("decode our own PFX");
        assert_eq!(contents.keys.len(), 1);
        assert_same_secret(&contents.keys[0], &key, name);
        assert_eq!(contents.certs, certs, "{name}: certificates in order");
        let bundle = decode_pfx(&pfx, "").expect("bundle");
        assert_eq!(bundle.leaf.der(), certs[0].as_slice());
    }
}

#[test]
fn the_encoding_is_keyvaults() {
    let (key, certs) = parts("rsa2048-shuffled.pem");
    let pfx = pkcs12::encode_keyvault(&key, &certs).expect("encode");
    // HMAC-SHA1 with the iteration count left out.
    assert_eq!(
        pkcs12::mac_summary(&pfx).expect("MacData"),
        Some(("1.3.14.3.2.26".to_string(), None))
    );
    let has = |needle: &[u8]| pfx.windows(needle.len()).any(|w| w == needle);
    // pbeWithSHA1And3-KeyTripleDES-CBC (1.2.840.113549.1.12.1.3) for the key bag...
    assert!(has(&[
        0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03
    ]));
    // ...and pbeWithSHA1And40BitRC2-CBC (1.2.840.113549.1.12.1.6) for the certificates.
    assert!(has(&[
        0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06
    ]));
    // Key Vault's zero-length password (the unit tests in src/pkcs12.rs check that the MAC
    // verifies with zero bytes and not with OpenSSL's two): an empty-password secret opens.
    let value = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&pfx)
    };
    let bundle = decode_secret(Some("application/x-pkcs12"), &value).expect("as a secret");
    assert_eq!(
        bundle.thumbprint(),
        "9F5F05E23343FA08A8BD070A5B448B185837CF0D"
    );
    // Salts are random: two encodings differ, both decode.
    let again = pkcs12::encode_keyvault(&key, &certs).expect("encode");
    assert!(pfx != again, "two encodings of one key came out identical");
    assert!(pkcs12::decode(&again, "").is_ok());
}

#[test]
fn a_wrong_password_fails_on_our_encoding() {
    let (key, certs) = parts("ecp256.pem");
    let pfx = pkcs12::encode_keyvault(&key, &certs).expect("encode");
    let err = pkcs12::decode(&pfx, "not empty").expect_err("wrong password");
    assert_eq!(err.code(), "cert.pfx_bad_password");
}

#[test]
fn encode_rejects_bad_input() {
    let (key, certs) = parts("ecp256.pem");
    let err = pkcs12::encode_keyvault(b"not a key", &certs).expect_err("bad key");
    assert_eq!(err.code(), "cert.pfx_encode");
    let err = pkcs12::encode_keyvault(&key, &[]).expect_err("no certificates");
    assert_eq!(err.code(), "cert.pfx_encode");
}

/// OpenSSL reads what akvvm writes. OpenSSL tries an empty password both as zero bytes and as
/// two zero bytes (its MAC check falls back from one to the other), so `-passin pass:` opens
/// Key Vault's zero-length form; RC2 needs `-legacy` under OpenSSL 3.
#[test]
fn openssl_reads_our_encoding() {
    if !akvvm_cert::machine::require_program("openssl_reads_our_encoding", "openssl", &["version"])
    {
        return;
    }
    let (key, certs) = parts("rsa2048-shuffled.pem");
    let pfx = pkcs12::encode_keyvault(&key, &certs).expect("encode");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kv.pfx");
    std::fs::write(&path, &pfx).expect("write");
    let out = Command::new("openssl")
        .args(["pkcs12", "-legacy", "-nokeys", "-passin", "pass:", "-in"])
        .arg(&path)
        .output()
        .expect("run openssl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("-----BEGIN CERTIFICATE-----").count(), 3);
    assert!(stdout.contains("subject=O = akvvm test, CN = rsa2048.example.test"));

    let info = Command::new("openssl")
        .args([
            "pkcs12", "-legacy", "-info", "-noout", "-passin", "pass:", "-in",
        ])
        .arg(&path)
        .output()
        .expect("run openssl");
    let text =
        String::from_utf8_lossy(&info.stderr).to_string() + &String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "openssl -info failed: {text}");
    assert!(text.contains("MAC: sha1, Iteration 1"), "{text}");
    assert!(
        text.contains("Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2000"),
        "{text}"
    );
    assert!(
        text.contains("PKCS7 Encrypted data: pbeWithSHA1And40BitRC2-CBC, Iteration 2000"),
        "{text}"
    );

    // And the private key OpenSSL extracts is ours (compare the public halves).
    let key_out = Command::new("openssl")
        .args([
            "pkcs12", "-legacy", "-nocerts", "-nodes", "-passin", "pass:", "-in",
        ])
        .arg(&path)
        .output()
        .expect("run openssl");
    assert!(key_out.status.success());
    let extracted = String::from_utf8_lossy(&key_out.stdout);
    let start = extracted
        .find("-----BEGIN PRIVATE KEY-----")
        .expect("a key");
    let bundle = decode_pem(&format!(
        "{}{}",
        &extracted[start..],
        fixtures::text("pem/rsa2048-shuffled.pem")
            .split("-----END PRIVATE KEY-----")
            .nth(1)
            .expect("certificates after the key")
    ))
    .expect("OpenSSL's key matches our leaf");
    assert_eq!(
        bundle.thumbprint(),
        "9F5F05E23343FA08A8BD070A5B448B185837CF0D"
    );
}
