//! End-to-end: the Prometheus metrics of an engine syncing against the local vault, scraped over
//! HTTP from `akvvm::metrics::serve` as `akvvm run` serves them.

use std::sync::Arc;

use akvvm_testkit::harness::{self, Harness, PEM, PFX, cycle};
use serde_json::json;
use tokio_util::sync::CancellationToken;

async fn scrape(address: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let response = reqwest::get(format!("http://{address}{path}"))
        .await
        .expect("the metrics listener answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

/// The value of the one sample whose series (name and labels) is exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

/// The failures of the missing certificate `absent`, code `vault.secret_not_found`.
fn not_found_failures(text: &str) -> Option<f64> {
    sample(
        text,
        &format!(
            "akvvm_certificate_failures_total{{{},code=\"vault.secret_not_found\"}}",
            cert_labels("absent")
        ),
    )
}

/// The sample of `metric` for certificate `name` of vault contoso.
fn cert_sample(text: &str, metric: &str, name: &str) -> Option<f64> {
    sample(text, &format!("{metric}{{{}}}", cert_labels(name)))
}

fn cert_labels(name: &str) -> String {
    format!(
        "url=\"{}\",vault=\"contoso\",name=\"{name}\"",
        Harness::url("contoso", name)
    )
}

#[tokio::test]
async fn metrics_follow_installs_rotations_and_failures() {
    let h = Harness::start().await;
    h.vault("contoso");
    let created = h
        .emulator
        .create_certificate("contoso", "web", &harness::policy("RSA", PFX, "web"))
        .unwrap();
    let v1 = created.version.clone();
    h.certificate("contoso", "api", "EC", PEM);
    let mut json = h.settings_json(
        &["contoso"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("contoso", "api")),
            json!(Harness::url("contoso", "absent")),
        ],
    );
    // The local vault's certificates are valid for 12 months: all of them are "expiring" with a
    // threshold of 400 days.
    json["akvvm"]["expiryWarningDays"] = json!(400);
    let engine = Arc::new(h.engine(&json));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let server = tokio::spawn(akvvm::metrics::serve(
        listener,
        engine.clone(),
        cancel.clone(),
    ));

    // Before any cycle: every observed certificate, none installed.
    let (status, content_type, text) = scrape(address, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, akvvm::metrics::CONTENT_TYPE);
    for name in ["web", "api", "absent"] {
        let series = format!("akvvm_certificate_installed{{{}}}", cert_labels(name));
        assert_eq!(sample(&text, &series), Some(0.0), "{series}");
    }
    assert_eq!(sample(&text, "akvvm_sync_cycles_total"), Some(0.0));

    let report = cycle(&engine).await;
    assert!(!report.complete(), "one certificate is missing: {report:?}");
    let (_, _, text) = scrape(address, "/metrics").await;
    let get = |metric: &str, name: &str| cert_sample(&text, metric, name);
    assert_eq!(get("akvvm_certificate_installed", "web"), Some(1.0));
    assert_eq!(get("akvvm_certificate_installed", "api"), Some(1.0));
    assert_eq!(get("akvvm_certificate_installed", "absent"), Some(0.0));
    assert_eq!(get("akvvm_certificate_installs_total", "web"), Some(1.0));
    assert_eq!(get("akvvm_certificate_expiring", "web"), Some(1.0));
    assert_eq!(get("akvvm_certificate_expiring", "absent"), None);
    let not_after = get("akvvm_certificate_not_after_timestamp_seconds", "web").unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(
        (now + 300.0 * 86400.0..now + 400.0 * 86400.0).contains(&not_after),
        "about a year from now: {not_after}"
    );
    assert!(get("akvvm_certificate_last_success_timestamp_seconds", "web").is_some());
    assert_eq!(
        get("akvvm_certificate_last_success_timestamp_seconds", "absent"),
        None
    );
    assert!(get("akvvm_certificate_last_check_timestamp_seconds", "absent").is_some());
    assert_eq!(not_found_failures(&text), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            &format!(
                "akvvm_certificate_info{{{},version=\"{v1}\",thumbprint=\"{}\"}}",
                cert_labels("web"),
                created.thumbprint
            )
        ),
        Some(1.0),
        "{text}"
    );
    let requests = |status: &str| {
        sample(
            &text,
            &format!(
                "akvvm_vault_requests_total{{vault=\"contoso.vault.azure.net\",status=\"{status}\"}}"
            ),
        )
        .unwrap_or(0.0)
    };
    // The managed identity's first request carried its token: no challenge round trip.
    assert_eq!(requests("401"), 0.0, "no bearer challenge: {text}");
    assert_eq!(requests("200"), 2.0, "{text}");
    assert_eq!(requests("404"), 1.0, "{text}");
    assert_eq!(sample(&text, "akvvm_sync_cycles_total"), Some(1.0));

    // A rotation, then a cycle: one more install, the info series on the new version.
    let v2 = h
        .emulator
        .rotate_certificate("contoso", "web")
        .unwrap()
        .version;
    cycle(&engine).await;
    let (_, _, text) = scrape(address, "/metrics").await;
    let get = |metric: &str, name: &str| cert_sample(&text, metric, name);
    assert_eq!(get("akvvm_certificate_installs_total", "web"), Some(2.0));
    assert_eq!(get("akvvm_certificate_installs_total", "api"), Some(1.0));
    assert!(
        text.lines()
            .any(|l| l.starts_with("akvvm_certificate_info{")
                && l.contains(&format!("version=\"{v2}\""))),
        "{text}"
    );
    assert!(!text.contains(&format!("version=\"{v1}\"")), "{text}");
    assert_eq!(not_found_failures(&text), Some(2.0));
    assert_eq!(sample(&text, "akvvm_sync_cycles_total"), Some(2.0));
    assert!(!text.contains("PRIVATE KEY") && !text.contains("eyJ"));

    let (status, _, _) = scrape(address, "/").await;
    assert_eq!(status, 404);

    cancel.cancel();
    server
        .await
        .expect("the listener stops cleanly on cancellation");
}
