//! End-to-end: the list check (`akvvm::sync::list`) and throttling against the local vault.
//! Each engine is a fresh one, as `akvvm sync --once` is a fresh process: what it knows comes
//! from the state file. Requests are counted by the local vault; nothing here times anything.
//!
//! A version's `updated` is only trusted once Key Vault's clock is 2 s past it, so the tests that
//! need a settled state wait 3 s once after creating their certificates.

use std::path::Path;
use std::time::Duration;

use akvvm::sync::{CertOutcome, Engine, state_file_path};
use akvvm_testkit::harness::{Harness, PEM, cycle, snapshot};
use serde_json::{Value, json};

const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// `GET /secrets/{name}` requests to `vault` (the list is `GET /secrets`), but for the 401s that
/// carry the challenge (the first requests of a new engine).
fn secret_gets(h: &Harness, vault: &str) -> u64 {
    h.emulator
        .counters()
        .iter()
        .filter(|c| {
            c.scope == vault
                && c.method == "GET"
                && c.path.starts_with("/secrets/")
                && c.status != 401
        })
        .map(|c| c.count)
        .sum()
}

/// `GET /secrets` (list) requests to `vault` answered 200.
fn list_pages(h: &Harness, vault: &str) -> u64 {
    h.emulator
        .counters()
        .iter()
        .filter(|c| {
            c.scope == vault && c.method == "GET" && c.path == "/secrets" && c.status == 200
        })
        .map(|c| c.count)
        .sum()
}

/// Vault `contoso` with six EC certificates (PEM), observed; the first cycle installs them all
/// once their versions are settled.
async fn six_installed(h: &Harness) -> Value {
    h.vault("contoso");
    for name in NAMES {
        h.certificate("contoso", name, "EC", PEM);
    }
    let json = h.settings_json(
        &["contoso"],
        NAMES
            .iter()
            .map(|n| json!(Harness::url("contoso", n)))
            .collect(),
    );
    // Key Vault's clock must be 2 s past the versions' `updated` for the list to stand for them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = cycle(&h.engine(&json)).await;
    assert!(report.complete(), "{report:?}");
    json
}

fn all_unchanged(report: &akvvm::sync::CycleReport) -> bool {
    report
        .certificates
        .iter()
        .all(|c| matches!(c.outcome, CertOutcome::Unchanged(_)))
}

fn files_of(h: &Harness) -> Vec<(String, (u64, i128))> {
    let mut all = snapshot(&h.store());
    all.extend(snapshot(&h.state_dir()));
    all
}

fn state_text(h: &Harness, json: &Value) -> String {
    std::fs::read_to_string(state_file_path(&h.settings(json))).unwrap()
}

#[tokio::test]
async fn an_unchanged_cycle_lists_the_vault_and_writes_nothing() {
    let h = Harness::start().await;
    let json = six_installed(&h).await;
    let files = files_of(&h);
    let state = state_text(&h, &json);
    h.emulator.reset_counters();

    let report = cycle(&h.engine(&json)).await;
    assert!(all_unchanged(&report), "{report:?}");
    assert_eq!(secret_gets(&h, "contoso"), 0, "no certificate was fetched");
    assert_eq!(list_pages(&h, "contoso"), 1, "one page of 6 secrets");
    assert_eq!(files_of(&h), files, "no file was written or replaced");
    assert_eq!(state_text(&h, &json), state);
}

#[tokio::test]
async fn a_rotation_is_caught_by_the_list_and_only_it_is_fetched() {
    let h = Harness::start().await;
    let json = six_installed(&h).await;
    let v2 = h
        .emulator
        .rotate_certificate("contoso", "c")
        .unwrap()
        .version;
    h.emulator.reset_counters();

    let report = cycle(&h.engine(&json)).await;
    assert!(report.complete(), "{report:?}");
    for cert in &report.certificates {
        match &cert.outcome {
            CertOutcome::Installed(info) => {
                assert!(cert.url.ends_with("/c"), "{}", cert.url);
                assert_eq!(info.version, v2);
            }
            CertOutcome::Unchanged(_) => assert!(!cert.url.ends_with("/c")),
            CertOutcome::Failed { code, message, .. } => panic!("[{code}] {message}"),
        }
    }
    assert_eq!(list_pages(&h, "contoso"), 1);
    assert_eq!(secret_gets(&h, "contoso"), 1, "only the rotated one");

    // Disabling the installed version changes its `updated`: fetched, reported, kept.
    h.emulator.reset_counters();
    h.emulator
        .set_secret_enabled("contoso", "a", None, false)
        .unwrap();
    let report = cycle(&h.engine(&json)).await;
    assert_eq!(
        secret_gets(&h, "contoso"),
        2,
        "a (disabled), c (just installed)"
    );
    let a = &report.certificates[0];
    assert!(
        matches!(
            &a.outcome,
            CertOutcome::Failed {
                installed: Some(_),
                ..
            }
        ),
        "{a:?}"
    );
}

#[tokio::test]
async fn a_list_in_short_and_empty_pages_is_followed_to_its_end() {
    let h = Harness::start().await;
    let json = six_installed(&h).await;
    // Pages of 3 secrets, each after an empty page with a nextLink: 4 pages for 6 secrets.
    h.emulator.short_list_pages("contoso", 3, 1);
    h.emulator.reset_counters();

    let report = cycle(&h.engine(&json)).await;
    assert!(all_unchanged(&report), "{report:?}");
    assert_eq!(list_pages(&h, "contoso"), 4);
    assert_eq!(
        secret_gets(&h, "contoso"),
        0,
        "every secret was found in the list"
    );

    // Pages of one secret, two empty pages before each: 18 pages cost more than 6 GETs, so the
    // list stops after 5 and the certificates are fetched.
    h.emulator.short_list_pages("contoso", 1, 2);
    h.emulator.reset_counters();
    let report = cycle(&h.engine(&json)).await;
    assert!(all_unchanged(&report), "{report:?}");
    assert_eq!(list_pages(&h, "contoso"), 5);
    assert_eq!(secret_gets(&h, "contoso"), 6);
}

