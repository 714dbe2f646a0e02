//! Replay of real Key Vault answers (issue 13 item 8): request sequences from the Azure SDKs'
//! public test recordings (azure-sdk-for-js `keyvault-secrets` and `keyvault-certificates`,
//! azure-sdk-for-python `azure-keyvault-secrets` and `azure-keyvault-certificates`), kept as
//! fixtures in `crates/akvvm-testkit/fixtures/recordings/` (each one's repository, path and
//! commit in the README there and beside its test below), sent to the local vault in-process.
//! Each answer is compared with the recorded one: status, the names of the Key Vault headers the
//! recording carried ([`KEY_VAULT_HEADERS`]), the challenge of a 401, and the JSON body's shape
//! ([`shape::same_shape`]). Versions the recording names in later paths are mapped to the local
//! vault's; a backup blob is the one the local vault answered; polls that a real vault answered
//! several times before the operation completed (`polled`) are repeated until the local vault
//! gives the recorded final answer, and a recording with such polls is replayed a second time with
//! deletes and recoveries taking a while, so that the interim answers are compared too.

mod shape;

use std::collections::BTreeMap;
use std::time::Duration;

use akvvm_emulator::{AuthorizationModel, RunningEmulator};
use akvvm_testkit::sdk::{http_client, imds_request, json_answer, start_with_roles};
use reqwest::Method;
use serde_json::Value;
use shape::{same_challenge, same_shape};

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
    "js_can_recover_a_deleted_secret",
    "js_can_get_a_certificates_secret_in_pem_format",
    "js_can_get_a_certificates_secret_in_pkcs_12_format",
    "js_can_list_certificate_versions_non_existing",
    "py_secret_crud_operations",
    "py_secret_backup_restore",
    "py_certificate_crud_operations",
    "py_certificate_backup_restore",
    "py_import_certificate_not_password_encoded_no_policy",
    "js_can_recover_a_deleted_certificate",
    "js_can_restore_a_certificate_malformed_backup_bytes",
];
/// The headers Key Vault sends that are compared by name: those on every answer (the fidelity
/// test `answers_carry_key_vaults_headers_and_echo_the_client_request_id` checks their values),
/// the challenge on a 401, the echoed client request id, the role assignment that allowed a
/// request on an RBAC vault, and the certificate operation's `Location` and `Retry-After`. A
/// recorded header outside this set (`date`, `server`, `x-powered-by`, `x-ms-keyvault-rbac-cache`,
/// ...) is not compared.
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
    "location",
    "retry-after",
];
/// The most times a `polled` step is sent before its recorded final answer must have come.
const MAX_POLLS: u32 = 200;
/// How long the local vault takes to complete deletes and recoveries in the second replay of a
/// recording with `polled` steps, so that it gives the interim answers a real vault gave.
const DELETION_DELAY: Duration = Duration::from_millis(150);

/// One recording being replayed: the local vault, its client and token, and what earlier answers
/// taught (recorded version ids → the local vault's, the last backup blob, how many interim
/// answers of `polled` steps came).
struct Replay {
    name: String,
    emulator: RunningEmulator,
    client: reqwest::Client,
    token: String,
    versions: BTreeMap<String, String>,
    backup: Option<String>,
    interim: u32,
}

/// Replays the recording `name` against a fresh local vault; panics naming the recording and the
/// step at the first difference. A recording with `polled` steps is replayed a second time with
/// deletes and recoveries completing after [`DELETION_DELAY`], as Key Vault's do: then the local
/// vault must give (some of) the recorded interim answers too, and they are compared as well.
async fn replay(name: &str) {
    let recording = fixture(name);
    replay_once(name, &recording, None).await;
    let steps = recording["steps"].as_array().unwrap();
    if steps.iter().any(|s| s["polled"].is_array()) {
        let interim = replay_once(name, &recording, Some(DELETION_DELAY)).await;
        assert!(
            interim > 0,
            "{name}: no interim answer with deletes taking {DELETION_DELAY:?}"
        );
    }
}

