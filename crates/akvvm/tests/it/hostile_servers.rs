//! Hostile servers (issue 11, standing defence 3): a Key Vault stand-in
//! ([`HostileVault`], since the local vault answers only what Key Vault would) answers bodies
//! past the cap, bodies that are not JSON or not a secret, ids with `..` or `/` in them, a PEM
//! chain of thousands of certificates, a PFX of thousands of certificates (under and over the body
//! cap), and a body sent one byte a second. The agent neither
//! panics nor writes outside its store; each answer is a failure of that certificate with a clear
//! error in its report and in the state file, and the certificate installed before stays in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use akvvm::http::{HostOverride, HttpOptions};
use akvvm::identity::{Identity, ManagedIdentityCredential, ManagedIdentityOptions};
use akvvm::settings::MsiEndpoint;
use akvvm::sync::CertOutcome;
use akvvm::vault::{VaultClient, VaultOptions};
use akvvm_testkit::certs;
use akvvm_testkit::harness::{Harness, PEM, cycle, link_target, snapshot};
use akvvm_testkit::servers::{HostileAnswer, HostileVault, TestCa, fast_retry};
use serde_json::{Value, json};

const HOST: &str = "contoso.vault.azure.net";

fn id(version: &str) -> String {
    format!("https://{HOST}/secrets/web/{version}")
}

fn secret(id: &str, pem: &str) -> Value {
    json!({"value": pem, "contentType": PEM, "id": id, "attributes": {"enabled": true}})
}

/// Every path under `dir` but the store and the state directory (whose own checks are separate).
fn paths_outside(dir: &Path, store: &Path, state: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path == store || path == state {
            continue;
        }
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(paths_outside(&path, store, state));
        }
        out.push(path);
    }
    out.sort();
    out
}

