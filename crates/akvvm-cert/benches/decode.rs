//! Decode and encode timings: `cargo bench -p akvvm-cert --bench decode`.
//!
//! Prints microseconds per operation over a fixed number of iterations for a real Key Vault PFX
//! secret value, an OpenSSL 3 PFX (PBKDF2 with 2048 iterations), PEM bundles, and
//! `encode_keyvault`.
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use akvvm_cert::certificate::{decode_pem, decode_pfx, decode_secret};
use akvvm_cert::pkcs12;
use akvvm_testkit::fixtures;

fn measure<T>(name: &str, iterations: u32, mut op: impl FnMut() -> T) {
    // One warm-up run, then the timed loop.
    black_box(op());
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(op());
    }
    let per_op = start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    println!("{name:<58} {per_op:>10.1} us/op  ({iterations} iterations)");
}

fn main() {
    let kv_value = fixtures::text("pkcs12/kv-rsa2048-rc2-2020.pfx.b64");
    let kv_2021 = fixtures::text("pkcs12/kv-rsa2048-js.pfx.b64");
    let openssl_rsa = fixtures::bytes("pkcs12/openssl3-aes-rsa2048.pfx");
    let openssl_p384 = fixtures::bytes("pkcs12/openssl3-aes-ecp384.pfx");
    let pem_rsa = fixtures::text("pem/rsa2048-shuffled.pem");
    let pem_p256 = fixtures::text("pem/ecp256.pem");

    let ok = |r: &Result<_, akvvm_cert::CertError>| assert!(r.is_ok(), "fixture must decode");
    measure(
        "Key Vault PFX secret (3DES+RC2-40, MAC iter 1), RSA 2048",
        200,
        || {
            let r = decode_secret(Some("application/x-pkcs12"), &kv_value);
            ok(&r);
            r
        },
    );
    measure(
        "Key Vault PFX secret (3DES, MAC iter 2000), RSA 2048",
        200,
        || {
            let r = decode_secret(Some("application/x-pkcs12"), &kv_2021);
            ok(&r);
            r
        },
    );
    measure(
        "OpenSSL 3 PFX (AES-256, PBKDF2 2048), RSA 2048 + chain",
        100,
        || {
            let r = decode_pfx(&openssl_rsa, "correct horse");
            ok(&r);
            r
        },
    );
    measure(
        "OpenSSL 3 PFX (AES-256, PBKDF2 2048), P-384 + chain",
        100,
        || {
            let r = decode_pfx(&openssl_p384, "correct horse");
            ok(&r);
            r
        },
    );
    measure("PEM bundle, RSA 2048 + chain (shuffled)", 200, || {
        let r = decode_pem(&pem_rsa);
        ok(&r);
        r
    });
    measure("PEM bundle, P-256 + chain", 200, || {
        let r = decode_pem(&pem_p256);
        ok(&r);
        r
    });
    let bundle = decode_pem(&pem_rsa).expect("fixture");
    let mut certs = vec![bundle.leaf.der().to_vec()];
    certs.extend(bundle.chain.iter().map(|c| c.der().to_vec()));
    measure("encode_keyvault, RSA 2048 + chain", 200, || {
        pkcs12::encode_keyvault(bundle.key.pkcs8_der(), &certs).expect("encode")
    });
    measure("CertificateBundle::to_pem, RSA 2048 + chain", 2000, || {
        bundle.to_pem()
    });
}