#[tokio::test]
async fn the_full_check_fetches_what_the_list_has_not_confirmed_for_too_long() {
    let h = Harness::start().await;
    let json = six_installed(&h).await;
    // The last GET of every certificate, two days ago (as after two days of list-only cycles).
    let path = state_file_path(&h.settings(&json));
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for entry in state["certificates"].as_object_mut().unwrap().values_mut() {
        entry["verifiedAt"] = json!("2020-01-01T00:00:00Z");
    }
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    h.emulator.reset_counters();

    let report = cycle(&h.engine(&json)).await;
    assert!(all_unchanged(&report), "{report:?}");
    assert_eq!(list_pages(&h, "contoso"), 0, "no candidate for the list");
    assert_eq!(secret_gets(&h, "contoso"), 6, "each one fetched");
    // The new verifiedAt is saved, so the next cycle lists again.
    h.emulator.reset_counters();
    let report = cycle(&h.engine(&json)).await;
    assert!(all_unchanged(&report), "{report:?}");
    assert_eq!(secret_gets(&h, "contoso"), 0);
    assert_eq!(list_pages(&h, "contoso"), 1);

    // fullCheckIntervalInS 0: no list, one GET each, and still nothing written.
    let mut every_time = json.clone();
    every_time["akvvm"]["fullCheckIntervalInS"] = json!(0);
    let files = files_of(&h);
    h.emulator.reset_counters();
    let report = cycle(&h.engine(&every_time)).await;
    assert!(all_unchanged(&report), "{report:?}");
    assert_eq!(list_pages(&h, "contoso"), 0);
    assert_eq!(secret_gets(&h, "contoso"), 6);
    assert_eq!(files_of(&h), files);
}

#[tokio::test]
async fn an_identity_that_may_not_list_gets_one_get_per_certificate() {
    let h = Harness::start().await;
    let json = six_installed(&h).await;
    h.emulator.revoke_roles("contoso", "system").unwrap();
    h.emulator
        .assign_roles("contoso", "system", &["secrets/get"])
        .unwrap();
    h.emulator.reset_counters();
    let report = cycle(&h.engine(&json)).await;
    assert!(all_unchanged(&report), "{report:?}");
    assert_eq!(secret_gets(&h, "contoso"), 6);
}

/// Agents of a fleet: each its own store and state directory.
fn agent(h: &Harness, json: &Value, index: usize) -> Engine {
    let mut json = json.clone();
    let root = h.store().join(format!("agent-{index}"));
    json["secretsManagementSettings"]["certificateStoreLocation"] =
        json!(root.join("store").display().to_string());
    json["akvvm"]["stateDirectory"] = json!(root.join("state").display().to_string());
    h.engine(&json)
}

async fn fleet_against_a_throttled_vault(retry_after_s: Option<u64>) {
    let h = Harness::start().await;
    h.vault("contoso");
    for name in &NAMES[..3] {
        h.certificate("contoso", name, "EC", PEM);
    }
    let mut json = h.settings_json(
        &["contoso"],
        NAMES[..3]
            .iter()
            .map(|n| json!(Harness::url("contoso", n)))
            .collect(),
    );
    // Pauses are capped by the polling interval: one of a minute lets the backoff grow as it
    // does in production (an hour), where the harness's one second would keep it under 1 s.
    json["secretsManagementSettings"]["pollingIntervalInS"] = json!("60");
    const AGENTS: usize = 12;
    let engines: Vec<Engine> = (0..AGENTS).map(|i| agent(&h, &json, i)).collect();
    // 36 certificates against 10 requests a second: most agents meet 429s.
    h.emulator
        .throttle("contoso", 10, Duration::from_secs(1), retry_after_s);
    // As `akvvm run` starts: a random pause up to `startupJitterInS` (here 3 s), then a cycle.
    let reports = futures::future::join_all(engines.iter().map(|engine| async move {
        tokio::time::sleep(akvvm::sync::startup_pause(Duration::from_secs(3))).await;
        cycle(engine).await
    }))
    .await;
    let throttled = h.emulator.status_count("contoso", 429);
    for (i, report) in reports.iter().enumerate() {
        assert!(
            report.complete(),
            "agent {i} did not converge (Retry-After {retry_after_s:?}): {report:?}"
        );
    }
    assert!(throttled > 0, "the vault throttled");
    let gets = secret_gets(&h, "contoso");
    eprintln!(
        "Retry-After {retry_after_s:?}: {gets} GETs, {throttled} of them 429, for 36 certificates"
    );
    // Around 1.4 per certificate (the 429s included, the 401 challenges not); each agent sending
    // its three requests at once, retrying each on its own, made it 5 or more.
    assert!(
        gets < 2 * 36,
        "{gets} GETs (429s included) for 36 certificates: a retry storm"
    );
    assert!(Path::new(&h.store().join("agent-0/store/contoso.a")).exists());
}

#[tokio::test]
async fn a_fleet_converges_against_a_throttled_vault_with_retry_after() {
    fleet_against_a_throttled_vault(Some(1)).await;
}

#[tokio::test]
async fn a_fleet_converges_against_a_throttled_vault_without_retry_after() {
    fleet_against_a_throttled_vault(None).await;
}
