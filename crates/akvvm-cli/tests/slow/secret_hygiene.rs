//! Secret hygiene (issue 11, standing defence 5): the real `akvvm` binary syncs, rotates, takes
//! webhook deliveries and fails (403, a secret that is no certificate, a delivery with a wrong
//! key) at `RUST_LOG=trace`, and none of the secrets it handles shows up where others look:
//! its log output, the records it forwards to Fluentd (`loggingSettings`), the state directory (status, hook journal), the metrics, the environment and
//! output of its hooks, the output of `status` and of `sync --once`.
//!
//! The secrets looked for: the private keys installed (base64 of their DER, line by line and
//! unwrapped), the PFX and PEM secret values Key Vault answered with, the access tokens the local
//! vault issued (rebuilt exactly, and anything shaped like a JWT), the client assertion and the
//! bootstrap certificate's key of an Entra application, and the webhook secret. A failure names
//! where a secret was found and which kind, never the secret.

use crate::agent_command::{akvvm_logging, output};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use akvvm_emulator::{AppSpec, IdentitySpec};
use akvvm_testkit::harness::{Harness, PEM, PFX, READER_ROLE, eventually, link_target};
use akvvm_testkit::sdk;
use serde_json::json;

const WEBHOOK_SECRET: &str = "wh-9c41e0d2b7a64f0e8d3c5a1b2e7f6d90";

fn akvvm() -> Command {
    akvvm_logging("trace")
}

/// The secrets to look for, each with the kind a failure reports.
#[derive(Default)]
struct Needles(Vec<(String, String)>);

impl Needles {
    fn add(&mut self, kind: &str, needle: impl Into<String>) {
        let needle = needle.into();
        assert!(
            needle.len() >= 16,
            "a needle of {kind} is too short to mean anything"
        );
        self.0.push((kind.to_string(), needle));
    }

    /// A base64 text (a PFX value, a DER body): 32-character pieces of it, past the ASN.1
    /// headers every key of a kind shares.
    fn add_base64(&mut self, kind: &str, base64: &str) {
        let joined: String = base64.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(joined.len() > 150, "{kind}: too short to be a key or PFX");
        // An EC key's scalar starts 48 characters in; longer texts have longer headers.
        let (mut start, step) = if joined.len() < 400 {
            (48, 32)
        } else {
            (96, 160)
        };
        while start + 32 <= joined.len() {
            self.add(kind, &joined[start..start + 32]);
            start += step;
        }
    }

    /// Every `PRIVATE KEY` block of a PEM text: each full body line, and the body unwrapped.
    fn add_pem_keys(&mut self, kind: &str, pem: &str) {
        let mut found = false;
        let mut rest = pem;
        while let Some(begin) = rest.find("PRIVATE KEY-----") {
            let body_start = begin + "PRIVATE KEY-----".len();
            let end = rest[body_start..]
                .find("-----END")
                .expect("a complete PEM block")
                + body_start;
            let body = &rest[body_start..end];
            for line in body.lines().map(str::trim).filter(|l| l.len() == 64) {
                self.add(kind, line);
            }
            self.add_base64(kind, body);
            found = true;
            // Past the END line (which ends in "PRIVATE KEY-----" too).
            rest = rest[end..].split_once('\n').map_or("", |(_, after)| after);
        }
        assert!(found, "{kind}: no private key in the PEM");
    }

    /// Where `text` holds a secret: `"<where>: <kind>"` per kind found. Never the secret.
    fn findings(&self, place: &str, text: &str) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .0
            .iter()
            .filter(|(_, needle)| text.contains(needle.as_str()))
            .map(|(kind, _)| format!("{place}: {kind}"))
            .collect();
        if let Some(offset) = jwt_offset(text) {
            kinds.push(format!(
                "{place}: a JWT (access token or client assertion) at byte {offset}"
            ));
        }
        kinds.dedup();
        kinds
    }
}

