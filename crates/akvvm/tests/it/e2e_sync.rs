//! End-to-end: the sync engine against the local vault over HTTPS, real vault URLs mapped to
//! loopback. Each test has its own store and state directory.

use std::os::unix::fs::PermissionsExt;

use akvvm::sync::state::StateFile;
use akvvm::sync::{CertOutcome, HookOutcome, state_file_path};
use akvvm_emulator::SecretSpec;
use akvvm_testkit::harness::{Harness, PEM, PFX, cycle, link_target, snapshot};
use serde_json::json;

fn requests_to(h: &Harness, vault: &str) -> u64 {
    h.emulator
        .counters()
        .iter()
        .filter(|c| c.scope == vault)
        .map(|c| c.count)
        .sum()
}

/// The code, message and still installed version of a failed outcome.
#[track_caller]
fn failure(outcome: &CertOutcome) -> (&str, &str, Option<&str>) {
    match outcome {
        CertOutcome::Failed {
            code,
            message,
            installed,
        } => (
            code,
            message,
            installed.as_ref().map(|i| i.version.as_str()),
        ),
        other => panic!("expected a failure: {other:?}"),
    }
}

fn installed_version(outcome: &CertOutcome) -> &str {
    match outcome {
        CertOutcome::Installed(i) | CertOutcome::Unchanged(i) => &i.version,
        CertOutcome::Failed { code, message, .. } => panic!("failed: [{code}] {message}"),
    }
}

