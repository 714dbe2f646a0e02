//! Rows of the fault matrix: what one vault holds or lets the agent read. 403 on the vault (the
//! role assignment removed), the secret deleted, the secret disabled, and a new version that is
//! garbage.

use akvvm_emulator::SecretSpec;
use akvvm_testkit::harness::{Harness, PFX, policy};

use super::{CERT, Case, FAULTY, grant_faulty, run};

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_on_one_vault() {
    run(&Case::vault(
        "403 on one vault",
        |h: &Harness| h.emulator.revoke_roles(FAULTY, "system").unwrap(),
        grant_faulty,
        "vault.forbidden",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_secret() {
    run(&Case {
        fault_is_the_change: true,
        ..Case::vault(
            "deleted secret",
            |h: &Harness| {
                h.emulator.delete_certificate(FAULTY, CERT).unwrap();
            },
            |h: &Harness| {
                h.emulator
                    .create_certificate(FAULTY, CERT, &policy("RSA", PFX, CERT))
                    .unwrap();
            },
            "vault.secret_not_found",
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_secret() {
    run(&Case {
        fault_is_the_change: true,
        ..Case::vault(
            "disabled secret",
            |h: &Harness| {
                h.emulator
                    .set_certificate_enabled(FAULTY, CERT, None, false)
                    .unwrap();
            },
            |h: &Harness| {
                h.emulator
                    .set_certificate_enabled(FAULTY, CERT, None, true)
                    .unwrap();
            },
            "vault.secret_disabled",
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_turned_to_garbage() {
    run(&Case {
        fault_is_the_change: true,
        ..Case::vault(
            "secret turned to garbage",
            |h: &Harness| {
                h.emulator
                    .set_secret(
                        FAULTY,
                        CERT,
                        SecretSpec {
                            // Base64 of bytes that are no PKCS#12: the decoder, not the base64 step, refuses it.
                            value: "Z2FyYmFnZSB0aGF0IGlzIG5vIFBLQ1MjMTIgYXQgYWxs".into(),
                            content_type: Some(PFX.into()),
                            ..SecretSpec::default()
                        },
                    )
                    .unwrap();
            },
            // The local vault keeps a secret set over a certificate's as a plain secret: the
            // certificate is made again to get good versions back.
            |h: &Harness| {
                h.emulator.delete_certificate(FAULTY, CERT).unwrap();
                h.emulator
                    .create_certificate(FAULTY, CERT, &policy("RSA", PFX, CERT))
                    .unwrap();
            },
            "cert.not_a_certificate",
        )
    })
    .await;
}
