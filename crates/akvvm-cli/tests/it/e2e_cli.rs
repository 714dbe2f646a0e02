//! End-to-end: the `akvvm` binary against the local vault (started in this test process):
//! `sync --once`, `status`, `list`, and `run` with `sync --now` (SIGHUP) and SIGTERM. The
//! README's first command, the demo, is tested next to it in the emulator crate.

use crate::agent_command::{akvvm_logging, output};
use crate::extension_dir::{DaemonGuard, ExtensionDir, read_status};
use std::process::{Command, Stdio};
use std::time::Duration;

use akvvm_testkit::harness::{self, Harness, PEM, PFX, eventually, link_target};
use serde_json::json;

fn akvvm() -> Command {
    akvvm_logging("akvvm=info,warn")
}

/// `akvvm sync --once --settings SETTINGS`.
fn sync_once(settings: &std::path::Path) -> Command {
    let mut command = akvvm();
    command.args(["sync", "--once", "--settings"]).arg(settings);
    command
}

/// Runs a blocking command off the async runtime (the local vault runs on it).
#[tokio::test(flavor = "multi_thread")]
async fn sync_once_status_and_list() {
    let h = Harness::start().await;
    h.vault("contoso");
    let web = h.certificate("contoso", "web", "RSA", PFX);
    h.certificate("contoso", "api", "EC", PEM);
    let mut json = h.settings_json(
        &["contoso"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("contoso", "absent")),
        ],
    );
    let settings = h.settings_file(&json);

    // One certificate is missing: exit status 1, the other is installed all the same.
    let out = output(sync_once(&settings)).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "installed  {}  version {web}",
            Harness::url("contoso", "web")
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("FAILED     {}", Harness::url("contoso", "absent"))),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("installed a new certificate version"),
        "a log line per install: {stderr}"
    );

    json["secretsManagementSettings"]["observedCertificates"] = json!([
        Harness::url("contoso", "web"),
        Harness::url("contoso", "api")
    ]);
    let settings = h.settings_file(&json);
    let out = output(sync_once(&settings)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let mut command = akvvm();
    command
        .args(["status", "--json", "--settings"])
        .arg(&settings);
    let out = output(command).await;
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let web_row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["url"] == Harness::url("contoso", "web"))
        .unwrap();
    assert_eq!(web_row["installedVersion"], web.as_str());
    assert_eq!(web_row["thumbprint"].as_str().unwrap().len(), 40);
    assert!(web_row["lastCheck"].is_string());

    let mut command = akvvm();
    command.args(["status", "--state-dir"]).arg(h.state_dir());
    let out = output(command).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("CERTIFICATE"), "{table}");
    assert!(table.contains(&web), "{table}");

    let mut command = akvvm();
    command.args(["list", "--settings"]).arg(&settings);
    let out = output(command).await;
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.contains(&h.store().join("contoso.web").display().to_string()),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_syncs_now_on_request_and_stops_on_sigterm() {
    let h = Harness::start().await;
    h.vault("contoso");
    let v1 = h.certificate("contoso", "web", "RSA", PFX);
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["secretsManagementSettings"]["pollingIntervalInS"] = json!("3600");
    let metrics_address = free_loopback_address();
    json["akvvm"]["metricsAddress"] = json!(metrics_address.to_string());
    let settings = h.settings_file(&json);

    let mut daemon = akvvm()
        .args(["run", "--settings"])
        .arg(&settings)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let link = h.store().join("contoso.web");
    let pid_file = h.state_dir().join("akvvm.pid");
    assert!(
        eventually(Duration::from_secs(20), || {
            pid_file.exists()
                && std::fs::read_link(&link).is_ok_and(|t| t.to_string_lossy().ends_with(&v1))
        })
        .await,
        "the daemon installs the certificate"
    );

    // A new version; polling is hourly, so only `sync --now` (SIGHUP) brings it in quickly.
    let v2 = h
        .emulator
        .rotate_certificate("contoso", "web")
        .unwrap()
        .version;
    let mut command = akvvm();
    command.args(["sync", "--now", "--settings"]).arg(&settings);
    let out = output(command).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(Duration::from_secs(20), || std::fs::read_link(&link)
            .is_ok_and(|t| t.to_string_lossy().ends_with(&v2)))
        .await,
        "the daemon synced on request"
    );

    // The metrics listener of `akvvm.metricsAddress` shows the rotation.
    let metrics = tokio::task::spawn_blocking(move || http_get(metrics_address, "/metrics"))
        .await
        .unwrap();
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let installs = format!(
        "akvvm_certificate_installs_total{{url=\"{}\",vault=\"contoso\",name=\"web\"}} 2",
        Harness::url("contoso", "web")
    );
    assert!(metrics.lines().any(|l| l == installs), "{metrics}");

    let kill = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || daemon.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(!pid_file.exists(), "the pid file is removed");
}

