//! Replay of real Key Vault answers (issue 13 item 8): request sequences from the Azure SDKs'
//! public test recordings, kept as fixtures in `crates/akvvm-testkit/fixtures/recordings/` (each
//! one's repository, path and commit in the README there), sent to the local vault in-process. Each
//! answer is compared with the recorded one: status, error code, the JSON body's field set (keys,
//! recursively; values normalised to their JSON type except error codes and the fixed `null` and
//! `[]`), and the names of the Key Vault headers the recording carried ([`KEY_VAULT_HEADERS`]).
//! Vault names, ids, versions and times are normalised by comparing types only.

use akvvm_emulator::{AuthorizationModel, RunningEmulator};
use akvvm_testkit::sdk::{http_client, imds_request, json_answer, start_with_roles};
use reqwest::Method;
use serde_json::Value;

/// The vault every recording is replayed against (the recordings' `keyvault_name` is not a valid
/// vault name; the host is not part of the comparison).
const VAULT: &str = "recordings";
/// Every recording replayed, by fixture name (`fixtures/recordings/<name>.json`).
const RECORDINGS: &[&str] = &[
    "js_can_get_a_secret",
    "js_can_get_a_secret_non_existing",
    "js_can_get_a_deleted_secret_non_existing",
    "js_can_list_secret_versions_non_existing",
    "js_can_backup_a_secret_non_existing",
];
/// The headers Key Vault sends that are compared by name: those on every answer (the fidelity
/// test `answers_carry_key_vaults_headers_and_echo_the_client_request_id` checks their values),
/// the challenge on a 401, the echoed client request id and the role assignment that allowed a
/// request on an RBAC vault. A recorded header outside this set (`date`, `server`, `x-powered-by`,
/// `x-ms-keyvault-rbac-cache`, ...) is not compared.
const KEY_VAULT_HEADERS: &[&str] = &[
    "cache-control",
    "content-type",
    "expires",
    "pragma",
    "strict-transport-security",
    "x-content-type-options",
    "x-ms-keyvault-network-info",
    "x-ms-keyvault-region",
    "x-ms-keyvault-service-version",
    "x-ms-request-id",
    "x-ms-client-request-id",
    "x-ms-keyvault-rbac-assignment-id",
    "www-authenticate",
];

/// Replays the recording `name` against a fresh local vault; panics naming the recording and the
/// step at the first difference.
async fn replay(name: &str) {
    let recording: Value = serde_json::from_str(&akvvm_testkit::fixtures::text(&format!(
        "recordings/{name}.json"
    )))
    .unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
    let (emulator, _) = start_with_roles(
        VAULT,
        AuthorizationModel::Rbac,
        &["Key Vault Secrets Officer"],
    )
    .await;
    let token = imds_token(&emulator).await;
    let client = http_client(&emulator, &[VAULT]);
    let steps = recording["steps"].as_array().expect("steps");
    assert!(!steps.is_empty(), "{name}: no steps");
    for (i, step) in steps.iter().enumerate() {
        let at = format!(
            "recording {name}, step {} ({} {})",
            i + 1,
            step["method"].as_str().unwrap(),
            step["path"].as_str().unwrap()
        );
        let method = Method::from_bytes(step["method"].as_str().unwrap().as_bytes()).unwrap();
        let url = format!(
            "{}{}?api-version={}",
            emulator.vault_url(VAULT),
            step["path"].as_str().unwrap(),
            step["api-version"].as_str().unwrap()
        );
        let mut request = client.request(method, url).header(
            "x-ms-client-request-id",
            "5a08b7a1-50db-4d8c-a73b-5c179c79240f",
        );
        if step["token"].as_bool().unwrap() {
            request = request.bearer_auth(&token);
        }
        if !step["body"].is_null() {
            request = request.json(&step["body"]);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{at}: {e}"));
        let status = response.status().as_u16();
        assert_eq!(
            Some(u64::from(status)),
            step["status"].as_u64(),
            "{at}: status"
        );
        for header in step["headers"].as_array().unwrap() {
            let header = header.as_str().unwrap();
            assert!(
                KEY_VAULT_HEADERS.contains(&header),
                "{at}: recorded header {header} is not in KEY_VAULT_HEADERS"
            );
            assert!(
                response.headers().contains_key(header),
                "{at}: header {header} missing"
            );
        }
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{at}: answer not JSON: {e}"));
        if let Err(difference) = same_shape(&step["response"], &body, "") {
            panic!(
                "{at}: body differs at {difference}\nrecorded: {}\nlocal vault: {body}",
                step["response"]
            );
        }
    }
}

/// An IMDS token for the system identity and Key Vault.
async fn imds_token(emulator: &RunningEmulator) -> String {
    let (_, body) = json_answer(imds_request(emulator, "https://vault.azure.net")).await;
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("IMDS refused: {}", body["error_description"]))
        .to_owned()
}