#[tokio::test]
async fn initial_sync_installs_rsa_and_ec_certificates_from_pfx_and_pem() {
    let h = Harness::start().await;
    h.vault("contoso");
    let web = h.certificate("contoso", "web", "RSA", PFX);
    let api = h.certificate("contoso", "api", "EC", PEM);
    let json = h.settings_json(
        &["contoso"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("contoso", "api")),
        ],
    );
    let engine = h.engine(&json);

    let report = cycle(&engine).await;
    assert!(report.complete(), "{report:?}");
    assert!(matches!(
        report.certificates[0].outcome,
        CertOutcome::Installed(_)
    ));
    assert_eq!(installed_version(&report.certificates[0].outcome), web);
    assert_eq!(installed_version(&report.certificates[1].outcome), api);

    for (name, version) in [("web", &web), ("api", &api)] {
        let link = h.store().join(format!("contoso.{name}"));
        assert_eq!(link_target(&link), format!("contoso.{name}.{version}"));
        let file = h.store().join(format!("contoso.{name}.{version}"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("-----BEGIN CERTIFICATE-----"),
            "{name}: leaf first"
        );
        assert!(text.contains("PRIVATE KEY-----"), "{name}: key included");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let state = StateFile::load(&state_file_path(engine.settings())).unwrap();
    let entry = state
        .entry(&Harness::url("contoso", "web"))
        .expect("state entry");
    assert_eq!(entry.installed_version.as_deref(), Some(web.as_str()));
    let thumbprint = entry.thumbprint.clone().unwrap();
    assert_eq!(thumbprint.len(), 40);
    assert!(
        thumbprint
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    assert!(entry.last_error.is_none());
}

#[tokio::test]
async fn rotation_installs_the_new_version_and_moves_the_link() {
    let h = Harness::start().await;
    let (engine, v1) = h.web_installed().await;

    let v2 = h
        .emulator
        .rotate_certificate("contoso", "web")
        .unwrap()
        .version;
    assert_ne!(v1, v2);
    let report = cycle(&engine).await;
    assert!(
        matches!(&report.certificates[0].outcome, CertOutcome::Installed(i) if i.version == v2),
        "{report:?}"
    );
    assert_eq!(
        link_target(&h.store().join("contoso.web")),
        format!("contoso.web.{v2}")
    );
    assert!(
        h.store().join(format!("contoso.web.{v1}")).exists(),
        "the previous version stays"
    );

    // Nothing new: nothing parsed, nothing written.
    let before = snapshot(&h.store());
    let report = cycle(&engine).await;
    assert!(
        matches!(&report.certificates[0].outcome, CertOutcome::Unchanged(i) if i.version == v2)
    );
    assert_eq!(snapshot(&h.store()), before);
}

#[tokio::test]
async fn a_pinned_version_is_fetched_once_and_never_replaced() {
    let h = Harness::start().await;
    h.vault("contoso");
    let v1 = h.certificate("contoso", "web", "RSA", PFX);
    let pinned = format!("{}/{v1}", Harness::url("contoso", "web"));
    let json = h.settings_json(&["contoso"], vec![json!(pinned)]);
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete());
    let after_first = requests_to(&h, "contoso");
    assert!(after_first >= 1);

    h.emulator.rotate_certificate("contoso", "web").unwrap();
    for _ in 0..2 {
        let report = cycle(&engine).await;
        assert_eq!(installed_version(&report.certificates[0].outcome), v1);
    }
    assert_eq!(
        requests_to(&h, "contoso"),
        after_first,
        "no request after the pinned version is installed"
    );
    assert_eq!(
        link_target(&h.store().join("contoso.web")),
        format!("contoso.web.{v1}")
    );
}

#[tokio::test]
async fn a_disabled_latest_version_keeps_the_installed_one() {
    let h = Harness::start().await;
    let (engine, v1) = h.web_installed().await;

    let v2 = h
        .emulator
        .rotate_certificate("contoso", "web")
        .unwrap()
        .version;
    h.emulator
        .set_secret_enabled("contoso", "web", Some(&v2), false)
        .unwrap();
    let report = cycle(&engine).await;
    let (code, message, installed) = failure(&report.certificates[0].outcome);
    assert_eq!(code, "vault.secret_disabled", "{message}");
    assert_eq!(installed, Some(v1.as_str()));
    assert_eq!(
        link_target(&h.store().join("contoso.web")),
        format!("contoso.web.{v1}")
    );
    let state = StateFile::load(&state_file_path(engine.settings())).unwrap();
    let entry = state.entry(&Harness::url("contoso", "web")).unwrap();
    assert_eq!(entry.installed_version.as_deref(), Some(v1.as_str()));
    assert_eq!(
        entry.last_error.as_ref().map(|e| e.code.as_str()),
        Some(code)
    );
}

#[tokio::test]
async fn a_deleted_secret_keeps_the_installed_certificate() {
    let h = Harness::start().await;
    let (engine, v1) = h.web_installed().await;

    h.emulator.delete_secret("contoso", "web").unwrap();
    let report = cycle(&engine).await;
    let (code, message, installed) = failure(&report.certificates[0].outcome);
    assert_eq!(code, "vault.secret_not_found", "{message}");
    assert!(message.contains("web"), "{message}");
    assert_eq!(installed, Some(v1.as_str()));
    assert!(report.certificates[0].is_installed());
    assert!(!report.complete());
    assert!(h.store().join(format!("contoso.web.{v1}")).exists());
}

#[tokio::test]
async fn a_secret_that_is_not_a_certificate_leaves_the_old_one_in_place() {
    let h = Harness::start().await;
    h.vault("contoso");
    let v1 = h.certificate("contoso", "web", "RSA", PFX);
    // A plain secret holding a PEM certificate and key: the installed file is exactly that.
    let pem = {
        let json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
        assert!(cycle(&h.engine(&json)).await.complete());
        std::fs::read_to_string(h.store().join(format!("contoso.web.{v1}"))).unwrap()
    };
    let plain_v1 = h
        .emulator
        .set_secret(
            "contoso",
            "plain",
            SecretSpec {
                value: pem,
                content_type: Some(PEM.into()),
                ..SecretSpec::default()
            },
        )
        .unwrap()
        .version;
    let json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "plain"))]);
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete());

    h.emulator
        .set_secret(
            "contoso",
            "plain",
            SecretSpec {
                value: "hunter2 is not a certificate".into(),
                content_type: Some("text/plain".into()),
                ..SecretSpec::default()
            },
        )
        .unwrap();
    let report = cycle(&engine).await;
    let (code, message, installed) = failure(&report.certificates[0].outcome);
    assert_eq!(code, "cert.not_a_certificate", "{message}");
    assert!(
        !message.contains("hunter2"),
        "the secret's value is never reported: {message}"
    );
    assert_eq!(installed, Some(plain_v1.as_str()));
    assert_eq!(
        link_target(&h.store().join("contoso.plain")),
        format!("contoso.plain.{plain_v1}")
    );
}

#[tokio::test]
async fn forbidden_for_one_certificate_while_the_others_install() {
    let h = Harness::start().await;
    h.vault("contoso");
    h.emulator.add_vault("fabrikam").unwrap(); // no role for this machine's identity
    h.certificate("contoso", "web", "RSA", PFX);
    h.certificate("fabrikam", "secret-web", "RSA", PFX);
    h.certificate("contoso", "api", "EC", PEM);
    let json = h.settings_json(
        &["contoso", "fabrikam"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("fabrikam", "secret-web")),
            json!(Harness::url("contoso", "api")),
        ],
    );
    let engine = h.engine(&json);
    let report = cycle(&engine).await;
    assert!(report.certificates[0].is_installed() && !report.certificates[0].is_failed());
    assert!(report.certificates[2].is_installed() && !report.certificates[2].is_failed());
    let (code, message, installed) = failure(&report.certificates[1].outcome);
    assert!(installed.is_none());
    assert_eq!(code, "vault.forbidden", "{message}");
    assert!(
        message.contains("Key Vault Secrets User"),
        "names the missing right: {message}"
    );
    assert!(
        message.contains("system-assigned"),
        "names the identity: {message}"
    );
    assert!(message.contains("fabrikam"), "names the vault: {message}");
    assert!(!h.store().join("fabrikam.secret-web").exists());
}

