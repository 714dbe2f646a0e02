//! Rows of the fault matrix: bursts of 500 and 503 answers from one vault (as many as the
//! agent asks for while the burst lasts).

use akvvm_testkit::harness::Harness;

use super::{Case, FAULTY, clear_vault, run};

/// More answers than any burst's requests: the burst ends when the fault is cleared.
const BURST: usize = 100_000;

#[tokio::test(flavor = "multi_thread")]
async fn burst_of_500() {
    run(&Case::vault(
        "500 burst",
        |h: &Harness| h.emulator.fail_next(FAULTY, &[500; BURST]),
        clear_vault,
        "vault.server_error",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn burst_of_503() {
    run(&Case::vault(
        "503 burst",
        |h: &Harness| h.emulator.fail_next(FAULTY, &[503; BURST]),
        clear_vault,
        "vault.server_error",
    ))
    .await;
}