/// One replay of `recording` against a fresh local vault (deletes and recoveries taking `delay`);
/// the number of interim answers it gave to `polled` steps.
async fn replay_once(name: &str, recording: &Value, delay: Option<Duration>) -> u32 {
    let (emulator, _) = start_with_roles(
        VAULT,
        AuthorizationModel::Rbac,
        &["Key Vault Administrator"],
    )
    .await;
    if let Some(polls) = recording["pendingPolls"].as_u64() {
        emulator.pending_polls(VAULT, u32::try_from(polls).unwrap());
    }
    if let Some(delay) = delay {
        emulator.set_deletion_delay(VAULT, delay);
    }
    let token = imds_token(&emulator).await;
    let client = http_client(&emulator, &[VAULT]);
    let mut replay = Replay {
        name: name.to_owned(),
        emulator,
        client,
        token,
        versions: BTreeMap::new(),
        backup: None,
        interim: 0,
    };
    let steps = recording["steps"].as_array().expect("steps");
    assert!(!steps.is_empty(), "{name}: no steps");
    for (i, step) in steps.iter().enumerate() {
        replay.step(i + 1, step).await;
    }
    replay.interim
}

/// The fixture `recordings/<name>.json`.
fn fixture(name: &str) -> Value {
    serde_json::from_str(&akvvm_testkit::fixtures::text(&format!(
        "recordings/{name}.json"
    )))
    .unwrap_or_else(|e| panic!("{name}: not JSON: {e}"))
}

