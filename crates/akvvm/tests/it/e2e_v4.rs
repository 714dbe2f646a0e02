//! End-to-end in extension 4.x mode (`akvvm.extensionVersion: "4.0"`, issue 9 item 2), against
//! the local vault over HTTPS: the status is `success` only when every certificate is installed,
//! `transitioning` while one is not, and `error` naming a certificate after its attempts
//! (`initialSyncRetries`, 25 by default) while retrying goes on. Retries are made quick with the
//! engine's own options (a few milliseconds of backoff); no test asserts a timing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use akvvm::settings::ExtensionMode;
use akvvm::status::StatusFile;
use akvvm::sync::daemon::{self, DaemonOptions};
use akvvm::sync::{Engine, EngineOptions};
use akvvm_testkit::harness::{Harness, PEM, PFX, eventually};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// 4.x settings observing `names` in vault `contoso` (certificate objects, as 4.x requires).
pub(crate) fn v4_settings(h: &Harness, names: &[&str]) -> Value {
    let observed = names
        .iter()
        .map(|n| json!({ "url": Harness::url("contoso", n) }))
        .collect();
    let mut json = h.settings_json(&["contoso"], observed);
    json["secretsManagementSettings"]["pollingIntervalInS"] = json!("300");
    json["akvvm"]["extensionVersion"] = json!("4.0");
    json
}

struct Running {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    status: StatusFile,
}

/// The daemon on `json`, retrying failing certificates after a few milliseconds.
fn start(h: &Harness, json: &Value) -> Running {
    let settings = h.settings(json);
    assert_eq!(settings.mode.mode, ExtensionMode::V4);
    let options = EngineOptions {
        initial_retry_delay: Duration::from_millis(5),
        max_retry_delay: Duration::from_millis(40),
    };
    let engine = Arc::new(Engine::new(settings, options).unwrap());
    let status_dir = h.dir.path().join("status");
    std::fs::create_dir_all(&status_dir).unwrap();
    let status = StatusFile::new(&status_dir, 4);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(daemon::run(
        engine,
        DaemonOptions {
            status_file: Some(status.clone()),
            notify_systemd: false,
            requests: None,
        },
        cancel.clone(),
        Arc::new(Notify::new()),
    ));
    Running {
        cancel,
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

async fn stop(running: Running) {
    running.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .expect("the loop stops promptly on cancellation")
        .unwrap();
}

#[tokio::test]
async fn status_is_success_only_once_every_certificate_is_installed() {
    let h = Harness::start().await;
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    let mut json = v4_settings(&h, &["web", "late"]);
    // requireInitialSync false changes nothing in 4.x (a warning says so).
    json["secretsManagementSettings"]["requireInitialSync"] = json!(false);
    json["akvvm"]["initialSyncRetries"] = json!(100_000);
    let running = start(&h, &json);
    let path = running.status.path().to_path_buf();

    let mut seen = None;
    assert!(
        eventually(Duration::from_secs(15), || {
            seen = read_status(&path).filter(|s| {
                s["substatus"].as_array().is_some_and(|a| a.len() == 2)
                    && s["substatus"][0]["status"] == "success"
            });
            seen.is_some()
        })
        .await,
        "{:?}",
        read_status(&path)
    );
    let status = seen.unwrap();
    assert_eq!(status["status"], "transitioning", "{status}");
    let message = status["formattedMessage"]["message"].as_str().unwrap();
    assert!(
        message.contains("1 of 2 certificates installed"),
        "{message}"
    );
    assert_eq!(status["substatus"][1]["status"], "error");

    // The missing certificate appears: the backoff retries find it, no trigger needed.
    h.certificate("contoso", "late", "EC", PEM);
    let mut seen = None;
    assert!(
        eventually(Duration::from_secs(15), || {
            seen = read_status(&path).filter(|s| s["status"] == "success");
            seen.is_some()
        })
        .await,
        "{:?}",
        read_status(&path)
    );
    let status = seen.unwrap();
    assert_eq!(
        status["formattedMessage"]["message"],
        "2 of 2 certificates installed"
    );
    stop(running).await;
}

#[tokio::test]
async fn status_is_error_naming_the_certificate_after_25_attempts_and_retrying_goes_on() {
    let h = Harness::start().await;
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    // initialSyncRetries left at its default: the 25 attempts 4.x documents.
    let json = v4_settings(&h, &["web", "missing"]);
    let running = start(&h, &json);
    let path = running.status.path().to_path_buf();

    let mut seen = None;
    let mut transitioning = false;
    assert!(
        eventually(Duration::from_secs(30), || {
            let status = read_status(&path);
            transitioning |= status
                .as_ref()
                .is_some_and(|s| s["status"] == "transitioning");
            seen = status.filter(|s| s["status"] == "error");
            seen.is_some()
        })
        .await,
        "{:?}",
        read_status(&path)
    );
    assert!(transitioning, "transitioning before error");
    let status = seen.unwrap();
    let message = status["formattedMessage"]["message"].as_str().unwrap();
    let attempts: u32 = message
        .split("after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count in {message:?}"));
    assert!(attempts >= 25, "{message}");
    assert!(
        message.contains(&Harness::url("contoso", "missing"))
            && !message.contains(&Harness::url("contoso", "web"))
            && message.contains("1 of 2 certificates installed")
            && message.contains("still retrying"),
        "{message}"
    );
    assert_eq!(status["code"], 1);

    // Retrying goes on: once the certificate exists, success.
    h.certificate("contoso", "missing", "RSA", PFX);
    assert!(
        eventually(Duration::from_secs(15), || read_status(&path)
            .is_some_and(|s| s["status"] == "success"))
        .await,
        "{:?}",
        read_status(&path)
    );
    stop(running).await;
}
