//! Bad content (issue 4 item 5): each way a secret can fail has its own error code, and no input
//! makes a decoder panic.

use std::path::PathBuf;

use akvvm_cert::certificate::{decode_pem, decode_pfx, decode_secret};
use akvvm_cert::{CertError, pkcs12};
use akvvm_testkit::fixtures;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;

fn keyvault_pfx() -> Vec<u8> {
    let text = fixtures::text("pkcs12/kv-rsa2048-rc2-2020.pfx.b64");
    BASE64.decode(text.trim()).expect("base64 fixture")
}

fn code<T: std::fmt::Debug>(result: Result<T, CertError>) -> &'static str {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(err) => {
            // Every message is a sentence an operator can act on.
            assert!(!err.to_string().is_empty());
            err.code()
        }
    }
}

#[test]
fn not_a_certificate() {
    assert_eq!(
        code(decode_secret(Some("text/plain"), "hunter2")),
        "cert.not_a_certificate"
    );
    assert_eq!(code(decode_secret(None, "")), "cert.not_a_certificate");
    assert_eq!(
        code(decode_secret(
            Some("application/x-pkcs12"),
            "this is not base64!"
        )),
        "cert.not_a_certificate"
    );
    // Valid base64 of something that is not DER.
    assert_eq!(
        code(decode_secret(
            Some("application/x-pkcs12"),
            &BASE64.encode("plain words")
        )),
        "cert.not_a_certificate"
    );
    assert_eq!(
        code(decode_secret(Some("application/x-pem-file"), "no PEM here")),
        "cert.not_a_certificate"
    );
    let err = decode_secret(Some("text/plain"), "hunter2").expect_err("not a certificate");
    assert!(err.to_string().contains("text/plain"), "{err}");
    assert!(
        !err.to_string().contains("hunter2"),
        "never echo the secret: {err}"
    );
}

#[test]
fn pfx_corrupt_when_truncated_or_damaged() {
    let pfx = keyvault_pfx();
    for len in [1, 4, 100, pfx.len() / 2, pfx.len() - 1] {
        assert_eq!(
            code(decode_pfx(&pfx[..len], "")),
            "cert.pfx_corrupt",
            "truncated to {len}"
        );
    }
    let truncated = BASE64.encode(&pfx[..pfx.len() - 40]);
    assert_eq!(
        code(decode_secret(Some("application/x-pkcs12"), &truncated)),
        "cert.pfx_corrupt"
    );
    let mut wrong_version = pfx.clone();
    // 30 82 0a 2c | 02 01 03: the version INTEGER.
    assert_eq!(&wrong_version[4..7], &[2, 1, 3]);
    wrong_version[6] = 9;
    assert_eq!(
        code(decode_pfx(&wrong_version, "")),
        "cert.unsupported_algorithm"
    );
}

#[test]
fn pfx_bad_password() {
    assert_eq!(
        code(decode_pfx(&keyvault_pfx(), "guess")),
        "cert.pfx_bad_password"
    );
    let openssl = fixtures::bytes("pkcs12/openssl3-aes-rsa2048.pfx");
    assert_eq!(code(decode_pfx(&openssl, "")), "cert.pfx_bad_password");
    assert_eq!(
        code(decode_pfx(&openssl, "correct horse battery")),
        "cert.pfx_bad_password"
    );
    // Without a MAC, the decryption itself tells.
    let nomac = fixtures::bytes("pkcs12/openssl3-nomac-rsa2048.pfx");
    assert_eq!(code(decode_pfx(&nomac, "wrong")), "cert.pfx_bad_password");
    let err = decode_pfx(&keyvault_pfx(), "")
        .map(|_| ())
        .and_then(|()| decode_pfx(&openssl, ""));
    let message = err.expect_err("bad password").to_string();
    assert!(message.contains("zero-length"), "{message}");
}

#[test]
fn a_password_protected_pfx_in_a_secret_says_to_import_it_as_a_certificate() {
    // The agent cannot be given a password: the way out is Key Vault's certificate import.
    let value = BASE64.encode(fixtures::bytes("pkcs12/openssl3-aes-rsa2048.pfx"));
    for content_type in [Some("application/x-pkcs12"), None] {
        let err = decode_secret(content_type, &value).expect_err("needs a password");
        assert_eq!(err.code(), "cert.pfx_bad_password");
        let message = err.to_string();
        assert!(
            message.contains("password-protected PFX set by hand"),
            "{message}"
        );
        assert!(
            message.contains("az keyvault certificate import"),
            "{message}"
        );
        assert!(!message.contains("pass the PFX password"), "{message}");
    }
}

