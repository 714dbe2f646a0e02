//! The Key Vault throttle preset (`{"throttle": {"preset": "keyVaultSecrets"}}`): how many
//! requests it lets through, the 429 that the rest get (Key Vault's body, `Retry-After` present
//! or absent), and the request statistics of the admin API that count them. Counts only, no
//! timings.

use akvvm_emulator::{Emulator, EmulatorConfig};
use akvvm_testkit::sdk;
use futures::StreamExt;
use serde_json::{Value, json};

const VAULT: &str = "throttled";
/// Key Vault's 429 body, byte for byte as Key Vault sends it (quoted in dotnet/sign#403 and
/// vcsjones/AzureSignTool#219, `Content-Length: 146`).
const KEY_VAULT_429: &str = r#"{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"}}"#;

#[tokio::test]
async fn the_key_vault_preset_passes_4000_requests_per_window_and_answers_key_vaults_429() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    let http = sdk::http_client(&emulator, &[VAULT]);
    let admin = format!("{}/_emulator", emulator.authority_host());

    // Set through the admin API, the preset reads back as Key Vault's limit.
    let answer = http
        .put(format!("{admin}/faults/{VAULT}"))
        .json(&json!({"throttle": {"preset": "keyVaultSecrets"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let faults: Value = answer.json().await.unwrap();
    assert_eq!(
        faults["throttle"],
        json!({"limit": 4000, "windowMs": 10000, "retryAfterS": null})
    );

    // 4,000 requests pass (each answered: here the 401 challenge, as no token is sent); the
    // next ones get 429, with no Retry-After.
    let url = format!("{}/secrets/s?api-version=7.4", emulator.vault_url(VAULT));
    let statuses: Vec<u16> = futures::stream::iter(0..4_010)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(statuses.iter().filter(|&&s| s == 401).count(), 4_000);
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 10);
    let throttled = http.get(&url).send().await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().get("retry-after").is_none());
    assert_eq!(throttled.text().await.unwrap(), KEY_VAULT_429);

    // The same preset with Retry-After: the window still holds 4,000 requests.
    emulator.throttle_like_key_vault(VAULT, Some(10));
    let throttled = http.get(&url).send().await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "10");
    assert_eq!(throttled.text().await.unwrap(), KEY_VAULT_429);

    // The statistics count every request by scope and status.
    let stats: Value = http
        .get(format!("{admin}/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["byScope"][VAULT]["byStatus"],
        json!({"401": 4000, "429": 12})
    );
    assert_eq!(stats["byScope"][VAULT]["total"], 4012);
    assert_eq!(stats["byStatus"]["429"], 12);
    assert_eq!(emulator.request_stats().by_scope[VAULT].total, 4012);
    // Reset, they start again from nothing.
    assert_eq!(
        http.delete(format!("{admin}/stats"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(emulator.request_stats().total, 0);
}

#[tokio::test]
async fn a_throttle_is_a_preset_or_a_limit_and_a_window_and_anything_else_is_refused() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    let http = sdk::http_client(&emulator, &[VAULT]);
    let admin = format!("{}/_emulator", emulator.authority_host());
    for (throttle, says) in [
        (
            json!({"preset": "keyVaultSecrets", "limit": 5}),
            "preset takes no limit",
        ),
        (
            json!({"limit": 5}),
            "needs \\\"limit\\\" and \\\"windowMs\\\"",
        ),
        (
            json!({"limit": 5, "windowMs": 0}),
            "windowMs must be above 0",
        ),
        (json!({"preset": "keyVault"}), "unknown variant"),
    ] {
        let answer = http
            .put(format!("{admin}/faults/{VAULT}"))
            .json(&json!({ "throttle": throttle }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{throttle}");
        let body = answer.text().await.unwrap();
        assert!(body.contains(says), "{throttle}: {body}");
    }
    // Nothing was set by the refused ones.
    assert_eq!(
        emulator.traffic.faults(VAULT),
        akvvm_emulator::state::Faults::default()
    );
}