/// A loopback address with a port that was free a moment ago.
fn free_loopback_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A plain HTTP/1.1 GET, the whole answer (status line, headers, body) as text.
fn http_get(address: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("the listener accepts");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn handler_enable_disable_uninstall_without_systemd() {
    let h = Harness::start().await;
    h.vault("contoso");
    // The certificate is created only after `enable` has returned: `enable` starts the agent
    // and returns; it does not wait for the initial sync, even with requireInitialSync.
    let mut public = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    public["secretsManagementSettings"]["requireInitialSync"] = json!(true);
    public["secretsManagementSettings"]["pollingIntervalInS"] = json!("3600");
    // The certbot layout too: `uninstall --remove-certificates` must take it away as well.
    public["akvvm"]["certbotLayout"] = json!(true);

    let ext = ExtensionDir::create(h.dir.path(), "extension");
    ext.write_settings(0, &public);
    let _guard = DaemonGuard(h.state_dir().join("akvvm.pid"));
    let handler = |operation: &[&str]| {
        let mut command = akvvm();
        command
            .arg("handler")
            .args(operation)
            .args(["--service-manager", "none", "--handler-environment"])
            .arg(&ext.environment)
            .env_remove("ConfigSequenceNumber");
        command
    };

    let out = output(handler(&["install"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output(handler(&["enable"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status_file = ext.status_file(0);
    assert!(
        read_status(&status_file).is_none_or(|s| s["status"] != "success"),
        "{:?}",
        read_status(&status_file)
    );
    let version = h.certificate("contoso", "web", "RSA", PFX);
    assert!(
        eventually(Duration::from_secs(20), || read_status(&status_file)
            .is_some_and(|s| s["status"] == "success"))
        .await,
        "{:?}",
        read_status(&status_file)
    );
    assert_eq!(
        link_target(&h.store().join("contoso.web")),
        format!("contoso.web.{version}")
    );
    assert!(
        h.store()
            .join(format!("contoso.web.{version}.d/privkey.pem"))
            .exists()
    );
    assert!(h.store().join("contoso.web.live").exists());

    // Enable again (the guest agent may): still fine, one daemon.
    let out = output(handler(&["enable"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(Duration::from_secs(20), || read_status(&status_file)
            .is_some_and(|s| s["status"] == "success"))
        .await
    );

    // New settings that do not validate: an error status for that sequence number, and a failure.
    let mut broken = public.clone();
    broken["secretsManagementSettings"]["pollingIntervalInSec"] = json!("60");
    ext.write_settings(1, &broken);
    let out = output(handler(&["enable"])).await;
    assert!(!out.status.success());
    let error = read_status(&ext.status_file(1)).expect("1.status");
    assert_eq!(error["status"], "error");
    assert!(
        error["formattedMessage"]["message"]
            .as_str()
            .unwrap()
            .contains("pollingIntervalInSec"),
        "{error}"
    );

    // Disable while the newest settings are the broken ones (as when a user disables a broken
    // extension): the daemon the last valid settings started is found and stopped all the same.
    let pid_file = h.state_dir().join("akvvm.pid");
    assert!(pid_file.exists());
    let out = output(handler(&["disable"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!pid_file.exists(), "the daemon stopped");
    assert!(
        h.store().join("contoso.web").exists(),
        "disable leaves certificates"
    );
    std::fs::remove_file(ext.config.join("1.settings")).unwrap();

    let out = output(handler(&["uninstall"])).await;
    assert!(out.status.success());
    assert!(
        h.store().join("contoso.web").exists(),
        "uninstall leaves certificates by default"
    );
    // A state journal (what a pushed rotation leaves beside the state file) goes with the state.
    let journal = h.state_dir().join("state.json.journal");
    std::fs::write(&journal, "{\"journal\":1}\n").unwrap();
    let out = output(handler(&["uninstall", "--remove-certificates"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!journal.exists(), "the state journal is removed");
    assert!(!h.store().join("contoso.web").exists());
    assert!(!h.store().join(format!("contoso.web.{version}")).exists());
    // Nothing of the certificate is left: no certbot directory with its privkey.pem and
    // cert.pfx, no `.live` link.
    let left: Vec<String> = std::fs::read_dir(h.store())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("contoso.web"))
        .collect();
    assert!(left.is_empty(), "left in the store: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_carry_syslog_priorities_when_stderr_is_the_journal() {
    use std::os::unix::fs::MetadataExt;

    let h = Harness::start().await;
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    let json = h.settings_json(
        &["contoso"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("contoso", "absent")),
        ],
    );
    let settings = h.settings_file(&json);
    let sync_logging_to = |log: &std::path::Path, journal: bool| {
        let file = std::fs::File::create(log).unwrap();
        let meta = file.metadata().unwrap();
        let mut command = sync_once(&settings);
        command.stderr(Stdio::from(file));
        if journal {
            // What systemd sets when it connects stderr to the journal.
            command.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        } else {
            // Inherited from a parent whose stream this is not.
            command.env("JOURNAL_STREAM", "1:1");
        }
        command
    };

    let journal_log = h.dir.path().join("journal.log");
    let out = output(sync_logging_to(&journal_log, true)).await;
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&journal_log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("<6>INFO ")
            && l.contains("installed a new certificate version")
            && l.contains("thumbprint=")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4>WARN ") && l.contains("certificate check failed")),
        "{text}"
    );
    assert!(
        lines.iter().all(|l| l.starts_with('<')),
        "every line has its priority: {text}"
    );
    assert!(!text.contains('\u{1b}'), "no colour codes: {text}");
    assert!(!text.contains("PRIVATE KEY") && !text.contains("eyJ"));

    // stderr is not the journal: ordinary lines with a timestamp, no priority prefix.
    let plain_log = h.dir.path().join("plain.log");
    std::fs::remove_dir_all(h.store()).unwrap();
    let out = output(sync_logging_to(&plain_log, false)).await;
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&plain_log).unwrap();
    assert!(
        text.contains("installed a new certificate version"),
        "{text}"
    );
    assert!(text.lines().all(|l| !l.starts_with('<')), "{text}");
    assert!(
        text.lines().all(|l| l.starts_with("20")),
        "timestamped: {text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes in a file: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cscfg_check_finds_each_role_certificate_or_says_why_not() {
    let h = Harness::start().await;
    h.vault("contoso");
    let web = h
        .emulator
        .create_certificate("contoso", "web", &harness::policy("RSA", PFX, "web"))
        .unwrap();
    let json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    let settings = h.settings_file(&json);
    assert!(output(sync_once(&settings)).await.status.success());

    // What the guest agent placed from osProfile.secrets.
    let waagent = h.dir.path().join("waagent");
    std::fs::create_dir_all(&waagent).unwrap();
    let bootstrap = "0123456789ABCDEF0123456789ABCDEF01234567";
    std::fs::write(waagent.join(format!("{bootstrap}.crt")), "").unwrap();

    let write_cscfg = |certificates: &str| {
        let path = h.dir.path().join("service.cscfg");
        std::fs::write(
            &path,
            format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ServiceConfiguration serviceName=\"contoso\" xmlns=\"http://schemas.microsoft.com/ServiceHosting/2008/10/ServiceConfiguration\" osFamily=\"7\" osVersion=\"*\">\n  <Role name=\"WebRole1\">\n    <Instances count=\"1\" />\n    <Certificates>\n{certificates}    </Certificates>\n  </Role>\n</ServiceConfiguration>\n"
            ),
        )
        .unwrap();
        path
    };
    let check = |cscfg: &std::path::Path, json: bool| {
        let mut command = akvvm();
        command
            .args(["cscfg", "check"])
            .arg(cscfg)
            .arg("--settings")
            .arg(&settings)
            .arg("--bootstrap-dir")
            .arg(&waagent);
        if json {
            command.arg("--json");
        }
        command
    };

    let all_there = write_cscfg(&format!(
        "      <Certificate name=\"ssl\" thumbprint=\"{}\" thumbprintAlgorithm=\"sha1\" />\n      <Certificate name=\"boot\" thumbprint=\"{}\" thumbprintAlgorithm=\"sha1\" />\n",
        web.thumbprint.to_lowercase(),
        bootstrap
    ));
    let out = output(check(&all_there, false)).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "installed: {} (from {})",
            h.store()
                .join(format!("contoso.web.{}", web.version))
                .display(),
            Harness::url("contoso", "web")
        )),
        "{stdout}"
    );
    assert!(stdout.contains("(guest agent)"), "{stdout}");
    assert!(
        stdout.contains("all 2 certificates are installed"),
        "{stdout}"
    );

    let broken = write_cscfg(&format!(
        "      <Certificate name=\"ssl\" thumbprint=\"{}\" thumbprintAlgorithm=\"sha1\" />\n      <Certificate name=\"gone\" thumbprint=\"{}\" thumbprintAlgorithm=\"sha1\" />\n      <Certificate name=\"copied\" thumbprint=\"\u{200e}{}\" thumbprintAlgorithm=\"sha1\" />\n",
        web.thumbprint, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", web.thumbprint
    ));
    let out = output(check(&broken, false)).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("MISSING: no installed certificate has this thumbprint"),
        "{stdout}"
    );
    assert!(
        stdout.contains("BAD THUMBPRINT (line 8): character 1 is an invisible U+200E"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 of 3 certificates are not installed"),
        "{stdout}"
    );

    let out = output(check(&broken, true)).await;
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["installed", "missing", "badThumbprint"]);
    assert_eq!(findings[0]["role"], "WebRole1");
    assert_eq!(
        findings[0]["locations"][0]["url"],
        Harness::url("contoso", "web")
    );

    // The service definition instead of the configuration: exit 2, saying so.
    let csdef = h.dir.path().join("service.csdef");
    std::fs::write(&csdef, "<ServiceDefinition name=\"contoso\" />").unwrap();
    let out = output(check(&csdef, false)).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not the service definition (.csdef)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inspect_reads_a_certificate_straight_from_the_vault() {
    let h = Harness::start().await;
    h.vault("contoso");
    let v1 = h
        .emulator
        .create_certificate("contoso", "web", &harness::policy("RSA", PFX, "web"))
        .unwrap();
    let v2 = h.emulator.rotate_certificate("contoso", "web").unwrap();
    let json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    let settings = h.settings_file(&json);
    let inspect = |url: String, extra: &[&str]| {
        let mut command = akvvm();
        command
            .arg("inspect")
            .arg(url)
            .args(extra)
            .arg("--settings")
            .arg(&settings);
        command
    };

    // The latest version, as the agent would install it; nothing is written to the store.
    let out = output(inspect(Harness::url("contoso", "web"), &[])).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("thumbprint:  {}", v2.thumbprint)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "/secrets/web/{} (Key Vault secret, PFX)",
            v2.version
        )),
        "{stdout}"
    );
    assert!(!h.store().exists(), "inspect installs nothing");

    // A pinned version, as JSON.
    let url = format!("{}/{}", Harness::url("contoso", "web"), v1.version);
    let out = output(inspect(url, &["--json"])).await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["thumbprint"], v1.thumbprint.as_str());

    // What is wrong, said plainly.
    let out = output(inspect(Harness::url("contoso", "absent"), &[])).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("vault.secret_not_found"), "{stderr}");
    let mut command = akvvm();
    command.arg("inspect").arg(Harness::url("contoso", "web"));
    let out = output(command).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs an identity: give --settings FILE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output(inspect(
        "http://contoso.vault.azure.net/secrets/web".into(),
        &[],
    ))
    .await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a Key Vault secret URL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