#[test]
fn every_error_from_real_input_says_what_to_do() {
    let openssl = fixtures::bytes("pkcs12/openssl3-aes-rsa2048.pfx");
    let mut damaged = keyvault_pfx();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x01;
    let cases: Vec<(Result<_, CertError>, &str)> = vec![
        (decode_secret(None, "hunter2"), "store a PFX"),
        (decode_pfx(&keyvault_pfx()[..300], ""), "re-import"),
        (decode_pfx(&openssl, "wrong"), "check the password"),
        (decode_pfx(&damaged, ""), "re-import"),
        (
            decode_pem(&fixtures::text("pem/nokey.pem")),
            "PRIVATE KEY block",
        ),
        (
            decode_pem("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n"),
            "export the PEM again",
        ),
        (
            decode_pfx(&fixtures::bytes("pkcs12/openssl3-nokey.pfx"), ""),
            "export it with its private key",
        ),
        (
            decode_pem(&fixtures::text("pem/mismatch.pem")),
            "must belong together",
        ),
        (
            decode_pem(&fixtures::text("pem/keyonly.pem")),
            "add the certificate",
        ),
        (
            decode_pem(&format!(
                "{}{}",
                fixtures::text("pem/ecp256.pem"),
                fixtures::text("pem/keyonly.pem")
            )),
            "keep only the key of the leaf",
        ),
    ];
    for (result, advice) in cases {
        let message = result.map(|_| ()).expect_err(advice).to_string();
        assert!(
            message.contains(advice),
            "{advice:?} missing from: {message}"
        );
    }
}

#[test]
fn pfx_mac_mismatch_when_the_content_opens_but_the_mac_does_not_verify() {
    // The Key Vault file ends with its 20-byte MAC salt (the iteration count is left out).
    let mut pfx = keyvault_pfx();
    let last = pfx.len() - 1;
    pfx[last] ^= 0x01;
    assert_eq!(code(decode_pfx(&pfx, "")), "cert.pfx_mac_mismatch");
}

#[test]
fn pfx_no_key() {
    assert_eq!(
        code(decode_pfx(
            &fixtures::bytes("pkcs12/openssl3-nokey.pfx"),
            ""
        )),
        "cert.pfx_no_key"
    );
}

#[test]
fn pem_no_key() {
    assert_eq!(
        code(decode_pem(&fixtures::text("pem/nokey.pem"))),
        "cert.pem_no_key"
    );
    assert_eq!(
        code(decode_secret(
            Some("application/x-pem-file"),
            &fixtures::text("pem/ca-chain.pem")
        )),
        "cert.pem_no_key"
    );
}

#[test]
fn pem_invalid() {
    let good = fixtures::text("pem/ecp256.pem");
    // A truncated bundle: the last END line is gone.
    let truncated = &good[..good.len() - 10];
    assert_eq!(code(decode_pem(truncated)), "cert.pem_invalid");
    let bad_base64 = good.replacen("MII", "M!I", 1);
    assert_eq!(code(decode_pem(&bad_base64)), "cert.pem_invalid");
}

#[test]
fn multiple_keys() {
    let two = format!(
        "{}{}",
        fixtures::text("pem/keyonly.pem"),
        fixtures::text("pem/ecp256.pem")
    );
    assert_eq!(code(decode_pem(&two)), "cert.multiple_keys");
}

#[test]
fn key_mismatch() {
    assert_eq!(
        code(decode_pem(&fixtures::text("pem/mismatch.pem"))),
        "cert.key_mismatch"
    );
    // The same in a PFX: the P-256 key with the RSA leaf and its chain.
    let ec = decode_pem(&fixtures::text("pem/ecp256.pem")).expect("fixture");
    let rsa = decode_pem(&fixtures::text("pem/rsa2048-shuffled.pem")).expect("fixture");
    let pfx = pkcs12::encode_keyvault(
        ec.key.pkcs8_der(),
        &[rsa.leaf.der().to_vec(), rsa.chain[0].der().to_vec()],
    )
    .expect("encode");
    let err = decode_pfx(&pfx, "").expect_err("mismatch");
    assert_eq!(err.code(), "cert.key_mismatch");
    assert!(err.to_string().contains("EC P-256"), "{err}");
    assert!(err.to_string().contains("rsa2048.example.test"), "{err}");
}

