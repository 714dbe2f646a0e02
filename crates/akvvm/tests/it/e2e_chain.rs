//! Chain validation before install (4.x, issue 9 item 2) end to end against the local vault:
//! Key Vault's self-signed certificates (serverAuth EKU by default) install with a warning in
//! the status file and the metrics, for as long as that version stays; a broken chain is refused
//! and the version in place stays byte for byte; an issuer missing from the secret is fetched
//! from its caIssuers URL, and a fetch that fails is fail-open.

use std::sync::Arc;

use akvvm::metrics::MetricsSource;
use akvvm::sync::{CertOutcome, Engine, EngineOptions};
use akvvm_emulator::SecretSpec;
use akvvm_testkit::chains::{CaOptions, LeafOptions, intermediate_ca, root_ca, server_leaf};
use akvvm_testkit::harness::{Harness, PEM, PFX, cycle};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// An engine with chain validation on (what 4.x runs).
fn validating_engine(h: &Harness, json: &Value) -> Engine {
    let settings = h.settings(json);
    let options = EngineOptions {
        chain_validation: true,
        ..EngineOptions::for_settings(&settings)
    };
    Engine::new(settings, options).expect("engine starts")
}

/// The status file as the agent writes it for `report`.
fn status_text(report: &akvvm::sync::CycleReport) -> String {
    let mut status = akvvm::status::Report::new("Enable", akvvm::status::State::Success, "");
    status.substatus = report
        .certificates
        .iter()
        .map(|c| c.substatus(OffsetDateTime::now_utc(), 30))
        .collect();
    String::from_utf8(akvvm::status::render(&status, OffsetDateTime::now_utc())).unwrap()
}

#[tokio::test]
async fn a_self_signed_certificate_installs_with_a_warning_in_status_and_metrics() {
    let h = Harness::start().await;
    h.vault("contoso");
    let version = h.certificate("contoso", "web", "RSA", PFX);
    let json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    let engine = validating_engine(&h, &json);
    for round in ["install", "unchanged"] {
        let report = cycle(&engine).await;
        let cert = &report.certificates[0];
        match (round, &cert.outcome) {
            ("install", CertOutcome::Installed(i)) | ("unchanged", CertOutcome::Unchanged(i)) => {
                assert_eq!(i.version, version);
            }
            other => panic!("{round}: {other:?}"),
        }
        let line = cert.substatus(OffsetDateTime::now_utc(), 30);
        assert_eq!(line.state, akvvm::status::State::Warning, "{round}");
        assert!(
            line.message
                .contains("[cert.chain_untrusted] \"CN=web\" is self-signed"),
            "{round}: {}",
            line.message
        );
        let status = status_text(&report);
        assert!(status.contains("\"status\":\"warning\""), "{status}");
        assert!(status.contains("cert.chain_untrusted"), "{status}");
        let metrics = engine.metrics_text(OffsetDateTime::now_utc());
        assert!(
            metrics.contains(&format!(
                "akvvm_certificate_chain_warning{{url=\"{}\",vault=\"contoso\",name=\"web\",code=\"cert.chain_untrusted\"}} 1",
                Harness::url("contoso", "web")
            )),
            "{round}: {metrics}"
        );
    }
    // After a restart, the warning is still reported (it is in the state file).
    let engine = validating_engine(&h, &json);
    let report = cycle(&engine).await;
    let line = report.certificates[0].substatus(OffsetDateTime::now_utc(), 30);
    assert!(
        line.message.contains("cert.chain_untrusted"),
        "{}",
        line.message
    );

    // Without chain validation (3.x) nothing is said.
    let engine = h.engine(&json);
    let report = cycle(&engine).await;
    let line = report.certificates[0].substatus(OffsetDateTime::now_utc(), 30);
    assert_eq!(
        line.state,
        akvvm::status::State::Success,
        "{}",
        line.message
    );
    assert!(
        !engine
            .metrics_text(OffsetDateTime::now_utc())
            .contains("akvvm_certificate_chain_warning{")
    );
}