#[tokio::test]
async fn throttling_and_server_error_bursts_are_retried() {
    let h = Harness::start().await;
    h.vault("contoso");
    let v1 = h.certificate("contoso", "web", "RSA", PFX);
    let json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    let engine = h.engine(&json);
    h.emulator.fail_next("contoso", &[503, 429, 500]);
    let report = cycle(&engine).await;
    assert!(report.complete(), "{report:?}");
    assert_eq!(installed_version(&report.certificates[0].outcome), v1);
    assert_eq!(h.emulator.status_count("contoso", 503), 1);
    assert_eq!(h.emulator.status_count("contoso", 429), 1);
    assert_eq!(h.emulator.status_count("contoso", 500), 1);

    // A throttled vault (Key Vault's 429 body and Retry-After) is waited out too: two
    // certificates fetched together, one request allowed per second.
    h.certificate("contoso", "api", "EC", PEM);
    let json = h.settings_json(
        &["contoso"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("contoso", "api")),
        ],
    );
    let engine = h.engine(&json);
    let throttled_before = h.emulator.status_count("contoso", 429);
    h.emulator
        .throttle("contoso", 1, std::time::Duration::from_secs(1), Some(1));
    let report = cycle(&engine).await;
    h.emulator.clear_faults("contoso");
    assert!(report.complete(), "{report:?}");
    assert!(
        h.emulator.status_count("contoso", 429) > throttled_before,
        "the vault throttled"
    );
}

#[tokio::test]
async fn certificates_of_a_vault_are_fetched_concurrently_up_to_the_bound() {
    // Every request to the vault takes LATENCY, so requests the engine sends together are in
    // flight together; the local vault records the most it handled at once.
    const LATENCY: std::time::Duration = std::time::Duration::from_millis(300);
    let h = Harness::start().await;
    h.vault("contoso");
    let names = ["a", "b", "c", "d"];
    for name in names {
        h.certificate("contoso", name, "EC", PEM);
    }
    let observed = names
        .iter()
        .map(|name| json!(Harness::url("contoso", name)))
        .collect();
    let mut json = h.settings_json(&["contoso"], observed);
    // One GET per certificate every cycle: the list check (e2e_list) would stand for them.
    json["akvvm"]["fullCheckIntervalInS"] = json!(0);
    h.emulator.add_latency("contoso", LATENCY);

    json["akvvm"]["concurrencyPerVault"] = json!(1);
    h.emulator.reset_counters();
    let report = cycle(&h.engine(&json)).await;
    assert!(report.complete(), "{report:?}");
    assert_eq!(
        h.emulator.peak_in_flight("contoso"),
        1,
        "requests overlapped although concurrencyPerVault is 1"
    );

    json["akvvm"]["concurrencyPerVault"] = json!(2);
    h.emulator.reset_counters();
    let report = cycle(&h.engine(&json)).await;
    assert!(report.complete(), "{report:?}");
    assert_eq!(
        h.emulator.peak_in_flight("contoso"),
        2,
        "with concurrencyPerVault 2 and four certificates, two requests are in flight at once"
    );

    json["akvvm"]["concurrencyPerVault"] = json!(4);
    h.emulator.reset_counters();
    let report = cycle(&h.engine(&json)).await;
    assert!(report.complete(), "{report:?}");
    let together = h.emulator.peak_in_flight("contoso");
    assert!(
        (2..=4).contains(&together),
        "with concurrencyPerVault 4 the four GETs overlap, never beyond the bound: {together}"
    );
    let answered: u64 = h
        .emulator
        .counters()
        .iter()
        .filter(|c| c.scope == "contoso" && c.status == 200)
        .map(|c| c.count)
        .sum();
    assert_eq!(
        answered, 4,
        "one versionless GET per certificate in the last cycle"
    );
}