#[test]
fn empty_chain() {
    assert_eq!(
        code(decode_pem(&fixtures::text("pem/keyonly.pem"))),
        "cert.empty_chain"
    );
}

#[test]
fn too_many_certificates() {
    // A leaf's PEM with its chain repeated past the limit: refused before any chain building.
    let pem = fixtures::text("pem/keyonly.pem");
    let certificate = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
    let bundle = format!(
        "{pem}{}",
        certificate.repeat(akvvm_cert::certificate::MAX_CERTIFICATES + 1)
    );
    let err = decode_pem(&bundle).expect_err("too many");
    assert_eq!(err.code(), "cert.too_many_certificates");
    assert!(err.to_string().contains("101 certificates"), "{err}");
}

#[test]
fn certificate_invalid() {
    let bundle = format!(
        "{}-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n",
        fixtures::text("pem/keyonly.pem")
    );
    assert_eq!(code(decode_pem(&bundle)), "cert.certificate_invalid");
}

#[test]
fn key_invalid() {
    let bundle = format!(
        "-----BEGIN PRIVATE KEY-----\nMAMCAQE=\n-----END PRIVATE KEY-----\n{}",
        fixtures::text("pem/nokey.pem")
    );
    assert_eq!(code(decode_pem(&bundle)), "cert.key_invalid");
}

#[test]
fn unsupported_algorithm() {
    // An Ed25519 key.
    let ed25519 = format!(
        "-----BEGIN PRIVATE KEY-----\n\
         MC4CAQAwBQYDK2VwBCIEIFplx9SdBg9VnuuSpDIGeC1shBtUntZuxn/ps932bpG6\n\
         -----END PRIVATE KEY-----\n{}",
        fixtures::text("pem/nokey.pem")
    );
    assert_eq!(code(decode_pem(&ed25519)), "cert.unsupported_algorithm");
    let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAMCAQE=\n\
                     -----END ENCRYPTED PRIVATE KEY-----\n";
    assert_eq!(code(decode_pem(encrypted)), "cert.unsupported_algorithm");
}

#[test]
fn pfx_encode() {
    assert_eq!(
        code(pkcs12::encode_keyvault(b"junk", &[vec![0x30, 0]])),
        "cert.pfx_encode"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = pkcs12::decode(&bytes, "");
        let _ = decode_pfx(&bytes, "password");
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_pem(&text);
        let _ = decode_secret(None, &text);
        let _ = decode_secret(Some("application/x-pkcs12"), &BASE64.encode(&bytes));
    }

    #[test]
    fn decoders_never_panic_on_a_damaged_keyvault_pfx(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut pfx = keyvault_pfx();
        for (at, mask) in flips {
            let i = at.index(pfx.len());
            pfx[i] ^= mask;
        }
        let _ = decode_pfx(&pfx, "");
        let len = cut.index(pfx.len());
        let _ = decode_pfx(&pfx[..len], "");
    }

    #[test]
    fn decoders_never_panic_on_damaged_pem(cut in any::<prop::sample::Index>(), junk in "[ -~\n]{0,40}") {
        let pem = fixtures::text("pem/rsa2048-shuffled.pem");
        let at = cut.index(pem.len());
        let damaged = format!("{}{junk}{}", &pem[..at], &pem[at..]);
        let _ = decode_pem(&damaged);
        let _ = decode_pem(&pem[..at]);
    }
}

#[test]
fn pem_blocks_split_in_order_and_skip_text_between() {
    let pem = fixtures::text("pem/mismatch.pem");
    let blocks =
        akvvm_cert::certificate::pem_blocks(&format!("a comment\n{pem}\ntrailing text")).unwrap();
    let labels: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"]);
    assert!(blocks.iter().all(|b| !b.der.is_empty()));
    let shown = format!("{:?}", blocks);
    assert!(shown.contains("bytes>"), "Debug shows lengths only");
    assert!(
        akvvm_cert::certificate::pem_blocks("no PEM here")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        code(akvvm_cert::certificate::pem_blocks(
            "-----BEGIN CERTIFICATE-----\nAAAA\n"
        )),
        "cert.pem_invalid"
    );
}

#[test]
fn docs_store_md_explains_every_decoding_error_code() {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/store.md"),
    )
    .expect("docs/store.md");
    for code in CertError::CODES {
        assert!(
            doc.contains(&format!("| `{code}` |"))
                || doc.contains(&format!("`{code}`, `"))
                || doc.contains(&format!(", `{code}` |")),
            "docs/store.md does not explain {code}"
        );
    }
}
