//! The fuzz harnesses of the decoders: one function per `cargo fuzz` target (`fuzz/`), shared
//! with the stable regression test that replays every committed corpus and regression input
//! (`tests/it/fuzz_corpus.rs`), so that both run the same code.
//!
//! A harness takes the raw input and returns nothing: whatever the input, the decoders must
//! answer with a value or a [`CertError`], never panic. Where it is cheap the harness also checks
//! what a good answer promises (the key belongs to the leaf, the chain is ordered, a bundle
//! written as PEM or as a Key Vault PFX reads back the same); a broken promise is a panic, which
//! the fuzzer reports as a crash. Not part of the API: `docs/fuzzing.md` says how to use it.

use crate::CertError;
use crate::certificate::{CertificateBundle, decode_pem, decode_pfx, decode_secret, pem_blocks};
use crate::pkcs12;

/// The password of the password-protected fixtures (`crates/akvvm-testkit/fixtures/pkcs12`),
/// tried after the empty one so that the fuzzer also gets past their MAC.
pub const FIXTURE_PASSWORD: &str = "correct horse";

/// `pkcs12` target: the input is a PFX (DER or BER), opened with the empty password (Key
/// Vault's) and, when that is refused as the wrong password, with [`FIXTURE_PASSWORD`].
pub fn pkcs12(data: &[u8]) {
    let _ = checked(pkcs12::mac_summary(data));
    let mut opened = checked(pkcs12::decode(data, ""));
    let mut password = "";
    if let Err(CertError::PfxBadPassword { .. }) = opened {
        password = FIXTURE_PASSWORD;
        opened = checked(pkcs12::decode(data, password));
    }
    let bundle = checked(decode_pfx(data, password));
    match (&opened, &bundle) {
        (Ok(contents), Ok(_)) => assert_eq!(contents.keys.len(), 1, "a bundle needs one key"),
        (Err(_), Ok(_)) => panic!("decode_pfx opened a PFX that pkcs12::decode refused"),
        _ => {}
    }
    if let Ok(bundle) = bundle {
        check_bundle(&bundle);
        // What the agent stores must read back as the same certificate and key.
        let pem = bundle.to_pem();
        let again = decode_pem(&pem).expect("a bundle written as PEM reads back");
        assert_same(&bundle, &again, "PEM");
        // And a PFX written the way Key Vault does opens to the same bundle.
        let mut certs = vec![bundle.leaf.der().to_vec()];
        certs.extend(bundle.chain.iter().map(|c| c.der().to_vec()));
        let pfx = pkcs12::encode_keyvault(bundle.key.pkcs8_der(), &certs)
            .expect("a decoded bundle encodes as a Key Vault PFX");
        let reopened = decode_pfx(&pfx, "").expect("a PFX written by encode_keyvault opens");
        assert_same(&bundle, &reopened, "Key Vault PFX");
    }
}

/// `pem` target: the input is a secret value in PEM form (text; not UTF-8 is not a secret
/// value, since Key Vault secrets are strings), read as the agent reads one.
pub fn pem(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(blocks) = checked(pem_blocks(text)) {
        for block in &blocks {
            assert!(!block.label.contains("-----"), "a label holds dashes");
        }
    }
    let bundle = checked(decode_pem(text));
    let by_type = checked(decode_secret(Some("application/x-pem-file"), text));
    assert_eq!(
        bundle.is_ok(),
        by_type.is_ok(),
        "decode_secret(PEM) and decode_pem disagree"
    );
    // Without a content type the value is recognised by its form (PEM or a base64 PFX).
    let _ = checked(decode_secret(None, text));
    let _ = checked(decode_secret(Some("application/x-pkcs12"), text));
    if let Ok(bundle) = bundle {
        check_bundle(&bundle);
        let again = decode_pem(&bundle.to_pem()).expect("a bundle written as PEM reads back");
        assert_same(&bundle, &again, "PEM");
    }
}

/// An error must carry a well-formed code and say something.
fn checked<T>(result: Result<T, CertError>) -> Result<T, CertError> {
    if let Err(error) = &result {
        assert!(
            crate::codes::is_well_formed(error.code()),
            "bad error code {:?}",
            error.code()
        );
        assert!(!error.to_string().is_empty(), "an empty error message");
    }
    result
}

/// What a bundle promises: the key belongs to the leaf, each chain certificate issues the one
/// before it, and its PEM forms are not empty.
fn check_bundle(bundle: &CertificateBundle) {
    assert!(
        bundle.key.matches(&bundle.leaf),
        "the key does not match the leaf"
    );
    let mut previous = &bundle.leaf;
    for cert in &bundle.chain {
        assert!(previous.is_issued_by(cert), "the chain is out of order");
        previous = cert;
    }
    assert_eq!(bundle.thumbprint().len(), 40);
    assert!(bundle.leaf_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(!bundle.key_pem().is_empty());
}

/// Two bundles hold the same key, leaf and chain.
fn assert_same(a: &CertificateBundle, b: &CertificateBundle, via: &str) {
    assert!(
        a.key.pkcs8_der() == b.key.pkcs8_der(),
        "the key changed through {via}"
    );
    assert_eq!(a.leaf.der(), b.leaf.der(), "the leaf changed through {via}");
    let chain = |x: &CertificateBundle| x.chain.iter().map(|c| c.thumbprint()).collect::<Vec<_>>();
    assert_eq!(chain(a), chain(b), "the chain changed through {via}");
}