#[tokio::test]
async fn a_restart_writes_nothing_and_reruns_no_hook() {
    let h = Harness::start().await;
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    h.certificate("contoso", "api", "EC", PEM);
    let counter = h.dir.path().join("hook-runs");
    let mut json = h.settings_json(
        &["contoso"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("contoso", "api")),
        ],
    );
    json["akvvm"]["reload"] = json!({
        "command": ["/bin/sh", "-c", format!("echo \"$AKVVM_URL $AKVVM_VERSION\" >> '{}'", counter.display())],
        "timeoutInS": 10
    });

    let first = h.engine(&json);
    assert!(cycle(&first).await.complete());
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        2,
        "one hook run per install"
    );
    drop(first);

    let store_before = snapshot(&h.store());
    let restarted = h.engine(&json);
    let interrupted = restarted
        .finish_interrupted_hooks(&tokio_util::sync::CancellationToken::new())
        .await;
    assert!(interrupted.is_empty());
    let report = cycle(&restarted).await;
    assert!(report.complete());
    assert!(
        report
            .certificates
            .iter()
            .all(|c| matches!(c.outcome, CertOutcome::Unchanged(_))),
        "{report:?}"
    );
    assert_eq!(
        snapshot(&h.store()),
        store_before,
        "no file or link was rewritten"
    );
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        2,
        "no hook re-ran"
    );
}

#[tokio::test]
async fn a_hook_interrupted_before_the_state_was_saved_runs_on_restart() {
    // A crash right after an install: the hook journal says the hook is pending, and the state
    // file (saved at most once a second during a cycle) has not recorded the version yet.
    let h = Harness::start().await;
    h.vault("contoso");
    let version = h.certificate("contoso", "web", "RSA", PFX);
    let counter = h.dir.path().join("hook-runs");
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["akvvm"]["reload"] = json!({
        "command": ["/bin/sh", "-c", format!("echo \"$AKVVM_VERSION\" >> '{}'", counter.display())],
        "timeoutInS": 10
    });
    let first = h.engine(&json);
    assert!(cycle(&first).await.complete());
    drop(first);

    std::fs::remove_file(state_file_path(&h.settings(&json))).unwrap();
    let journal_path = h.state_dir().join(akvvm::sync::hook::HOOK_JOURNAL_FILE);
    let mut journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&journal_path).unwrap()).unwrap();
    journal[Harness::url("contoso", "web")]["state"] = json!("pending");
    std::fs::write(&journal_path, serde_json::to_vec(&journal).unwrap()).unwrap();

    let restarted = h.engine(&json);
    let finished = restarted
        .finish_interrupted_hooks(&tokio_util::sync::CancellationToken::new())
        .await;
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(finished[0].hook, HookOutcome::Succeeded);
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        format!("{version}\n{version}\n"),
        "the hook ran once at install and once more on restart"
    );
    let report = cycle(&restarted).await;
    assert!(report.complete());
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        2,
        "and not again"
    );
}

#[tokio::test]
async fn a_lost_state_file_is_rebuilt_from_the_store_without_rewriting_it() {
    let h = Harness::start().await;
    h.vault("contoso");
    let v1 = h.certificate("contoso", "web", "RSA", PFX);
    let json = h.settings_json(
        &["contoso"],
        vec![json!({"url": Harness::url("contoso", "web"), "customSymbolicLinkName": "nginx"})],
    );
    let first = h.engine(&json);
    assert!(cycle(&first).await.complete());
    let state_path = state_file_path(first.settings());
    let before = StateFile::load(&state_path).unwrap();
    let thumbprint = before
        .entry(&Harness::url("contoso", "web"))
        .unwrap()
        .thumbprint
        .clone();
    drop(first);

    std::fs::remove_file(&state_path).unwrap();
    let store_before = snapshot(&h.store());
    let restarted = h.engine(&json);
    let report = cycle(&restarted).await;
    assert!(
        matches!(&report.certificates[0].outcome, CertOutcome::Unchanged(i) if i.version == v1),
        "{report:?}"
    );
    assert_eq!(
        snapshot(&h.store()),
        store_before,
        "nothing installed again"
    );
    let rebuilt = StateFile::load(&state_path).unwrap();
    let entry = rebuilt.entry(&Harness::url("contoso", "web")).unwrap();
    assert_eq!(entry.installed_version.as_deref(), Some(v1.as_str()));
    assert_eq!(entry.thumbprint, thumbprint);
    assert_eq!(entry.custom_link, Some(h.store().join("nginx")));
}