#[tokio::test]
async fn a_broken_chain_is_refused_and_the_installed_version_stays() {
    let h = Harness::start().await;
    h.vault("contoso");
    let root = root_ca("Contoso Test Root");
    let inter = intermediate_ca("Contoso Test Issuing CA", &root, &CaOptions::default());
    let good = server_leaf("www.contoso.test", &inter, &LeafOptions::default());
    let first = h
        .emulator
        .set_secret(
            "contoso",
            "www",
            SecretSpec {
                value: good.secret_pem(&[inter.pem(), root.pem()]),
                content_type: Some(PEM.into()),
                ..SecretSpec::default()
            },
        )
        .unwrap();
    let json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "www"))]);
    // The test root is trusted through caCertificates, as a private PKI's root would be.
    let anchors = h.store().parent().unwrap().join("private-root.pem");
    std::fs::write(&anchors, root.pem()).unwrap();
    let mut json = json;
    json["akvvm"]["caCertificates"]
        .as_array_mut()
        .unwrap()
        .push(json!(anchors.display().to_string()));
    let engine = validating_engine(&h, &json);
    let report = cycle(&engine).await;
    assert!(
        matches!(&report.certificates[0].outcome, CertOutcome::Installed(i) if i.version == first.version && i.chain_warning.is_none()),
        "a trusted chain installs without a warning: {report:?}"
    );
    let link = h.store().join("contoso.www");
    let before = std::fs::read(&link).unwrap();
    let target = std::fs::read_link(&link).unwrap();

    // A new version whose intermediate has the right name but not the key that signed it, then
    // one whose intermediate expired: both refused.
    let impostor = intermediate_ca("Contoso Test Issuing CA", &root, &CaOptions::default());
    let expired = intermediate_ca(
        "Contoso Old Issuing CA",
        &root,
        &CaOptions {
            expired: true,
            ..CaOptions::default()
        },
    );
    let by_expired = server_leaf("www.contoso.test", &expired, &LeafOptions::default());
    let broken = [
        (
            good.secret_pem(&[impostor.pem(), root.pem()]),
            "cert.chain_bad_signature",
            "does not verify with the key of \"CN=Contoso Test Issuing CA\"",
        ),
        (
            by_expired.secret_pem(&[expired.pem(), root.pem()]),
            "cert.chain_outside_validity",
            "its intermediate \"CN=Contoso Old Issuing CA\"",
        ),
    ];
    for (pem, code, says) in broken {
        let bad = h
            .emulator
            .set_secret(
                "contoso",
                "www",
                SecretSpec {
                    value: pem,
                    content_type: Some(PEM.into()),
                    ..SecretSpec::default()
                },
            )
            .unwrap();
        let report = cycle(&engine).await;
        let CertOutcome::Failed {
            code: got,
            message,
            installed,
        } = &report.certificates[0].outcome
        else {
            panic!("expected a refusal: {report:?}");
        };
        assert_eq!(got, code, "{message}");
        assert!(message.contains(says), "{message}");
        assert!(
            message.contains("this version is not installed"),
            "{message}"
        );
        assert_eq!(installed.as_ref().unwrap().version, first.version);
        // The status line is a warning (a version stays) naming the code.
        let line = report.certificates[0].substatus(OffsetDateTime::now_utc(), 30);
        assert_eq!(line.state, akvvm::status::State::Warning);
        assert!(
            line.message.contains(&format!("[{code}]")),
            "{}",
            line.message
        );
        // Nothing of the refused version reached the store; the good one is byte for byte.
        assert_eq!(std::fs::read_link(&link).unwrap(), target);
        assert_eq!(std::fs::read(&link).unwrap(), before);
        let names: Vec<String> = std::fs::read_dir(h.store())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains(&bad.version)), "{names:?}");
    }
}

#[tokio::test]
async fn a_missing_intermediate_is_fetched_and_a_failed_fetch_is_fail_open() {
    let h = Harness::start().await;
    h.vault("contoso");
    let root = root_ca("Contoso Test Root");
    let inter = intermediate_ca("Contoso Test Issuing CA", &root, &CaOptions::default());
    // The CA's caIssuers endpoint, on loopback: counts its requests, serves the intermediate
    // (DER) until told to fail.
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let der = inter.der();
    let app = {
        let served = served.clone();
        let up = up.clone();
        axum::Router::new().route(
            "/issuing.crt",
            axum::routing::get(move || {
                let served = served.clone();
                let up = up.clone();
                let der = der.clone();
                async move {
                    served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if up.load(std::sync::atomic::Ordering::SeqCst) {
                        (axum::http::StatusCode::OK, der)
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, Vec::new())
                    }
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/issuing.crt", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    let anchors = h.store().parent().unwrap().join("private-root.pem");
    std::fs::write(&anchors, root.pem()).unwrap();
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "www"))]);
    json["akvvm"]["caCertificates"]
        .as_array_mut()
        .unwrap()
        .push(json!(anchors.display().to_string()));
    let engine = validating_engine(&h, &json);
    for (round, available) in [("fetched", true), ("fail-open", false)] {
        up.store(available, std::sync::atomic::Ordering::SeqCst);
        // The leaf alone in the secret, pointing at its issuer.
        let leaf = server_leaf(
            "www.contoso.test",
            &inter,
            &LeafOptions {
                ca_issuers: Some(url.clone()),
                ..LeafOptions::default()
            },
        );
        let version = h
            .emulator
            .set_secret(
                "contoso",
                "www",
                SecretSpec {
                    value: leaf.secret_pem(&[]),
                    content_type: Some(PEM.into()),
                    ..SecretSpec::default()
                },
            )
            .unwrap()
            .version;
        let before = served.load(std::sync::atomic::Ordering::SeqCst);
        let report = cycle(&engine).await;
        let CertOutcome::Installed(info) = &report.certificates[0].outcome else {
            panic!("{round}: {report:?}");
        };
        assert_eq!(info.version, version);
        assert!(
            served.load(std::sync::atomic::Ordering::SeqCst) > before,
            "{round}"
        );
        if available {
            assert_eq!(info.chain_warning, None, "{round}");
        } else {
            let warning = info.chain_warning.as_deref().unwrap();
            assert!(
                warning.starts_with("[cert.chain_unverified] chain validation could not complete"),
                "{warning}"
            );
            assert!(warning.contains("503"), "{warning}");
        }
    }
}
