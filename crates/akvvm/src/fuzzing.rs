//! The fuzz harness of the webhook: the function the `webhook` `cargo fuzz` target (`fuzz/`)
//! runs, shared with the stable regression test that replays every committed corpus and
//! regression input (`tests/it/fuzz_corpus.rs`), so that both run the same code. The harnesses
//! of the settings, handler and `.cscfg` parsers are in `akvvm_settings::fuzzing`, the
//! decoders' (`pkcs12`, `pem`) in `akvvm_cert::fuzzing`.
//!
//! A harness takes the raw input and returns nothing: whatever the input, the parser must answer
//! with a value or an error, never panic. The harness also checks what an answer promises (a
//! webhook only queues observed certificates, ...); a broken promise is a panic, which the fuzzer
//! reports as a crash. Not part of the API: `docs/fuzzing.md` says how to use it.

use std::sync::OnceLock;

use serde_json::Value;

use crate::settings::Settings;
use crate::webhook::{Delivery, Targets};

/// The observed certificates the `webhook` target's deliveries may name.
const WEBHOOK_SETTINGS: &str = r#"{"secretsManagementSettings": {"observedCertificates": [
    "https://contoso.vault.azure.net/secrets/web",
    "https://contoso.vault.azure.net/secrets/api/0123456789abcdef0123456789abcdef",
    "https://fabrikam.vault.azure.net/secrets/web"
]}}"#;

fn webhook_targets() -> &'static (Targets, Vec<String>) {
    static TARGETS: OnceLock<(Targets, Vec<String>)> = OnceLock::new();
    TARGETS.get_or_init(|| {
        let value: Value = serde_json::from_str(WEBHOOK_SETTINGS).expect("the settings are JSON");
        let (settings, _) = Settings::from_json_value(&value).expect("the settings are valid");
        let urls = settings
            .observed
            .iter()
            .map(|c| c.url.to_string())
            .collect();
        (Targets::from_settings(&settings), urls)
    })
}

/// `webhook` target: the input is the body of a delivery (Event Grid schema or CloudEvents 1.0,
/// one event or a batch).
pub fn webhook(data: &[u8]) {
    let (targets, observed) = webhook_targets();
    match crate::webhook::parse_delivery(data, targets) {
        Ok(Delivery::Validation(code)) => {
            serde_json::to_string(&serde_json::json!({ "validationResponse": code }))
                .expect("the answer serializes");
        }
        Ok(Delivery::Events { urls, ignored }) => {
            for url in &urls {
                assert!(
                    observed.contains(url),
                    "queued {url}, which is not observed"
                );
            }
            let events = match serde_json::from_slice::<Value>(data) {
                Ok(Value::Array(events)) => events.len(),
                _ => 1,
            };
            assert!(ignored <= events, "{ignored} ignored of {events} events");
            assert!(
                urls.is_empty() || ignored < events,
                "certificates queued while every event was ignored"
            );
        }
        Err(reason) => assert!(!reason.to_string().is_empty(), "an empty reason"),
    }
}
