//! End-to-end: the polling loop with its status file, `requireInitialSync`, the immediate-sync
//! trigger (SIGHUP) and clean cancellation (SIGTERM), against the local vault.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use akvvm::agent::{self, AgentError, AgentOptions};
use akvvm::status::StatusFile;
use akvvm_testkit::harness::{Harness, PEM, PFX, eventually};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

struct Running {
    cancel: CancellationToken,
    trigger: Arc<Notify>,
    task: tokio::task::JoinHandle<Result<(), AgentError>>,
    status: StatusFile,
}

/// The agent as `akvvm run` starts it, reporting to a status file, without systemd.
fn start(h: &Harness, json: &Value) -> Running {
    let settings = h.settings(json);
    let status_dir = h.dir.path().join("status");
    std::fs::create_dir_all(&status_dir).unwrap();
    let status = StatusFile::new(&status_dir, 3);
    let cancel = CancellationToken::new();
    let trigger = Arc::new(Notify::new());
    let options = AgentOptions {
        status_file: Some(status.clone()),
        ..AgentOptions::default()
    };
    let task = tokio::spawn(agent::run(
        settings,
        options,
        cancel.clone(),
        trigger.clone(),
    ));
    Running {
        cancel,
        trigger,
        task,
        status,
    }
}

fn read_status(path: &Path) -> Option<Value> {
    let bytes = std::fs::read(path).ok()?;
    let value: Value =
        serde_json::from_slice(&bytes).expect("the status file is always complete JSON");
    Some(value[0]["status"].clone())
}

fn state_of(path: &Path) -> String {
    read_status(path)
        .map(|s| s["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

async fn stop(running: Running) {
    running.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .expect("the loop stops promptly on cancellation")
        .unwrap()
        .expect("the agent starts");
}

#[tokio::test]
async fn require_initial_sync_is_transitioning_until_every_certificate_is_installed() {
    let h = Harness::start().await;
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    let mut json = h.settings_json(
        &["contoso"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("contoso", "late")),
        ],
    );
    json["secretsManagementSettings"]["requireInitialSync"] = json!(true);
    json["secretsManagementSettings"]["pollingIntervalInS"] = json!("3600");
    json["akvvm"]["initialSyncRetries"] = json!(1000);
    let running = start(&h, &json);
    let path = running.status.path().to_path_buf();

    assert!(
        eventually(Duration::from_secs(10), || {
            read_status(&path)
                .is_some_and(|s| s["substatus"].as_array().is_some_and(|a| a.len() == 2))
        })
        .await,
        "a status with both certificates"
    );
    let status = read_status(&path).unwrap();
    assert_eq!(status["status"], "transitioning", "{status}");
    assert_eq!(status["operation"], "Enable");
    assert_eq!(
        status["substatus"][0]["name"],
        Harness::url("contoso", "web")
    );
    assert_eq!(status["substatus"][0]["status"], "success");
    assert_eq!(status["substatus"][1]["status"], "error");
    assert!(
        status["formattedMessage"]["message"]
            .as_str()
            .unwrap()
            .contains("1 of 2"),
        "{status}"
    );

    // The missing certificate appears; SIGHUP (the trigger) syncs at once.
    h.certificate("contoso", "late", "EC", PEM);
    running.trigger.notify_one();
    assert!(
        eventually(Duration::from_secs(10), || state_of(&path) == "success").await,
        "{:?}",
        read_status(&path)
    );
    let status = read_status(&path).unwrap();
    assert!(
        status["substatus"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "success"),
        "{status}"
    );
    assert!(h.store().join("contoso.late").exists());
    stop(running).await;
}

#[tokio::test]
async fn require_initial_sync_reports_error_after_the_retry_budget_and_keeps_retrying() {
    let h = Harness::start().await;
    h.vault("contoso");
    let mut json = h.settings_json(
        &["contoso"],
        vec![json!(Harness::url("contoso", "missing"))],
    );
    json["secretsManagementSettings"]["requireInitialSync"] = json!(true);
    json["akvvm"]["initialSyncRetries"] = json!(2);
    let running = start(&h, &json);
    let path = running.status.path().to_path_buf();

    // Keep the status that first showed `error`: retrying goes on, so a later read may
    // already count a third attempt.
    let mut seen = None;
    assert!(
        eventually(Duration::from_secs(15), || {
            seen = read_status(&path).filter(|s| s["status"] == "error");
            seen.is_some()
        })
        .await,
        "{:?}",
        read_status(&path)
    );
    let status = seen.unwrap();
    let message = status["formattedMessage"]["message"].as_str().unwrap();
    let attempts: u32 = message
        .split("after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count in {message:?}"));
    assert!(
        attempts >= 2 && message.contains("still retrying"),
        "{message}"
    );
    assert_eq!(status["code"], 1);
    assert_eq!(status["substatus"][0]["status"], "error");

    // Retrying goes on in the background: once the certificate exists, success.
    h.certificate("contoso", "missing", "RSA", PFX);
    assert!(
        eventually(Duration::from_secs(15), || state_of(&path) == "success").await,
        "{:?}",
        read_status(&path)
    );
    assert!(h.store().join("contoso.missing").exists());
    stop(running).await;
}

#[tokio::test]
async fn without_require_initial_sync_polling_reports_success_and_failed_hooks_are_warnings() {
    let h = Harness::start().await;
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    let runs = h.dir.path().join("runs");
    let json = h.settings_json(
        &["contoso"],
        vec![json!({
            "url": Harness::url("contoso", "web"),
            "akvvm": { "reload": { "command": ["/bin/sh", "-c", format!("echo run >> '{}'; exit 7", runs.display())], "timeoutInS": 5 } }
        })],
    );
    let running = start(&h, &json);
    let path = running.status.path().to_path_buf();

    assert!(
        eventually(Duration::from_secs(15), || {
            read_status(&path).is_some_and(|s| s["substatus"][0]["status"] == "warning")
        })
        .await,
        "{:?}",
        read_status(&path)
    );
    let status = read_status(&path).unwrap();
    assert_eq!(status["status"], "success");
    let message = status["substatus"][0]["formattedMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("reload hook failed") && message.contains("exit status: 7"),
        "{message}"
    );
    // Retried a bounded number of times, then left alone: no loop, though polling goes on
    // (every second here).
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 3);
    running.trigger.notify_one();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap().lines().count(),
        3,
        "not re-run without a new version"
    );
    let status = read_status(&path).unwrap();
    assert_eq!(
        status["substatus"][0]["status"], "warning",
        "still reported: {status}"
    );
    stop(running).await;
}

#[tokio::test]
async fn a_failing_certificate_does_not_stop_the_polling_of_the_others() {
    let h = Harness::start().await;
    h.vault("contoso");
    let v1 = h.certificate("contoso", "web", "RSA", PFX);
    let json = h.settings_json(
        &["contoso"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("contoso", "never")),
        ],
    );
    let running = start(&h, &json);
    let link = h.store().join("contoso.web");
    let on_version = |version: &str| {
        std::fs::read_link(&link).is_ok_and(|t| t.to_string_lossy().ends_with(version))
    };
    assert!(eventually(Duration::from_secs(10), || on_version(&v1)).await);

    // Polling goes on every second for the healthy certificate while the other keeps failing.
    let v2 = h
        .emulator
        .rotate_certificate("contoso", "web")
        .unwrap()
        .version;
    assert!(
        eventually(Duration::from_secs(10), || on_version(&v2)).await,
        "the rotation was picked up"
    );
    let status = read_status(running.status.path()).unwrap();
    assert_eq!(status["substatus"][1]["status"], "error", "{status}");
    stop(running).await;
}