/// The leaf, its key and thousands of CA certificates (the chain's two, repeated), kept under
/// the 1 MiB body cap so the decoder, not the cap, meets them.
fn pem_with_thousands_of_certificates(pem: &str) -> (String, usize) {
    const END: &str = "-----END CERTIFICATE-----";
    let mut certificates = Vec::new();
    let mut rest = pem;
    while let Some(begin) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end = rest[begin..].find(END).unwrap() + begin + END.len();
        certificates.push(format!("{}\n", &rest[begin..end]));
        rest = &rest[end..];
    }
    assert!(certificates.len() >= 2, "a leaf and its CA certificates");
    let mut out = pem.to_string();
    let mut count = certificates.len();
    while out.len() < 900 * 1024 {
        for block in &certificates {
            out.push_str(block);
            count += 1;
        }
    }
    (out, count)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_answers_fail_the_certificate_and_keep_the_good_files() {
    let h = Harness::start().await;
    let ca = TestCa::new();
    let ca_file = h.dir.path().join("stand-in-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let good = certs::generate("web.example", 30);
    let vault = HostileVault::new(HostileAnswer::Json(secret(&id("v1"), &good.pem)));
    let address = vault.serve(&ca, HOST).await;
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["akvvm"]["resolve"][HOST] = json!(address.to_string());
    json["akvvm"]["caCertificates"]
        .as_array_mut()
        .unwrap()
        .push(json!(ca_file.display().to_string()));
    let engine = h.engine(&json);
    let report = cycle(&engine).await;
    assert!(report.complete(), "the good answer installs: {report:?}");
    let link = h.store().join("contoso.web");
    assert_eq!(link_target(&link), "contoso.web.v1");
    let store_before = snapshot(&h.store());
    let outside_before = paths_outside(h.dir.path(), &h.store(), &h.state_dir());

    let huge = {
        let mut body = b"{\"value\": \"".to_vec();
        body.resize(2 * 1024 * 1024, b'A');
        body.extend_from_slice(b"\"}");
        body
    };
    let (chain, chain_count) = pem_with_thousands_of_certificates(&good.pem);
    assert!(chain_count >= 1000, "{chain_count} certificates");
    // Each with the code docs/security.md promises ("Hostile answers").
    let cases: Vec<(&str, HostileAnswer, &str)> = vec![
        (
            "a body of 2 MiB",
            HostileAnswer::Raw {
                content_type: "application/json",
                body: huge,
            },
            "vault.response_invalid",
        ),
        (
            "an HTML page",
            HostileAnswer::Raw {
                content_type: "text/html",
                body: b"<html><body>502 Bad Gateway</body></html>".to_vec(),
            },
            "vault.response_invalid",
        ),
        (
            "truncated JSON",
            HostileAnswer::Raw {
                content_type: "application/json",
                body: b"{\"value\": \"-----BEGIN".to_vec(),
            },
            "vault.response_invalid",
        ),
        (
            "a JSON array",
            HostileAnswer::Json(json!([1, 2, 3])),
            "vault.response_invalid",
        ),
        (
            "a number as the value",
            HostileAnswer::Json(json!({"value": 42, "id": id("v2")})),
            "vault.response_invalid",
        ),
        (
            "no value",
            HostileAnswer::Json(json!({"id": id("v2"), "contentType": PEM})),
            "vault.response_invalid",
        ),
        (
            "no id",
            HostileAnswer::Json(json!({"value": good.pem, "contentType": PEM})),
            "vault.response_invalid",
        ),
        (
            "an id with `..` segments",
            HostileAnswer::Json(secret(
                &format!("https://{HOST}/secrets/web/../../../../etc/evil"),
                &good.pem,
            )),
            "vault.response_invalid",
        ),
        (
            "an id with a `/` too many",
            HostileAnswer::Json(secret(&id("v2/../../evil"), &good.pem)),
            "vault.response_invalid",
        ),
        (
            "an id whose version is `..`",
            HostileAnswer::Json(secret(&id(".."), &good.pem)),
            "vault.response_invalid",
        ),
        (
            "an id whose version is `%2E%2E`",
            HostileAnswer::Json(secret(&id("%2E%2E"), &good.pem)),
            "vault.response_invalid",
        ),
        (
            "an id whose version hides a `/`",
            HostileAnswer::Json(secret(&id("..%2F..%2Fevil"), &good.pem)),
            "store.invalid_name",
        ),
        (
            "an id of another secret",
            HostileAnswer::Json(secret(
                &format!("https://{HOST}/secrets/other/v2"),
                &good.pem,
            )),
            "vault.response_invalid",
        ),
        (
            "a PEM of thousands of certificates",
            HostileAnswer::Json(secret(&id("v2"), &chain)),
            "cert.too_many_certificates",
        ),
        (
            "a PEM of a broken certificate and no key",
            HostileAnswer::Json(secret(
                &id("v2"),
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            )),
            "cert.pem_no_key",
        ),
    ];
    let mut problems = Vec::new();
    for (what, answer, expected) in cases {
        vault.set(answer);
        let served = vault.requests.get();
        let report = cycle(&engine).await;
        assert!(vault.requests.get() > served, "{what}: the vault was asked");
        match &report.certificates[0].outcome {
            CertOutcome::Failed {
                code,
                message,
                installed,
            } => {
                assert!(
                    installed.as_ref().is_some_and(|i| i.version == "v1"),
                    "{what}: the report names what stays in place: {installed:?}"
                );
                assert!(!message.is_empty(), "{what}");
                assert_eq!(code, expected, "{what}: {message}");

                let state = std::fs::read_to_string(h.state_dir().join("state.json")).unwrap();
                assert!(
                    state.contains(code.as_str()),
                    "{what}: the state file records {code}"
                );
                eprintln!(
                    "{what}: {code}: {}",
                    message.chars().take(200).collect::<String>()
                );
            }
            other => problems.push(format!("{what}: not a failure: {other:?}")),
        }
        assert_eq!(
            snapshot(&h.store()),
            store_before,
            "{what}: the store changed"
        );
        assert_eq!(
            paths_outside(h.dir.path(), &h.store(), &h.state_dir()),
            outside_before,
            "{what}: a file appeared outside the store"
        );
        assert!(
            !Path::new("/etc/evil").exists(),
            "{what}: wrote through `..`"
        );
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(link_target(&link), "contoso.web.v1");

    // And the vault comes back: the next good version installs.
    vault.set(HostileAnswer::Json(secret(&id("v3"), &good.pem)));
    assert!(cycle(&engine).await.complete());
    assert_eq!(link_target(&link), "contoso.web.v3");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_sent_one_byte_a_second_is_cut_by_the_request_timeout() {
    let h = Harness::start().await;
    let ca = TestCa::new();
    let good = certs::generate("web.example", 30);
    let body = serde_json::to_vec(&secret(&id("v1"), &good.pem)).unwrap();
    let vault = HostileVault::new(HostileAnswer::Trickle {
        body: body.clone(),
        every: Duration::from_secs(1),
    });
    let address = vault.serve(&ca, HOST).await;
    let identity = Identity::Managed(Arc::new(
        ManagedIdentityCredential::new(
            &MsiEndpoint::new(&url::Url::parse(&h.emulator.imds_url()).unwrap()),
            None,
            &HttpOptions::default(),
            ManagedIdentityOptions::default(),
        )
        .unwrap(),
    ));
    let http = HttpOptions {
        extra_ca_pems: vec![ca.pem.clone()],
        host_overrides: vec![HostOverride::parse(HOST, &address.to_string()).unwrap()],
        request_timeout: Duration::from_secs(3),
        ..HttpOptions::default()
    };
    let client = VaultClient::new(
        &url::Url::parse(&format!("https://{HOST}")).unwrap(),
        &identity,
        &VaultOptions {
            http,
            retry: fast_retry(&[429], 1),
            api_version: None,
            metrics: None,
            preauthenticate: false,
        },
    )
    .unwrap();
    let error = client.get_latest("web").await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("timed out") || text.contains("timeout"),
        "a clear timeout: {text}"
    );
    assert_eq!(
        vault.requests.get(),
        1,
        "one attempt, cut, not retried forever"
    );

    // The same answer at full speed reads.
    vault.set(HostileAnswer::Raw {
        content_type: "application/json",
        body,
    });
    let bundle = client.get_latest("web").await.unwrap();
    assert_eq!(bundle.version, "v1");
}

/// A PFX (base64, as Key Vault serves one) of the leaf, its key and its chain repeated until
/// the base64 is at least `bytes` long, encoded the way Key Vault encodes its own; and how many
/// certificates it holds.
fn pfx_with_thousands_of_certificates(good: &certs::Generated, bytes: usize) -> (String, usize) {
    use base64::Engine as _;
    let mut ders: Vec<Vec<u8>> = vec![good.bundle.leaf.der().to_vec()];
    let chain: Vec<Vec<u8>> = good.bundle.chain.iter().map(|c| c.der().to_vec()).collect();
    let per_round: usize = chain.iter().map(Vec::len).sum();
    while ders.iter().map(Vec::len).sum::<usize>() * 4 / 3 < bytes + per_round {
        ders.extend(chain.iter().cloned());
    }
    let der = akvvm_cert::pkcs12::encode_keyvault(good.bundle.key.pkcs8_der(), &ders).unwrap();
    (
        base64::engine::general_purpose::STANDARD.encode(der),
        ders.len(),
    )
}

/// A PFX of thousands of certificates, under the body cap (the decoder meets it and stops at the
/// 100-certificate limit) and over it (the body cap stops the read): each is refused with a clear
/// error, and the installed files stay.
#[tokio::test(flavor = "multi_thread")]
async fn a_pfx_of_thousands_of_certificates_is_refused() {
    let h = Harness::start().await;
    let ca = TestCa::new();
    let ca_file = h.dir.path().join("stand-in-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let good = certs::generate("web.example", 30);
    let vault = HostileVault::new(HostileAnswer::Json(secret(&id("v1"), &good.pem)));
    let address = vault.serve(&ca, HOST).await;
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["akvvm"]["resolve"][HOST] = json!(address.to_string());
    json["akvvm"]["caCertificates"]
        .as_array_mut()
        .unwrap()
        .push(json!(ca_file.display().to_string()));
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete(), "the good answer installs");
    let link = h.store().join("contoso.web");
    let store_before = snapshot(&h.store());
    let bytes_before = std::fs::read(&link).unwrap();

    let limit = akvvm_cert::certificate::MAX_CERTIFICATES;
    let (under_cap, under_count) = pfx_with_thousands_of_certificates(&good, 900 * 1024);
    let (over_cap, over_count) = pfx_with_thousands_of_certificates(&good, 3 * 1024 * 1024);
    assert!(under_count >= 1000 && under_cap.len() < akvvm::http::MAX_BODY_BYTES - 4096);
    assert!(over_count >= 3000 && over_cap.len() > akvvm::http::MAX_BODY_BYTES);
    for (what, pfx, count, code, says) in [
        (
            "under the body cap",
            &under_cap,
            under_count,
            "cert.too_many_certificates",
            format!("{limit}"),
        ),
        (
            "over the body cap",
            &over_cap,
            over_count,
            "vault.response_invalid",
            "larger than".to_owned(),
        ),
    ] {
        vault.set(HostileAnswer::Json(json!({
            "value": pfx, "contentType": "application/x-pkcs12", "id": id("v2"),
            "attributes": {"enabled": true}
        })));
        let report = cycle(&engine).await;
        let CertOutcome::Failed {
            code: got,
            message,
            installed,
        } = &report.certificates[0].outcome
        else {
            panic!("{what}: a PFX of {count} certificates was not refused");
        };
        eprintln!(
            "a PFX of {count} certificates, {} bytes of base64, {what}: [{got}] {}",
            pfx.len(),
            message.chars().take(300).collect::<String>()
        );
        assert_eq!(got, code, "{what}: {message}");
        assert!(message.contains(&says), "{what}: a clear error: {message}");
        assert_eq!(installed.as_ref().map(|i| i.version.as_str()), Some("v1"));
        assert_eq!(
            snapshot(&h.store()),
            store_before,
            "{what}: the store changed"
        );
        assert_eq!(std::fs::read(&link).unwrap(), bytes_before, "{what}");
    }
    // The decoder alone says the same, without the agent around it.
    let error = akvvm_cert::certificate::decode_secret(Some("application/x-pkcs12"), &under_cap)
        .unwrap_err();
    assert_eq!(error.code(), "cert.too_many_certificates", "{error}");
}