#[tokio::test]
async fn the_certbot_layout_is_installed_when_asked_for() {
    let h = Harness::start().await;
    h.vault("contoso");
    let v1 = h.certificate("contoso", "web", "EC", PEM);
    let json = h.settings_json(
        &["contoso"],
        vec![json!({"url": Harness::url("contoso", "web"), "akvvm": {"certbotLayout": true}})],
    );
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete());
    let live = h.store().join("contoso.web.live");
    assert_eq!(link_target(&live), format!("contoso.web.{v1}.d"));
    for name in [
        "cert.pem",
        "chain.pem",
        "fullchain.pem",
        "privkey.pem",
        "cert.pfx",
    ] {
        assert!(live.join(name).is_file(), "{name}");
    }
    // cert.pfx holds the same certificate and key, with Key Vault's empty password.
    let pfx =
        akvvm::cert::certificate::decode_pfx(&std::fs::read(live.join("cert.pfx")).unwrap(), "")
            .expect("cert.pfx decodes");
    let read = |name: &str| std::fs::read_to_string(live.join(name)).unwrap();
    let pem = akvvm::cert::certificate::decode_pem(&(read("fullchain.pem") + &read("privkey.pem")))
        .expect("the PEM files decode");
    assert_eq!(pfx.thumbprint(), pem.thumbprint());
    assert_eq!(pfx.key.pkcs8_der(), pem.key.pkcs8_der());
    let state = StateFile::load(&state_file_path(engine.settings())).unwrap();
    assert_eq!(
        state
            .entry(&Harness::url("contoso", "web"))
            .unwrap()
            .live_link,
        Some(live)
    );
}

/// What the agent keeps about its work is root's alone: the state directory 0700, the state
/// file and the hook journal (which keeps failing hooks' output) 0600.
#[tokio::test(flavor = "multi_thread")]
async fn the_state_directory_and_files_are_roots_alone() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    let h = Harness::start().await;
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    let mut observed = json!({"url": Harness::url("contoso", "web")});
    observed["akvvm"] =
        json!({"reload": {"command": ["/bin/sh", "-c", "echo failing; exit 1"], "timeoutInS": 10}});
    let json = h.settings_json(&["contoso"], vec![observed]);
    let engine = h.engine(&json);
    akvvm_testkit::harness::cycle(&engine).await;
    let state = h.state_dir();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("state.json")), 0o600);
    assert_eq!(mode(&state.join("hooks.json")), 0o600);
}

#[tokio::test]
async fn a_hook_is_journalled_as_pending_before_its_install_moves_anything() {
    // The checkpoint: an install that fails at its first link swap (a directory stands where the
    // custom link goes, and the custom link moves before the stable one). Whatever the engine
    // wrote to the journal before it called the store is there; had it journalled after the
    // install, a crash between the two would lose the hook, and here no pending record would be.
    let h = Harness::start().await;
    h.vault("contoso");
    let v1 = h.certificate("contoso", "web", "RSA", PFX);
    let counter = h.dir.path().join("hook-runs");
    let url = Harness::url("contoso", "web");
    let mut json = h.settings_json(
        &["contoso"],
        vec![json!({"url": url, "customSymbolicLinkName": "nginx"})],
    );
    json["akvvm"]["reload"] = json!({
        "command": ["/bin/sh", "-c", format!("echo \"$AKVVM_VERSION\" >> '{}'", counter.display())],
        "timeoutInS": 10
    });
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete());
    let journal_path = h.state_dir().join(akvvm::sync::hook::HOOK_JOURNAL_FILE);
    let journal = |field: &str| -> serde_json::Value {
        let journal: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&journal_path).unwrap()).unwrap();
        journal[&url][field].clone()
    };
    assert_eq!(journal("state"), json!("succeeded"));

    let v2 = h
        .emulator
        .rotate_certificate("contoso", "web")
        .unwrap()
        .version;
    let custom = h.store().join("nginx");
    std::fs::remove_file(&custom).unwrap();
    std::fs::create_dir(&custom).unwrap();
    let report = cycle(&engine).await;
    assert!(!report.complete(), "the install fails at the custom link");
    assert_eq!(
        journal("version"),
        json!(v2),
        "journalled before the install"
    );
    assert_eq!(journal("state"), json!("pending"));
    assert_eq!(
        link_target(&h.store().join("contoso.web")),
        format!("contoso.web.{v1}")
    );
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        format!("{v1}\n"),
        "no hook ran for a version not in place"
    );

    // Once the way is clear, the version installs and its hook runs, once.
    std::fs::remove_dir(&custom).unwrap();
    assert!(cycle(&engine).await.complete());
    assert_eq!(journal("state"), json!("succeeded"));
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap(),
        format!("{v1}\n{v2}\n")
    );
}
