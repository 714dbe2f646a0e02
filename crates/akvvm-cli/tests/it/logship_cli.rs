//! `loggingSettings` end to end: the real `akvvm` binary forwards its own log records to the
//! testkit's Fluentd collector (`sync --once` over TCP, `run` under a handler environment over a
//! unix socket, with the status file's `loggingSettings` line), and a collector that is down
//! changes nothing of what a sync installs.

use crate::agent_command::{akvvm_logging, output};
use crate::extension_dir::ExtensionDir;
use std::process::Command;
use std::time::Duration;

use akvvm_testkit::fluent::{Collector, Mode, Value};
use akvvm_testkit::harness::{Harness, PFX, eventually, link_target};
use serde_json::json;

fn akvvm() -> Command {
    akvvm_logging("akvvm=info,akvvm_cli=info,warn")
}

/// Whether any string in the record contains `needle`.
fn mentions(record: &std::collections::BTreeMap<String, Value>, needle: &str) -> bool {
    record
        .values()
        .any(|v| v.as_str().is_some_and(|s| s.contains(needle)))
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_once_forwards_its_records_to_fluentd() {
    let h = Harness::start().await;
    h.vault("contoso");
    let version = h.certificate("contoso", "web", "RSA", PFX);
    let collector = Collector::tcp();
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["loggingSettings"] = json!({
        "logger": "fluentd", "endpoint": collector.endpoint(), "format": "forward",
        "servicename": "akvvm.e2e"
    });
    let settings = h.settings_file(&json);
    let mut command = akvvm();
    command
        .args(["sync", "--once", "--settings"])
        .arg(&settings);
    let out = output(command).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        link_target(&h.store().join("contoso.web")),
        format!("contoso.web.{version}")
    );
    // Everything was sent before the process exited: no waiting here.
    let events = collector.events();
    assert!(!events.is_empty(), "{stderr}");
    assert!(events.iter().all(|e| e.tag == "akvvm.e2e"));
    assert!(events.iter().all(|e| e.time.ext));
    assert!(
        events
            .iter()
            .any(|e| e.str("message") == Some("forwarding log records to fluentd")),
        "{events:?}"
    );
    let url = Harness::url("contoso", "web");
    assert!(
        events
            .iter()
            .any(|e| e.str("target").is_some_and(|t| t.starts_with("akvvm"))
                && mentions(&e.record, &url)),
        "the sync's own records name the certificate: {events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| matches!(e.str("level"), Some("INFO" | "WARN" | "ERROR"))),
        "the same filter as stderr"
    );
    for message in collector.messages() {
        assert_eq!(message.mode, Mode::Forward);
        assert!(message.chunk.is_some());
    }
    assert!(collector.errors().is_empty(), "{:?}", collector.errors());
    assert!(
        !stderr.contains("log forwarding to"),
        "no trouble: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_is_down_changes_nothing_a_sync_does() {
    let h = Harness::start().await;
    h.vault("contoso");
    let version = h.certificate("contoso", "web", "RSA", PFX);
    let collector = Collector::tcp_down();
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["loggingSettings"] = json!({"logger": "fluentd", "endpoint": collector.endpoint()});
    let settings = h.settings_file(&json);
    let mut command = akvvm();
    command
        .args(["sync", "--once", "--settings"])
        .arg(&settings);
    let out = output(command).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&format!("installed  {}", Harness::url("contoso", "web"))));
    assert_eq!(
        link_target(&h.store().join("contoso.web")),
        format!("contoso.web.{version}")
    );
    let prefix = format!("akvvm: log forwarding to {}: ", collector.endpoint());
    assert!(
        stderr.contains(&format!("{prefix}cannot connect")),
        "{stderr}"
    );
    assert!(
        stderr.contains("log records could not be sent before exit"),
        "{stderr}"
    );
    assert_eq!(collector.connections(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn run_under_the_guest_agent_forwards_over_a_unix_socket_and_reports_it() {
    let h = Harness::start().await;
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    let socket = h.dir.path().join("fluentd.sock");
    let collector = Collector::unix(&socket);
    let mut public = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    public["secretsManagementSettings"]["pollingIntervalInS"] = json!("3600");
    public["loggingSettings"] = json!({"logger": "fluentd", "endpoint": collector.endpoint()});

    let ext = ExtensionDir::create(h.dir.path(), "extension");
    ext.write_settings(0, &public);
    let daemon = akvvm()
        .args(["run", "--handler-environment"])
        .arg(&ext.environment)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = ext.status_file(0);
    let forwarding = || {
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&status_file).ok()?).ok()?;
        value[0]["status"]["substatus"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "loggingSettings")
            .cloned()
    };
    let reported = eventually(Duration::from_secs(30), || {
        forwarding().is_some_and(|s| s["status"] == "success")
            && collector
                .events()
                .iter()
                .any(|e| mentions(&e.record, &Harness::url("contoso", "web")))
    })
    .await;
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let exit = tokio::task::spawn_blocking(move || daemon.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&exit.stderr).into_owned();
    assert!(reported, "{:?} {stderr}", forwarding());
    assert!(exit.status.success(), "{stderr}");
    let line = forwarding().unwrap();
    let message = line["formattedMessage"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "forwarding logs to fluentd at {} (tag akvvm_service): ",
            collector.endpoint()
        )),
        "{message}"
    );
    assert!(message.contains(" 0 dropped"), "{message}");
    // The SIGTERM line was flushed at exit.
    assert!(
        collector
            .events()
            .iter()
            .any(|e| e.str("message") == Some("SIGTERM: stopping")),
        "{:?}",
        collector.events()
    );
    assert!(collector.events().iter().all(|e| e.tag == "akvvm_service"));
}