impl Replay {
    async fn step(&mut self, n: usize, step: &Value) {
        let path = self.local(step["path"].as_str().unwrap());
        let at = format!(
            "recording {}, step {n} ({} {path})",
            self.name,
            step["method"].as_str().unwrap(),
        );
        let polled = step["polled"].as_array().map_or(&[][..], Vec::as_slice);
        let mut polls = 0;
        let (status, headers, body) = loop {
            let (status, headers, body) = self.send(step, &path, &at).await;
            let interim = polled
                .iter()
                .find(|p| p["status"].as_u64() == Some(u64::from(status)));
            match interim {
                Some(p) if Some(u64::from(status)) != step["status"].as_u64() => {
                    if let Err(d) = same_shape(&p["response"], &body, "") {
                        panic!("{at}: interim {status} differs at {d}\nlocal vault: {body}");
                    }
                    polls += 1;
                    self.interim += 1;
                    assert!(
                        polls < MAX_POLLS,
                        "{at}: still {status} after {polls} polls"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => break (status, headers, body),
            }
        };
        assert_eq!(
            Some(u64::from(status)),
            step["status"].as_u64(),
            "{at}: status (answer {body})"
        );
        for header in step["headers"].as_array().unwrap() {
            let header = header.as_str().unwrap();
            assert!(
                KEY_VAULT_HEADERS.contains(&header),
                "{at}: recorded header {header} is not in KEY_VAULT_HEADERS"
            );
            assert!(
                headers.contains_key(header),
                "{at}: header {header} missing"
            );
        }
        if let Some(recorded) = step["challenge"].as_str() {
            let actual = headers["www-authenticate"].to_str().unwrap();
            same_challenge(recorded, actual).unwrap_or_else(|e| panic!("{at}: {e}"));
        }
        if let Err(difference) = same_shape(&step["response"], &body, "") {
            panic!(
                "{at}: body differs at {difference}\nrecorded: {}\nlocal vault: {body}",
                step["response"]
            );
        }
        self.learn(&step["response"], &body);
        if path.ends_with("/backup") && status == 200 {
            self.backup = body["value"].as_str().map(str::to_owned);
        }
    }

    /// Sends the step's request to `path`; the answer's status, headers and JSON body (`null` when
    /// empty).
    async fn send(
        &self,
        step: &Value,
        path: &str,
        at: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let method = Method::from_bytes(step["method"].as_str().unwrap().as_bytes()).unwrap();
        let url = format!(
            "{}{path}?api-version={}",
            self.emulator.vault_url(VAULT),
            step["api-version"].as_str().unwrap()
        );
        let mut request = self.client.request(method, url).header(
            "x-ms-client-request-id",
            "5a08b7a1-50db-4d8c-a73b-5c179c79240f",
        );
        if step["token"].as_bool().unwrap() {
            request = request.bearer_auth(&self.token);
        }
        if !step["body"].is_null() {
            request = request.json(&self.local_body(&step["body"]));
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{at}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{at}: answer not JSON: {e}"))
        };
        (status, headers, body)
    }

    /// A recorded path with the recorded versions replaced by the local vault's.
    fn local(&self, recorded: &str) -> String {
        recorded
            .split('/')
            .map(|segment| self.versions.get(segment).map_or(segment, String::as_str))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// A recorded request body with `<backup blob>` replaced by the blob the local vault answered.
    fn local_body(&self, recorded: &Value) -> Value {
        match recorded {
            Value::String(s) if s == "<backup blob>" => Value::String(
                self.backup
                    .clone()
                    .expect("a backup step before the restore"),
            ),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), self.local_body(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Learns the local vault's version for each recorded one from the ids both answers carry.
    fn learn(&mut self, recorded: &Value, actual: &Value) {
        match (recorded, actual) {
            (Value::Object(r), Value::Object(a)) => {
                for (k, rv) in r {
                    if let (Some(rs), Some(Value::String(local))) = (rv.as_str(), a.get(k))
                        && ["id", "kid", "sid"].contains(&k.as_str())
                    {
                        for (rseg, lseg) in rs.split('/').zip(local.split('/')) {
                            if is_version(rseg) && rseg != lseg {
                                self.versions.insert(rseg.to_owned(), lseg.to_owned());
                            }
                        }
                    } else if let Some(av) = a.get(k) {
                        self.learn(rv, av);
                    }
                }
            }
            (Value::Array(r), Value::Array(a)) => {
                r.iter().zip(a).for_each(|(rv, av)| self.learn(rv, av));
            }
            _ => {}
        }
    }
}

/// Whether a path segment is a Key Vault version id (32 hex digits).
fn is_version(segment: &str) -> bool {
    segment.len() == 32 && segment.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An IMDS token for the system identity and Key Vault.
async fn imds_token(emulator: &RunningEmulator) -> String {
    let (_, body) = json_answer(imds_request(emulator, "https://vault.azure.net")).await;
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("IMDS refused: {}", body["error_description"]))
        .to_owned()
}

/// azure-sdk-for-js `keyvault-secrets`, `recording_can_get_a_secret.json`.
#[tokio::test]
async fn set_and_get_a_secret() {
    replay("js_can_get_a_secret").await;
}

/// azure-sdk-for-js `keyvault-secrets`, `recording_can_get_a_secret_non_existing.json`.
#[tokio::test]
async fn get_a_secret_that_does_not_exist() {
    replay("js_can_get_a_secret_non_existing").await;
}

/// azure-sdk-for-js `keyvault-secrets`, `recording_can_get_a_deleted_secret_non_existing.json`.
#[tokio::test]
async fn delete_a_secret_that_does_not_exist() {
    replay("js_can_get_a_deleted_secret_non_existing").await;
}

/// azure-sdk-for-js `keyvault-secrets`, `recording_can_list_secret_versions_non_existing.json`.
#[tokio::test]
async fn list_the_versions_of_a_secret_that_does_not_exist() {
    replay("js_can_list_secret_versions_non_existing").await;
}

/// azure-sdk-for-js `keyvault-secrets`, `recording_can_backup_a_secret_non_existing.json`.
#[tokio::test]
async fn back_up_a_secret_that_does_not_exist() {
    replay("js_can_backup_a_secret_non_existing").await;
}

/// azure-sdk-for-js `keyvault-secrets`, `recording_can_recover_a_deleted_secret.json` (commit
/// ece126e511fda6ee4e0364113547e148091a0273): set, delete, the deleted secret polled, recover,
/// and the secret polled back.
#[tokio::test]
async fn recover_a_deleted_secret() {
    replay("js_can_recover_a_deleted_secret").await;
}

/// azure-sdk-for-js `keyvault-certificates`, `recording_can_get_a_certificates_secret_in_pem_format.json`
/// (commit 7db1ba0a8da422c55855d822d28a3122dd1349de): create with the 401 challenge, two
/// `inProgress` polls, the bundle, and the managed secret in PEM.
#[tokio::test]
async fn a_certificates_secret_in_pem() {
    replay("js_can_get_a_certificates_secret_in_pem_format").await;
}

/// azure-sdk-for-js `keyvault-certificates`, `recording_can_get_a_certificates_secret_in_pkcs_12_format.json`
/// (commit 49291321dd372ffcc17dad690b7a6dc21769ac43): the same with the default PKCS#12.
#[tokio::test]
async fn a_certificates_secret_in_pkcs12() {
    replay("js_can_get_a_certificates_secret_in_pkcs_12_format").await;
}

/// azure-sdk-for-js `keyvault-certificates`, `recording_can_list_certificate_versions_non_existing.json`
/// (commit 0947864b69a62e612c91f3850b81a1e07621d1bd): an empty list, not a 404.
#[tokio::test]
async fn list_the_versions_of_a_certificate_that_does_not_exist() {
    replay("js_can_list_certificate_versions_non_existing").await;
}

/// azure-sdk-for-python `azure-keyvault-secrets`,
/// `test_secrets_client.pyTestSecretClienttest_secret_crud_operations[7.3].json` (commit
/// 0f11eacdda1d9e9bf11ca4c0315900dbf1481b4a): set, set with attributes and tags, get (latest and
/// by version), update, delete.
#[tokio::test]
async fn python_secret_crud() {
    replay("py_secret_crud_operations").await;
}

/// azure-sdk-for-python `azure-keyvault-secrets`,
/// `test_secrets_client.pyTestSecretClienttest_backup_restore[7.3].json` (commit
/// 5899cf6487af799e84fcab954af83e45c10a1dce): backup, delete, the deleted secret polled, purge,
/// restore.
#[tokio::test]
async fn python_secret_backup_and_restore() {
    replay("py_secret_backup_restore").await;
}

/// azure-sdk-for-python `azure-keyvault-certificates`,
/// `test_certificates_client.pyTestCertificateClienttest_crud_operations[7.3].json` (commit
/// 23a663d6e042d84eb853ec2309a66206a848d1b2): create with two `inProgress` polls, get, update
/// the tags, delete, the deleted certificate polled, and the deleted version's 404.
#[tokio::test]
async fn python_certificate_crud() {
    replay("py_certificate_crud_operations").await;
}

/// azure-sdk-for-python `azure-keyvault-certificates`,
/// `test_certificates_client.pyTestCertificateClienttest_backup_restore[7.3].json` (commit
/// a0d16b1ff1ffc78e295784467fa3f56bed9c46a8): create, backup, delete, the deleted certificate
/// polled, purge, and the restore (a real vault answered 409 while the purge completed).
#[tokio::test]
async fn python_certificate_backup_and_restore() {
    replay("py_certificate_backup_restore").await;
}

/// azure-sdk-for-python `azure-keyvault-certificates`,
/// `test_certificates_client.pyTestCertificateClienttest_import_certificate_not_password_encoded_no_policy[7.3].json`
/// (commit 1203b7e49968eda0da4ec88a626cf58cad0ad5b3): a PFX without password imported, and the
/// policy Key Vault derives from it (issuer `Unknown`, `EmailContacts`, the certificate's own
/// usages, `[]` when it has none).
#[tokio::test]
async fn python_import_of_a_pfx() {
    replay("py_import_certificate_not_password_encoded_no_policy").await;
}

/// azure-sdk-for-js `keyvault-certificates`, `recording_can_recover_a_deleted_certificate.json`
/// (commit 26479601feecbcfd743009b2384a20a6c5b2e606): create, delete, the deleted certificate
/// polled, recover, and the certificate polled back.
#[tokio::test]
async fn recover_a_deleted_certificate() {
    replay("js_can_recover_a_deleted_certificate").await;
}

/// azure-sdk-for-js `keyvault-certificates`,
/// `recording_can_restore_a_certificate_malformed_backup_bytes.json` (commit
/// 49291321dd372ffcc17dad690b7a6dc21769ac43): Key Vault's 400 `Malformed backup blob`.
#[tokio::test]
async fn restore_a_malformed_certificate_backup() {
    replay("js_can_restore_a_certificate_malformed_backup_bytes").await;
}

/// Restoring a backup onto a secret name in use is Key Vault's 409 in Key Vault's words, naming
/// the backed-up version: the 409 of `py_secret_backup_restore` (a real vault's answer to the
/// same restore while the purge completed) with the local vault's id for the recorded one.
#[tokio::test]
async fn restoring_onto_a_name_in_use_is_key_vaults_conflict() {
    let recording = fixture("py_secret_backup_restore");
    let steps = recording["steps"].as_array().unwrap();
    let restore = steps.last().unwrap();
    let recorded = &restore["polled"][0]["response"];
    assert_eq!(restore["polled"][0]["status"], 409);
    let recorded_id = steps[1]["response"]["id"].as_str().unwrap();

    let (emulator, _) = start_with_roles(
        VAULT,
        AuthorizationModel::Rbac,
        &["Key Vault Administrator"],
    )
    .await;
    let token = imds_token(&emulator).await;
    let client = http_client(&emulator, &[VAULT]);
    let url = |path: &str| format!("{}{path}?api-version=7.3", emulator.vault_url(VAULT));
    let set: Value = client
        .put(url("/secrets/livekvtestsecbak4b0a2c45"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"value": "secVal"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let backup: Value = client
        .post(url("/secrets/livekvtestsecbak4b0a2c45/backup"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refused = client
        .post(url("/secrets/restore"))
        .bearer_auth(&token)
        .json(&backup)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    let local_id = set["id"].as_str().unwrap();
    let expected = recorded["error"]["message"]
        .as_str()
        .unwrap()
        .replace(recorded_id, local_id);
    assert_eq!(body["error"]["code"], recorded["error"]["code"]);
    assert_eq!(body["error"]["message"].as_str(), Some(expected.as_str()));
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

    let json = |s: &str| -> Value { serde_json::from_str(s).unwrap() };
    let recorded = json(r#"{"value": [], "nextLink": null}"#);
    assert!(same_shape(&recorded, &json(r#"{"nextLink": null, "value": []}"#), "").is_ok());
    assert!(same_shape(&recorded, &json(r#"{"value": [{}], "nextLink": null}"#), "").is_err());
    assert!(same_shape(&recorded, &json(r#"{"value": [], "nextLink": "x"}"#), "").is_err());
    assert!(same_shape(&recorded, &json(r#"{"value": []}"#), "").is_err());
    let error = json(r#"{"error": {"code": "SecretNotFound", "message": "a"}}"#);
    let other = json(r#"{"error": {"code": "SecretNotFound", "message": "b"}}"#);
    assert!(same_shape(&error, &other, "").is_ok());
    let other = json(r#"{"error": {"code": "NotFound", "message": "a"}}"#);
    assert!(same_shape(&error, &other, "").is_err());
    let tags = json(r#"{"tags": {"foo": "updated tag"}, "attributes": {"enabled": false}}"#);
    let other = json(r#"{"tags": {"foo": "created tag"}, "attributes": {"enabled": false}}"#);
    assert!(same_shape(&tags, &other, "").is_err());
    let other = json(r#"{"tags": {"foo": "updated tag"}, "attributes": {"enabled": true}}"#);
    assert!(same_shape(&tags, &other, "").is_err());

    assert!(shape::placeholder("<base64 DER>", "MIIBCg==").is_ok());
    assert!(shape::placeholder("<base64 DER>", "not base64").is_err());
    let pem = "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
    assert!(shape::placeholder("<PEM PRIVATE KEY, CERTIFICATE>", pem).is_ok());
    assert!(shape::placeholder("<PEM CERTIFICATE, PRIVATE KEY>", pem).is_err());
    let challenge = r#"Bearer authorization="https://login.windows.net/t1", resource="https://vault.azure.net""#;
    let other = r#"Bearer authorization="https://login.windows.net/t2", resource="https://vault.azure.net""#;
    assert!(same_challenge(challenge, other).is_ok());
    let other =
        r#"Bearer authorization="https://login.windows.net/t1", resource="https://vault.azure.cn""#;
    assert!(same_challenge(challenge, other).is_err());
    let other = r#"Bearer authorization="https://login.microsoftonline.com/t1", scope="https://vault.azure.net/.default""#;
    assert!(same_challenge(challenge, other).is_err());
}
