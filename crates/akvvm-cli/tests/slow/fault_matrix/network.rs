//! Rows of the fault matrix: the network between the agent and one vault. Answers slower than
//! the request timeout (`akvvm.requestTimeoutInS` is 2 s in the matrix), connections dropped in
//! the middle of an answer, a TLS certificate the agent must not trust, and a vault host that
//! does not resolve.

use std::time::Duration;

use akvvm_testkit::harness::Harness;

use super::{Attempts, Bed, Case, FAULTY, HEALTHY, clear_vault, run};

#[tokio::test(flavor = "multi_thread")]
async fn latency_beyond_the_request_timeout() {
    // A request given up on never reaches the local vault's counters (it counts answers), so
    // the agent's own count of its attempts is used.
    run(&Case {
        attempts: Attempts::Agent,
        ..Case::vault(
            "latency beyond the timeout",
            |h: &Harness| h.emulator.add_latency(FAULTY, Duration::from_secs(5)),
            clear_vault,
            "vault.unreachable",
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_dropped_mid_answer() {
    run(&Case::vault(
        "connections dropped mid-answer",
        |h: &Harness| h.emulator.cut_next(FAULTY, 100_000),
        clear_vault,
        "vault.unreachable",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_certificate_the_agent_must_not_trust() {
    // Handshakes that fail reach no counter of the local vault: the agent's count is used. A
    // running agent keeps its pooled connections, so the case starts a fresh one.
    run(&Case {
        attempts: Attempts::Agent,
        at_boot: true,
        ..Case::vault(
            "untrusted TLS certificate",
            |h: &Harness| h.emulator.untrusted_certificate(FAULTY),
            clear_vault,
            "vault.unreachable",
        )
    })
    .await;
}

/// A vault host under `.invalid` (RFC 6761: never resolves; akvvm's resolver sends no query for
/// it, so nothing leaves the machine). Such a name cannot start resolving, so this row checks
/// what can hold: the agent keeps running, the other certificate installs and rotates, the
/// status names the cause, and the attempts are bounded.
#[tokio::test(flavor = "multi_thread")]
async fn a_host_that_does_not_resolve() {
    let url = "https://faulty.vault.invalid/secrets/web";
    let bed = Bed::new(Some(url)).await;
    let store = bed.h.store();
    let mut agent = bed.start_agent("only");
    bed.wait_for(&mut agent, "the healthy certificate installed", || {
        super::installed_version(&store, HEALTHY).is_some()
    })
    .await;
    let started = std::time::Instant::now();
    let healthy_new = bed
        .h
        .emulator
        .rotate_certificate(HEALTHY, super::CERT)
        .unwrap()
        .version;
    bed.wait_for(&mut agent, "the healthy rotation installed", || {
        super::installed_version(&store, HEALTHY).as_deref() == Some(healthy_new.as_str())
    })
    .await;
    bed.wait_for(&mut agent, "the status naming the cause", || {
        super::substatus(&bed.status_file, url)
            .is_some_and(|(s, m)| s == "error" && m.contains("[vault.unreachable]"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    agent.assert_running("while the name did not resolve");
    let (_, message) = super::substatus(&bed.status_file, url).unwrap();
    assert!(message.contains("faulty.vault.invalid"), "{message}");
    let attempts = bed.attempts(Attempts::Agent);
    let seconds = started.elapsed().as_secs() + 1;
    let bound = 20 + 4 * seconds;
    eprintln!("fault matrix: unresolvable host: {attempts} attempts in about {seconds} s");
    assert!(
        attempts > 0 && attempts <= bound,
        "{attempts} attempts, bound {bound}"
    );
    assert!(
        !store.join("faulty.web").exists(),
        "nothing is installed for a vault never reached"
    );
    agent.stop();
}
