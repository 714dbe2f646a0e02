//! End-to-end: push-triggered rotation. The daemon polls hourly; an Event Grid delivery to the
//! webhook (served over HTTPS with a certificate akvvm itself installed) brings a new version in
//! at once, checking only the certificate the event names.

use std::sync::Arc;
use std::time::Duration;

use akvvm::metrics::MetricsSource;
use akvvm_testkit::harness::{self, Harness, PEM, PFX, eventually, link_target};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "6f1d2c0e-webhook-test-secret";

/// A client that trusts only the leaf of the PEM at `path` (the webhook's own certificate).
fn client_trusting(path: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read_to_string(path).unwrap();
    let leaf_end = pem.find("-----END CERTIFICATE-----").unwrap() + 25;
    let leaf = reqwest::Certificate::from_pem(&pem.as_bytes()[..leaf_end]).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(leaf)
        .build()
        .unwrap()
}

fn new_version_event(vault: &str, name: &str, version: &str) -> Value {
    json!([{
        "id": "c3a4a0c3-8a1e-4f5f-9d0c-1c2b3a4d5e6f",
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
}

fn gets_of(h: &Harness, name: &str) -> u64 {
    h.emulator
        .counters()
        .iter()
        .filter(|c| c.method == "GET" && c.path.starts_with(&format!("/secrets/{name}")))
        .map(|c| c.count)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_grid_delivery_syncs_the_named_certificate_at_once() {
    let h = Harness::start().await;
    h.vault("contoso");
    let v1 = h.certificate("contoso", "web", "RSA", PFX);
    // The webhook's own TLS certificate, kept by akvvm like any other.
    let mut hook_policy = harness::policy("EC", PEM, "localhost");
    hook_policy["x509_props"]["sans"] = json!({"dns_names": ["localhost"]});
    let hook_v1 = h
        .emulator
        .create_certificate("contoso", "hook", &hook_policy)
        .unwrap()
        .version;
    let secret_file = h.dir.path().join("webhook-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let hook_link = h.store().join("contoso.hook");

    let mut json = h.settings_json(
        &["contoso"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("contoso", "hook")),
        ],
    );
    json["secretsManagementSettings"]["pollingIntervalInS"] = json!("3600");
    json["akvvm"]["webhook"] = json!({
        "address": "127.0.0.1:0",
        "certificateFile": hook_link.display().to_string(),
        "secretFile": secret_file.display().to_string(),
    });
    let engine = Arc::new(h.engine(&json));
    let cancel = CancellationToken::new();
    // The certificate file does not exist yet: the webhook starts all the same.
    let (address, push) = harness::start_push(engine.clone(), &cancel).await;
    let web_link = h.store().join("contoso.web");
    assert!(
        eventually(Duration::from_secs(20), || {
            web_link.exists() && hook_link.exists()
        })
        .await,
        "the initial sync installs both"
    );
    assert_eq!(link_target(&web_link), format!("contoso.web.{v1}"));
    assert_eq!(link_target(&hook_link), format!("contoso.hook.{hook_v1}"));

    let endpoint = format!("https://localhost:{}/eventgrid", address.port());
    let client = client_trusting(&hook_link);

    // The Event Grid subscription handshake, both schemas.
    let validation = json!([{
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66", "topic": "/subscriptions/s", "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
        "eventTime": "2026-11-22T10:00:00Z", "metadataVersion": "1", "dataVersion": "1"
    }]);
    let answer = client
        .post(format!("{endpoint}?key={SECRET}"))
        .header("aeg-event-type", "SubscriptionValidation")
        .json(&validation)
        .send()
        .await
        .expect("the webhook answers over HTTPS with akvvm's certificate");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
    );
    let answer = client
        .request(reqwest::Method::OPTIONS, &endpoint)
        .header("x-akvvm-key", SECRET)
        .header("WebHook-Request-Origin", "eventgrid.azure.net")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["webhook-allowed-origin"],
        "eventgrid.azure.net"
    );

    // Without the secret, or with a wrong one: refused, nothing queued.
    for url in [endpoint.clone(), format!("{endpoint}?key=wrong")] {
        let answer = client
            .post(&url)
            .json(&new_version_event("contoso", "web", "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "{url}");
    }
    let answer = client
        .post(format!("{endpoint}?key={SECRET}"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("the body is not JSON")
    );

    // A new version; polling is hourly, so only the push brings it in, and only `web` is asked.
    let hook_gets = gets_of(&h, "hook");
    let v2 = h
        .emulator
        .rotate_certificate("contoso", "web")
        .unwrap()
        .version;
    let answer = client
        .post(format!("{endpoint}?key={SECRET}"))
        .json(&new_version_event("contoso", "web", &v2))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({"syncing": [Harness::url("contoso", "web")], "ignored": 0})
    );
    assert!(
        eventually(Duration::from_secs(20), || {
            link_target(&web_link) == format!("contoso.web.{v2}")
        })
        .await,
        "the pushed version is installed"
    );
    assert_eq!(
        gets_of(&h, "hook"),
        hook_gets,
        "the other certificate was not asked"
    );

    // The webhook's own certificate rotates: pushed, installed, and served from then on.
    let hook_v2 = h
        .emulator
        .rotate_certificate("contoso", "hook")
        .unwrap()
        .version;
    let answer = client
        .post(format!("{endpoint}?key={SECRET}"))
        .json(&new_version_event("contoso", "hook", &hook_v2))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        eventually(Duration::from_secs(20), || {
            link_target(&hook_link) == format!("contoso.hook.{hook_v2}")
        })
        .await
    );
    let answer = client_trusting(&hook_link)
        .post(format!("{endpoint}?key={SECRET}"))
        .json(&json!([]))
        .send()
        .await
        .expect("the rotated certificate is served");
    assert_eq!(answer.status(), 200);

    // Every request counted by outcome, for the metrics endpoint.
    let text = engine.metrics_text(time::OffsetDateTime::now_utc());
    for (outcome, count) in [
        ("validation", 2),
        ("unauthorised", 2),
        ("invalid", 1),
        ("syncing", 2),
        ("ignored", 1),
    ] {
        let series = format!("akvvm_webhook_requests_total{{outcome=\"{outcome}\"}} {count}");
        assert!(text.lines().any(|l| l == series), "{series}\n{text}");
    }

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), push)
        .await
        .expect("both stop on cancellation")
        .unwrap();
}

/// Deliveries can come from anyone who can reach the webhook (and who knows the secret when one
/// is set): they make each certificate sync at most [`akvvm::sync::daemon::DELIVERY_BURST`]
/// times at once, then once per [`akvvm::sync::daemon::DELIVERY_MIN_INTERVAL`], and never
/// bring forward the retry of a certificate that is failing.
#[tokio::test(flavor = "multi_thread")]
async fn deliveries_are_rate_limited_per_certificate_and_never_skip_a_backoff() {
    let h = Harness::start().await;
    h.vault("contoso");
    h.certificate("contoso", "web", "EC", PEM);
    // One round per probe: twice the burst of deliveries for `web`.
    let rounds = 2 * akvvm::sync::daemon::DELIVERY_BURST as usize - 1;
    let probes: Vec<String> = (0..rounds).map(|i| format!("probe{i}")).collect();
    for probe in &probes {
        h.certificate("contoso", probe, "EC", PEM);
    }
    let secret_file = h.dir.path().join("webhook-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    // `gone` is observed but does not exist: it fails, and its retry is an hour away.
    let mut observed = vec![
        json!(Harness::url("contoso", "web")),
        json!(Harness::url("contoso", "gone")),
    ];
    observed.extend(probes.iter().map(|p| json!(Harness::url("contoso", p))));
    let mut json = h.settings_json(&["contoso"], observed);
    json["secretsManagementSettings"]["pollingIntervalInS"] = json!("3600");
    json["akvvm"]["webhook"] = json!({
        "address": "127.0.0.1:0",
        "secretFile": secret_file.display().to_string(),
    });
    let settings = h.settings(&json);
    let options = akvvm::sync::EngineOptions {
        initial_retry_delay: Duration::from_secs(3600),
        max_retry_delay: Duration::from_secs(3600),
        chain_validation: false,
    };
    let engine = Arc::new(akvvm::sync::Engine::new(settings, options).unwrap());
    let cancel = CancellationToken::new();
    let (address, push) = harness::start_push(engine.clone(), &cancel).await;
    let web_link = h.store().join("contoso.web");
    let last_probe = h.store().join(format!("contoso.{}", probes[rounds - 1]));
    assert!(
        eventually(Duration::from_secs(30), || web_link.exists()
            && last_probe.exists())
        .await,
        "the initial sync installs the certificates that exist"
    );
    let gone_before = gets_of(&h, "gone");
    assert!(gone_before >= 1, "the initial sync asked for `gone`");
    let endpoint = format!("http://{address}/eventgrid?key={SECRET}");
    let client = reqwest::Client::new();
    let deliver = |name: &str| {
        let request = client
            .post(&endpoint)
            .json(&new_version_event("contoso", name, "v"));
        async move {
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), 200);
        }
    };

    // The first delivery for `web` syncs it at once.
    let web_before = gets_of(&h, "web");
    deliver("web").await;
    assert!(
        eventually(Duration::from_secs(30), || gets_of(&h, "web") > web_before).await,
        "a delivery syncs the certificate it names"
    );

    // More rounds for `web` and the failing `gone`, each ended by a delivery for a probe that
    // has not been asked yet: once the probe is fetched, the daemon has taken the round.
    for probe in &probes {
        let probe_before = gets_of(&h, probe);
        deliver("web").await;
        deliver("gone").await;
        deliver(probe).await;
        assert!(
            eventually(Duration::from_secs(30), || gets_of(&h, probe)
                > probe_before)
            .await,
            "the delivery for {probe} is served"
        );
    }
    let web_gets = gets_of(&h, "web") - web_before;
    let deliveries = rounds + 1;
    // The burst, and at most one more once the interval has passed (only if this test ran
    // longer than it); without the limit, one per delivery.
    let burst = u64::from(akvvm::sync::daemon::DELIVERY_BURST);
    assert!(
        web_gets <= burst + 1,
        "{deliveries} deliveries for `web` made {web_gets} GETs of it"
    );
    assert_eq!(
        gets_of(&h, "gone"),
        gone_before,
        "deliveries brought the failing certificate's retry forward"
    );

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), push)
        .await
        .expect("both stop on cancellation")
        .unwrap();
}