/// The offset of something shaped like a JWT (`eyJ` + base64url + `.` + base64url), if any.
fn jwt_offset(text: &str) -> Option<usize> {
    let b64url = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("eyJ").map(|i| i + from) {
        let head = bytes[i..].iter().take_while(|&&c| b64url(c)).count();
        let dot = i + head;
        if head >= 10
            && bytes.get(dot) == Some(&b'.')
            && bytes[dot + 1..].iter().take_while(|&&c| b64url(c)).count() >= 10
        {
            return Some(i);
        }
        from = i + 3;
    }
    None
}

/// Every regular file under `dir`, with its text (lossy).
fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(files_under(&path));
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// A plain HTTP/1.1 request, the whole answer as text.
fn http(address: std::net::SocketAddr, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("the listener accepts");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn free_loopback_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn delivery(
    address: std::net::SocketAddr,
    key: &str,
    vault: &str,
    name: &str,
    version: &str,
) -> String {
    let body = json!([{
        "id": "6b1c0e7a-0d7e-4c55-9f51-7f3e0c2d9a11",
        "topic": format!("/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/{vault}"),
        "subject": name,
        "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
        "data": {
            "Id": format!("https://{vault}.vault.azure.net/certificates/{name}/{version}"),
            "VaultName": vault, "ObjectType": "Certificate", "ObjectName": name,
            "Version": version, "NBF": 1_790_000_000, "EXP": 1_820_000_000
        },
        "dataVersion": "1", "metadataVersion": "1", "eventTime": "2026-11-22T10:00:00Z"
    }])
    .to_string();
    http(
        address,
        &format!(
            "POST /eventgrid?key={key} HTTP/1.1\r\nHost: {address}\r\naeg-event-type: Notification\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// The value of secret `name` (current version) as the vault answers it.
async fn secret_value(h: &Harness, token: &str, vault: &str, name: &str, version: &str) -> String {
    let client = sdk::http_client(&h.emulator, &[vault]);
    let answer: serde_json::Value = client
        .get(format!(
            "https://{vault}.vault.azure.net/secrets/{name}/{version}?api-version=7.4"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["value"]
        .as_str()
        .expect("a secret value")
        .to_string()
}

/// Every string (and binary, lossily) in a forwarded value, newline-separated.
fn collect_strings(value: &akvvm_testkit::fluent::Value, out: &mut String) {
    use akvvm_testkit::fluent::Value;
    match value {
        Value::Str(s) => out.push_str(s),
        Value::Bin(b) | Value::Ext(_, b) => out.push_str(&String::from_utf8_lossy(b)),
        Value::Array(items) => items.iter().for_each(|v| {
            out.push('\n');
            collect_strings(v, out);
        }),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            out.push('\n');
            collect_strings(k, out);
            out.push('\n');
            collect_strings(v, out);
        }),
        other => out.push_str(&format!("{other:?}")),
    }
}

/// Asserts no needle is in any of `places`, reporting only where and which kind.
fn assert_clean(needles: &Needles, places: &[(String, String)]) {
    let findings: Vec<String> = places
        .iter()
        .flat_map(|(place, text)| needles.findings(place, text))
        .collect();
    assert!(
        findings.is_empty(),
        "secrets leaked (where: which kind):\n  {}",
        findings.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_rotation_and_failures_at_trace_level_leak_no_secret() {
    let h = Harness::start_with(false).await;
    let identity = h
        .emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    h.vault("contoso");
    // A vault the identity has no role on: 403.
    h.emulator.add_vault("locked").unwrap();
    let web_v1 = h.certificate("contoso", "web", "RSA", PFX);
    let api_v1 = h.certificate("contoso", "api", "EC", PEM);
    h.certificate("locked", "web", "RSA", PFX);
    // A secret that is no certificate: a decoding error.
    h.emulator
        .set_secret(
            "contoso",
            "junk",
            akvvm_emulator::SecretSpec {
                value: "bm90IGEgY2VydGlmaWNhdGUgYXQgYWxsLCBqdXN0IGJ5dGVz".into(),
                content_type: Some(PFX.into()),
                ..akvvm_emulator::SecretSpec::default()
            },
        )
        .unwrap();

    let hook_env = h.dir.path().join("hook-env");
    let secret_file = h.dir.path().join("webhook-secret");
    std::fs::write(&secret_file, format!("{WEBHOOK_SECRET}\n")).unwrap();
    let metrics_address = free_loopback_address();
    let webhook_address = free_loopback_address();
    let mut json = h.settings_json(
        &["contoso", "locked"],
        vec![
            json!({"url": Harness::url("contoso", "web"), "akvvm": {"reload": {
                "command": ["/bin/sh", "-c", format!("env >> {}", hook_env.display())]}}}),
            // A failing hook that prints its environment: its output goes to the log and the
            // hook journal.
            json!({"url": Harness::url("contoso", "api"), "akvvm": {"reload": {
                "command": ["/bin/sh", "-c", "env; env >&2; exit 3"]}}}),
            json!(Harness::url("contoso", "junk")),
            json!(Harness::url("locked", "web")),
        ],
    );
    json["secretsManagementSettings"]["pollingIntervalInS"] = json!("3600");
    json["akvvm"]["metricsAddress"] = json!(metrics_address.to_string());
    json["akvvm"]["webhook"] = json!({
        "address": webhook_address.to_string(),
        "secretFile": secret_file.display().to_string(),
    });
    // Every record is forwarded to a Fluentd collector too (loggingSettings).
    let collector = akvvm_testkit::fluent::Collector::tcp();
    json["loggingSettings"] = json!({"logger": "fluentd", "endpoint": collector.endpoint()});
    let settings = h.settings_file(&json);

    let started = akvvm_emulator::token::now_unix();
    let stderr_path = h.dir.path().join("agent.stderr");
    let stdout_path = h.dir.path().join("agent.stdout");
    let mut daemon = akvvm()
        .args(["run", "--settings"])
        .arg(&settings)
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let web_link = h.store().join("contoso.web");
    let installed = eventually(Duration::from_secs(30), || {
        std::fs::read_link(&web_link).is_ok_and(|t| t.to_string_lossy().ends_with(&web_v1))
            && h.store().join("contoso.api").exists()
            && hook_env.exists()
    })
    .await;

    // Rotation, pushed through the webhook (a delivery with a wrong key first).
    let web_v2 = h
        .emulator
        .rotate_certificate("contoso", "web")
        .unwrap()
        .version;
    let wrong = tokio::task::spawn_blocking({
        let v = web_v2.clone();
        move || {
            delivery(
                webhook_address,
                "not-the-secret-0123456789",
                "contoso",
                "web",
                &v,
            )
        }
    })
    .await
    .unwrap();
    let right = tokio::task::spawn_blocking({
        let v = web_v2.clone();
        move || delivery(webhook_address, WEBHOOK_SECRET, "contoso", "web", &v)
    })
    .await
    .unwrap();
    let rotated = eventually(Duration::from_secs(30), || {
        std::fs::read_link(&web_link).is_ok_and(|t| t.to_string_lossy().ends_with(&web_v2))
            && std::fs::read_to_string(&hook_env).is_ok_and(|e| e.contains(&web_v2))
    })
    .await;
    let metrics = tokio::task::spawn_blocking(move || {
        http(
            metrics_address,
            &format!(
                "GET /metrics HTTP/1.1\r\nHost: {metrics_address}\r\nConnection: close\r\n\r\n"
            ),
        )
    })
    .await
    .unwrap();

    // The same failures through `sync --once` (its report on stdout, errors on stderr).
    let mut once = akvvm();
    once.args(["sync", "--once", "--settings"]).arg(&settings);
    let once = output(once).await;
    let mut status = akvvm();
    status
        .args(["status", "--json", "--settings"])
        .arg(&settings);
    let status = output(status).await;

    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let exit = tokio::task::spawn_blocking(move || daemon.wait().unwrap())
        .await
        .unwrap();
    let ended = akvvm_emulator::token::now_unix();

    // Now the checks that the run did what it should (no secret in these messages).
    assert!(
        installed,
        "the daemon installs web and api and runs web's hook"
    );
    assert!(
        wrong.starts_with("HTTP/1.1 401") || wrong.starts_with("HTTP/1.1 403"),
        "a wrong key is refused: {}",
        wrong.lines().next().unwrap_or("")
    );
    assert!(
        right.starts_with("HTTP/1.1 2"),
        "the delivery is taken: {}",
        right.lines().next().unwrap_or("")
    );
    assert!(rotated, "the delivery rotates web and its hook runs again");
    assert!(exit.success(), "clean exit on SIGTERM: {exit}");
    assert!(metrics.starts_with("HTTP/1.1 200"), "metrics are served");
    let once_stdout = String::from_utf8_lossy(&once.stdout).into_owned();
    assert_eq!(once.status.code(), Some(1), "two certificates fail");
    assert!(once_stdout.contains("FAILED"));
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(log.contains("TRACE"), "the agent logged at trace level");
    assert!(
        log.contains("403") || log.contains("forbidden"),
        "the 403 is logged"
    );

    // The secrets.
    let mut needles = Needles::default();
    needles.add("webhook secret", WEBHOOK_SECRET);
    for (_, text) in files_under(&h.store()) {
        if text.contains("PRIVATE KEY-----") {
            needles.add_pem_keys("private key (installed)", &text);
        }
    }
    let (code, answer) = sdk::json_answer(sdk::imds_request(
        &h.emulator,
        akvvm::identity::KEY_VAULT_RESOURCE,
    ))
    .await;
    assert_eq!(code, 200);
    let token = answer["access_token"].as_str().unwrap().to_string();
    for (name, version) in [("web", &web_v1), ("web", &web_v2), ("api", &api_v1)] {
        let value = secret_value(&h, &token, "contoso", name, version).await;
        if value.contains("PRIVATE KEY-----") {
            needles.add_pem_keys("PEM secret value (its key)", &value);
        } else {
            needles.add_base64("PFX secret value", &value);
        }
    }
    // The access tokens IMDS issued to the agent: the same claims sign to the same token, so
    // every token of the run's seconds is rebuilt. The rebuild is checked on one issued now.
    let now = akvvm_emulator::token::now_unix();
    let rebuild = |second: i64| {
        h.emulator
            .issue_token(
                &identity,
                akvvm::identity::KEY_VAULT_RESOURCE,
                second,
                second + akvvm_emulator::imds::TOKEN_LIFETIME_S,
            )
            .unwrap()
    };
    assert!(
        (now - 1..=now + 1).any(|s| rebuild(s) == token),
        "rebuilding an IMDS token from its claims gives the same token"
    );
    for second in started - 2..=ended + 2 {
        let token = rebuild(second);
        let signature = token.rsplit('.').next().unwrap().to_string();
        needles.add("access token (signature)", signature);
        needles.add("access token", token);
    }

    let mut places = vec![
        ("agent log (stderr, trace)".to_string(), log),
        (
            "agent stdout".to_string(),
            std::fs::read_to_string(&stdout_path).unwrap(),
        ),
        ("metrics".to_string(), metrics),
        ("webhook answer to a wrong key".to_string(), wrong),
        ("webhook answer".to_string(), right),
        ("sync --once stdout".to_string(), once_stdout),
        (
            "sync --once stderr".to_string(),
            String::from_utf8_lossy(&once.stderr).into_owned(),
        ),
        (
            "status --json".to_string(),
            String::from_utf8_lossy(&status.stdout).into_owned(),
        ),
        (
            "hook environment".to_string(),
            std::fs::read_to_string(&hook_env).unwrap(),
        ),
    ];
    for (path, text) in files_under(&h.state_dir()) {
        places.push((format!("state directory file {}", path.display()), text));
    }
    assert!(places.len() > 9, "the state directory holds the state file");
    let forwarded = collector.events();
    assert!(
        forwarded.iter().any(|e| e.str("level") == Some("TRACE")),
        "the records reached the collector at trace level"
    );
    places.push((
        "records forwarded to fluentd".to_string(),
        forwarded
            .iter()
            .map(|e| {
                let mut text = e.tag.clone();
                for (key, value) in &e.record {
                    text.push_str(&format!("\n{key}="));
                    collect_strings(value, &mut text);
                }
                text
            })
            .collect::<Vec<_>>()
            .join("\n"),
    ));
    assert_clean(&needles, &places);
    assert_eq!(link_target(&web_link), format!("contoso.web.{web_v2}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entra_application_leaks_neither_its_assertion_nor_its_key() {
    let h = Harness::start_with(false).await;
    h.emulator.add_vault("contoso").unwrap();
    h.emulator.add_vault("locked").unwrap();
    let app = h
        .emulator
        .register_app(AppSpec {
            display_name: Some("hygiene".into()),
            subject_name: Some("bootstrap.hygiene.example".into()),
            ..AppSpec::default()
        })
        .unwrap();
    h.emulator
        .assign_roles("contoso", &app.client_id, &[READER_ROLE])
        .unwrap();
    let version = h.certificate("contoso", "web", "RSA", PFX);
    h.certificate("locked", "web", "RSA", PFX);
    let waagent = h.dir.path().join("waagent");
    std::fs::create_dir_all(&waagent).unwrap();
    let key_pem = app.private_key_pem.clone().expect("generated key");
    std::fs::write(
        waagent.join(format!("{}.crt", app.thumbprint)),
        &app.certificate_pem,
    )
    .unwrap();
    std::fs::write(waagent.join(format!("{}.prv", app.thumbprint)), &key_pem).unwrap();

    let mut json = h.settings_json(
        &["contoso", "locked"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("locked", "web")),
        ],
    );
    json["authenticationSettings"] = json!({
        "clientId": app.client_id,
        "clientCertificateSubjectName": "bootstrap.hygiene.example"
    });
    json["akvvm"]["bootstrapCertificateDirectories"] = json!([waagent.display().to_string()]);
    let settings = h.settings_file(&json);
    let mut once = akvvm();
    once.args(["sync", "--once", "--settings"]).arg(&settings);
    let once = output(once).await;
    let stdout = String::from_utf8_lossy(&once.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&once.stderr).into_owned();
    assert_eq!(once.status.code(), Some(1), "the locked vault fails");
    assert!(
        stdout.contains(&format!("version {version}")),
        "web is installed"
    );
    assert!(
        h.emulator.request_count(
            "entra",
            &format!("/{}/oauth2/v2.0/token", h.emulator.default_tenant())
        ) >= 1,
        "the agent sent a client assertion"
    );
    assert!(stderr.contains("TRACE"), "the agent logged at trace level");

    let mut needles = Needles::default();
    needles.add_pem_keys("bootstrap certificate's private key", &key_pem);
    for (_, text) in files_under(&h.store()) {
        if text.contains("PRIVATE KEY-----") {
            needles.add_pem_keys("private key (installed)", &text);
        }
    }
    let mut places = vec![
        ("sync --once stdout".to_string(), stdout),
        ("sync --once stderr (trace)".to_string(), stderr),
    ];
    for (path, text) in files_under(&h.state_dir()) {
        places.push((format!("state directory file {}", path.display()), text));
    }
    // The assertion and Entra's token are JWTs: the JWT check of every place catches them.
    assert_clean(&needles, &places);
}