/// Whether `actual` has the shape of `recorded` at `path`: the same keys (recursively), the same
/// JSON types, the same error code, `null` and `[]` where recorded. Each item of a non-empty list
/// is compared with the recorded first item. The difference's path and what differs, otherwise.
fn same_shape(recorded: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (recorded, actual) {
        (Value::Object(r), Value::Object(a)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            if keys(r) != keys(a) {
                return Err(format!(
                    "{}: fields {:?}, local vault {:?}",
                    or_root(path),
                    keys(r),
                    keys(a)
                ));
            }
            r.iter()
                .try_for_each(|(k, v)| same_shape(v, &a[k], &format!("{path}/{k}")))
        }
        (Value::Array(r), Value::Array(a)) => match r.first() {
            None if a.is_empty() => Ok(()),
            None => Err(format!("{}: [] recorded, {} items", or_root(path), a.len())),
            Some(first) if !a.is_empty() => a
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| same_shape(first, item, &format!("{path}/{i}"))),
            Some(_) => Err(format!("{}: items recorded, [] answered", or_root(path))),
        },
        (Value::String(r), Value::String(a)) if path == "/error/code" && r != a => {
            Err(format!("{path}: {r}, local vault {a}"))
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => Ok(()),
        (r, a) => Err(format!("{}: {r} recorded, {a} answered", or_root(path))),
    }
}

fn or_root(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

#[tokio::test]
async fn set_and_get_a_secret() {
    replay("js_can_get_a_secret").await;
}

#[tokio::test]
async fn get_a_secret_that_does_not_exist() {
    replay("js_can_get_a_secret_non_existing").await;
}

#[tokio::test]
async fn delete_a_secret_that_does_not_exist() {
    replay("js_can_get_a_deleted_secret_non_existing").await;
}

#[tokio::test]
async fn list_the_versions_of_a_secret_that_does_not_exist() {
    replay("js_can_list_secret_versions_non_existing").await;
}

#[tokio::test]
async fn back_up_a_secret_that_does_not_exist() {
    replay("js_can_backup_a_secret_non_existing").await;
}

/// Every fixture is replayed and named with its source in the README, and the comparison fails
/// on a difference (a replay that cannot fail checks nothing).
#[test]
fn every_recording_is_replayed_and_sourced_and_differences_fail() {
    let readme = akvvm_testkit::fixtures::text("recordings/README.md");
    let mut files: Vec<String> = std::fs::read_dir(akvvm_testkit::fixtures::path("recordings"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|f| f.strip_suffix(".json").map(str::to_owned))
        .collect();
    files.sort();
    let mut listed: Vec<String> = RECORDINGS.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(files, listed);
    for name in RECORDINGS {
        assert!(
            readme.contains(&format!("`{name}.json` | Azure/")),
            "{name} has no source line in the README"
        );
    }

    let recorded: Value = serde_json::json!({"value": [], "nextLink": null});
    assert!(
        same_shape(
            &recorded,
            &serde_json::json!({"value": [], "nextLink": null}),
            ""
        )
        .is_ok()
    );
    assert!(
        same_shape(
            &recorded,
            &serde_json::json!({"value": [{}], "nextLink": null}),
            ""
        )
        .is_err()
    );
    assert!(
        same_shape(
            &recorded,
            &serde_json::json!({"value": [], "nextLink": "x"}),
            ""
        )
        .is_err()
    );
    assert!(same_shape(&recorded, &serde_json::json!({"value": []}), "").is_err());
    let error = serde_json::json!({"error": {"code": "SecretNotFound", "message": "a"}});
    assert!(
        same_shape(
            &error,
            &serde_json::json!({"error": {"code": "SecretNotFound", "message": "b"}}),
            ""
        )
        .is_ok()
    );
    assert!(
        same_shape(
            &error,
            &serde_json::json!({"error": {"code": "NotFound", "message": "a"}}),
            ""
        )
        .is_err()
    );
}
