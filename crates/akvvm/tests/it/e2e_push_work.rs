//! End-to-end: the work of a pushed rotation (a cycle of one certificate, as the daemon runs for
//! an Event Grid delivery) does not grow with the number of certificates observed. The state file
//! is not rewritten: only its journal gets the changed entry, one entry's bytes at 8 and at 40
//! certificates. Nothing here times anything.

use akvvm::sync::state::journal::journal_path;
use akvvm::sync::{CertOutcome, state_file_path};
use akvvm_testkit::harness::{Harness, PEM, cycle, identity_of};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Installs `n` certificates, rotates one and syncs it alone; returns the bytes the push added to
/// the state directory.
async fn bytes_written_by_a_push(n: usize) -> u64 {
    let h = Harness::start().await;
    h.vault("contoso");
    let names: Vec<String> = (0..n).map(|i| format!("c{i:03}")).collect();
    for name in &names {
        h.certificate("contoso", name, "EC", PEM);
    }
    let json = h.settings_json(
        &["contoso"],
        names
            .iter()
            .map(|name| json!(Harness::url("contoso", name)))
            .collect(),
    );
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete());
    let state = state_file_path(engine.settings());
    let journal = journal_path(&state);
    let state_before = identity_of(&state);
    let journal_before = std::fs::metadata(&journal).map_or(0, |m| m.len());

    let version = h
        .emulator
        .rotate_certificate("contoso", "c001")
        .unwrap()
        .version;
    let url = Harness::url("contoso", "c001");
    let report = engine.cycle(|u| u == url, &CancellationToken::new()).await;
    assert_eq!(report.certificates.len(), 1);
    match &report.certificates[0].outcome {
        CertOutcome::Installed(info) => assert_eq!(info.version, version),
        other => panic!("the pushed rotation was not installed: {other:?}"),
    }
    assert_eq!(
        identity_of(&state),
        state_before,
        "the state file itself is not rewritten by a push (N = {n})"
    );
    let journal_after = std::fs::metadata(&journal).map_or(0, |m| m.len());
    // What a fresh engine (a restarted agent) reads back: the new version.
    let reloaded = akvvm::sync::state::StateFile::load(&state).unwrap();
    assert_eq!(
        reloaded.entry(&url).unwrap().installed_version.as_deref(),
        Some(version.as_str())
    );
    journal_after - journal_before
}

#[tokio::test]
async fn a_push_writes_the_same_bytes_at_8_and_at_40_certificates() {
    let small = bytes_written_by_a_push(8).await;
    let large = bytes_written_by_a_push(40).await;
    assert!(small > 0, "the push's entry went to the journal");
    // One entry each (about 500 bytes; its timestamps' fractions vary by a few bytes). Rewriting
    // the state would cost about 500 bytes per certificate: 4 KB at 8, 20 KB at 40.
    assert!(
        large < 1_000 && large.abs_diff(small) < 64,
        "bytes per push must not grow with N: {small} at 8, {large} at 40"
    );
}