#[test]
fn validate_names_where_the_logs_go_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, logging: serde_json::Value| {
        let path = dir.path().join(name);
        let settings = json!({
            "secretsManagementSettings": {"observedCertificates": ["https://v.vault.azure.net/secrets/c"]},
            "loggingSettings": logging,
        });
        std::fs::write(&path, serde_json::to_vec(&settings).unwrap()).unwrap();
        path
    };
    // The documented example, as the 3.x and 4.x pages write it.
    let good = write(
        "good.json",
        json!({"logger": "fluentd", "endpoint": "tcp://localhost:24224", "format": "forward", "servicename": "akvvm_service"}),
    );
    let out = akvvm().arg("validate").arg(&good).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "  logging: forwarded to fluentd at tcp://localhost:24224 (Forward protocol, tag akvvm_service)\n"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("warning["),
        "no more 'recorded only' warning: {stdout}"
    );
    let unix = write(
        "unix.json",
        json!({"logger": "fluentd", "endpoint": "unix:///var/run/td-agent/td-agent.sock"}),
    );
    let out = akvvm().arg("validate").arg(&unix).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(
            "at unix:///var/run/td-agent/td-agent.sock (Forward protocol, tag akvvm_service)"
        ),
        "{stdout}"
    );

    let bad = write(
        "bad.json",
        json!({"logger": "splunk", "endpoint": "http://localhost:24224", "format": "json"}),
    );
    let out = akvvm().arg("validate").arg(&bad).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for expected in [
        "error[logging-unknown-logger] settings.loggingSettings.logger: logger \"splunk\" is not supported: akvvm forwards logs to \"fluentd\" only",
        "error[logging-unknown-format] settings.loggingSettings.format: format \"json\" is not supported",
        "error[logging-endpoint-scheme] settings.loggingSettings.endpoint: endpoint \"http://localhost:24224\": scheme \"http\" is not supported: akvvm supports tcp:// and unix://",
    ] {
        assert!(stdout.contains(expected), "{expected}\n{stdout}");
    }
}
