//! Rows of the fault matrix: 429 storms on one vault, with and without `Retry-After` (Key
//! Vault's 429s have been seen both ways). Every request to the vault is throttled until the
//! fault clears.

use std::time::Duration;

use akvvm_testkit::harness::Harness;

use super::{Case, FAULTY, clear_vault, run};

#[tokio::test(flavor = "multi_thread")]
async fn throttled_with_retry_after() {
    run(&Case::vault(
        "429 storm with Retry-After",
        |h: &Harness| {
            h.emulator
                .throttle(FAULTY, 0, Duration::from_secs(1), Some(1))
        },
        clear_vault,
        "vault.throttled",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_without_retry_after() {
    run(&Case::vault(
        "429 storm without Retry-After",
        |h: &Harness| h.emulator.throttle(FAULTY, 0, Duration::from_secs(1), None),
        clear_vault,
        "vault.throttled",
    ))
    .await;
}
