//! Rows of the fault matrix: the identity. IMDS down when the agent starts (404 "IMDS endpoint
//! is updating" and 410 "IMDS is going through updates", as IMDS answers while its host boots)
//! and coming back, and a token that one vault stops accepting mid-run (401).

use akvvm_testkit::harness::Harness;

use super::{Attempts, Case, FAULTY, clear_vault, run};

fn imds_down(code: &'static str, name: &'static str, inject: fn(&Harness)) -> Case {
    Case {
        attempts: Attempts::Imds,
        at_boot: true,
        affects_all: true,
        ..Case::vault(
            name,
            inject,
            |h: &Harness| h.emulator.clear_faults(akvvm_emulator::server::IMDS_SCOPE),
            code,
        )
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn imds_answering_404_at_boot() {
    run(&imds_down(
        "identity.imds_refused",
        "IMDS 404 at boot",
        |h: &Harness| h.emulator.imds_booting(100_000, 0),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn imds_answering_410_at_boot() {
    run(&imds_down(
        "identity.imds_refused",
        "IMDS 410 at boot",
        |h: &Harness| h.emulator.imds_booting(0, 100_000),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_revoked_mid_run() {
    run(&Case::vault(
        "token revoked (401)",
        |h: &Harness| h.emulator.fail_next(FAULTY, &[401; 100_000]),
        clear_vault,
        "vault.unauthorized",
    ))
    .await;
}
