//! The official Azure SDK for Rust (`azure_security_keyvault_secrets`) against the local vault,
//! in-process on 127.0.0.1:0. Only the CA and the host mapping are configured: the SDK keeps
//! its challenge-resource verification on.

use std::sync::Arc;

use akvvm_emulator::{
    Emulator, EmulatorConfig, Identity, IdentitySpec, RunningEmulator, SecretSpec,
};
use akvvm_testkit::sdk::{self, ImdsCredential, assert_value};
use azure_core::credentials::TokenCredential;
use azure_core::http::RetryOptions;
use azure_security_keyvault_secrets::models::{
    RestoreSecretParameters, SecretAttributes, SecretClientGetSecretOptions, SetSecretParameters,
    UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt as _, SecretClient};
use futures::TryStreamExt;

const VAULT: &str = "myvault";

async fn start() -> RunningEmulator {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    emulator
}

/// The local vault with the system identity as "Key Vault Secrets Officer" on the vault.
async fn start_with_officer() -> (RunningEmulator, Identity) {
    let emulator = start().await;
    let identity = emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator
        .assign_roles(VAULT, &identity.object_id, &["Key Vault Secrets Officer"])
        .unwrap();
    (emulator, identity)
}

/// A reqwest client that trusts the emulator's CA and maps this file's vaults to it.
fn http_client(emulator: &RunningEmulator) -> reqwest::Client {
    sdk::http_client(emulator, &[VAULT, "scopevault"])
}

fn client(
    emulator: &RunningEmulator,
    client_id: Option<String>,
    retry: RetryOptions,
) -> SecretClient {
    client_for(
        emulator,
        VAULT,
        Arc::new(ImdsCredential {
            endpoint: emulator.imds_url(),
            client_id,
            http: reqwest::Client::new(),
        }),
        retry,
    )
}

fn client_for(
    emulator: &RunningEmulator,
    vault: &str,
    credential: Arc<dyn TokenCredential>,
    retry: RetryOptions,
) -> SecretClient {
    sdk::sdk_client(emulator, vault, credential, retry)
}

fn no_retry() -> RetryOptions {
    RetryOptions::none()
}

fn value(v: &str) -> SetSecretParameters {
    SetSecretParameters {
        value: Some(v.to_owned()),
        ..SetSecretParameters::default()
    }
}

/// The service's error code the SDK read from the body.
fn code(e: &azure_core::Error) -> String {
    match e.kind() {
        azure_core::error::ErrorKind::HttpResponse { error_code, .. } => {
            error_code.clone().unwrap_or_default()
        }
        other => panic!("not an HTTP error: {other:?}"),
    }
}

/// The body of the answer an SDK error came from.
fn body(e: &azure_core::Error) -> serde_json::Value {
    sdk::error_answer(e).1
}

fn status(e: &azure_core::Error) -> u16 {
    u16::from(
        e.http_status()
            .unwrap_or_else(|| panic!("not an HTTP error: {e}")),
    )
}

#[tokio::test]
async fn set_get_versions_and_update_through_the_sdk() {
    let (emulator, _) = start_with_officer().await;
    let client = client(&emulator, None, no_retry());

    let first = client
        .set_secret("db-password", value("one").try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(first.value.as_deref(), "one");
    let first_version = first.resource_id().unwrap().version.unwrap();
    assert_eq!(first_version.len(), 32);
    for v in ["two", "three", "four", "five"] {
        client
            .set_secret("db-password", value(v).try_into().unwrap(), None)
            .await
            .unwrap();
    }

    let latest = client
        .get_secret("db-password", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(latest.value.as_deref(), "five");
    let latest_id = latest.resource_id().unwrap();
    assert_eq!(latest_id.vault_url, emulator.vault_url(VAULT));
    let pinned = client
        .get_secret(
            "db-password",
            Some(SecretClientGetSecretOptions {
                secret_version: Some(first_version.clone()),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(pinned.value.as_deref(), "one");

    // Five versions, two per page: three pages followed through nextLink.
    emulator.reset_counters();
    let versions = sdk::list_versions(&client, "db-password", 2).await;
    assert_eq!(versions.len(), 5);
    assert!(
        versions
            .iter()
            .any(|p| p.id.as_deref().unwrap().ends_with(&first_version))
    );
    assert_eq!(
        emulator.request_count(VAULT, "/secrets/db-password/versions"),
        3
    );

    let listed = sdk::list_secrets(&client).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].id.as_deref(),
        Some(format!("{}/secrets/db-password", emulator.vault_url(VAULT)).as_str())
    );

    // nbf and exp are kept and answered; an expired secret is still read, as Key Vault does.
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let window = UpdateSecretPropertiesParameters {
        secret_attributes: Some(SecretAttributes {
            not_before: Some(now - time::Duration::hours(2)),
            expires: Some(now - time::Duration::hours(1)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let updated = client
        .update_secret_properties("db-password", window.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    let attributes = updated.attributes.unwrap();
    assert_eq!(attributes.not_before, Some(now - time::Duration::hours(2)));
    assert_eq!(attributes.expires, Some(now - time::Duration::hours(1)));
    let expired = client
        .get_secret("db-password", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(expired.value.as_deref(), "five");
    assert_eq!(
        expired.attributes.unwrap().expires,
        Some(now - time::Duration::hours(1))
    );

    // Disable the latest version: get answers 403 SecretDisabled.
    let update = UpdateSecretPropertiesParameters {
        content_type: Some("text/plain".into()),
        secret_attributes: Some(SecretAttributes {
            enabled: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let updated = client
        .update_secret_properties("db-password", update.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(updated.content_type.as_deref(), Some("text/plain"));
    assert!(updated.value.is_none(), "an update answer carries no value");
    let err = client.get_secret("db-password", None).await.unwrap_err();
    assert_eq!(status(&err), 403);
    assert_eq!(code(&err), "Forbidden");
    assert!(err.to_string().contains("disabled secret"), "{err}");

    let deleted = client
        .delete_secret("db-password", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(
        deleted
            .recovery_id
            .as_deref()
            .unwrap()
            .ends_with("/deletedsecrets/db-password")
    );
    assert_eq!(
        status(&client.get_secret("db-password", None).await.unwrap_err()),
        404
    );
}

#[tokio::test]
async fn challenge_forbidden_and_not_found_as_key_vault_answers() {
    let emulator = start().await;
    let reader = emulator
        .add_user_identity(IdentitySpec {
            name: Some("reader".into()),
            ..Default::default()
        })
        .unwrap();
    let nobody = emulator
        .add_user_identity(IdentitySpec {
            name: Some("nobody".into()),
            ..Default::default()
        })
        .unwrap();
    emulator
        .assign_roles(VAULT, &reader.client_id, &["get"])
        .unwrap();
    emulator
        .set_secret(
            VAULT,
            "api-key",
            SecretSpec {
                value: "k".into(),
                ..Default::default()
            },
        )
        .unwrap();

    // The challenge, exactly.
    let http = http_client(&emulator);
    let url = format!(
        "{}/secrets/api-key?api-version=7.4",
        emulator.vault_url(VAULT)
    );
    let raw = http.get(&url).send().await.unwrap();
    assert_eq!(raw.status(), 401);
    assert_eq!(
        raw.headers()["www-authenticate"],
        format!("Bearer authorization=\"https://login.windows.net/{}\", resource=\"https://vault.azure.net\"", emulator.default_tenant()).as_str()
    );
    assert_eq!(
        raw.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    // Byte for byte what Key Vault answers (the Azure SDKs' recordings).
    assert_eq!(
        raw.text().await.unwrap(),
        r#"{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}"#
    );
    let bad_version = http
        .get(format!(
            "{}/secrets/api-key?api-version=6.0",
            emulator.vault_url(VAULT)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_version.status(), 400);
    assert_eq!(
        bad_version.text().await.unwrap(),
        r#"{"error":{"code":"BadParameter","message":"The specified version (6.0) is not recognized. Consider using the latest supported version (2026-04-01)."}}"#
    );

    let reader_client = client(&emulator, Some(reader.client_id.clone()), no_retry());
    let secret = reader_client
        .get_secret("api-key", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(secret.value.as_deref(), "k");
    let err = reader_client.get_secret("missing", None).await.unwrap_err();
    assert_eq!(status(&err), 404);
    assert_eq!(code(&err), "SecretNotFound");
    // get but not list.
    let err = reader_client
        .list_secret_properties(None)
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 403);
    // The 403 body, as Key Vault sends it for a vault with RBAC authorization.
    let token = ImdsCredential {
        endpoint: emulator.imds_url(),
        client_id: Some(reader.client_id.clone()),
        http: reqwest::Client::new(),
    }
    .get_token(&["https://vault.azure.net/.default"], None)
    .await
    .unwrap();
    let raw = http
        .get(format!(
            "{}/secrets?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .bearer_auth(token.token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 403);
    let body: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    // Listing is denied on the vault itself, with the decision reason Key Vault gives.
    assert_eq!(
        body["error"]["message"].as_str().unwrap(),
        format!(
            "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss=https://sts.windows.net/{}/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/akvvm/providers/microsoft.keyvault/vaults/{VAULT}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: {VAULT};location=local\r\n",
            reader.client_id,
            reader.object_id,
            emulator.default_tenant()
        )
    );

    let nobody_client = client(&emulator, Some(nobody.client_id.clone()), no_retry());
    assert_eq!(
        status(&nobody_client.get_secret("api-key", None).await.unwrap_err()),
        403
    );
    // A denied get names the secret (lower case) and the getSecret action.
    let token = ImdsCredential {
        endpoint: emulator.imds_url(),
        client_id: Some(nobody.client_id.clone()),
        http: reqwest::Client::new(),
    }
    .get_token(&["https://vault.azure.net/.default"], None)
    .await
    .unwrap();
    let raw = http
        .get(format!(
            "{}/secrets/API-key?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .bearer_auth(token.token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 403);
    let body: serde_json::Value = raw.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/akvvm/providers/microsoft.keyvault/vaults/myvault/secrets/api-key'\r\n"),
        "{message}"
    );

    // An expired token (signed by the emulator, so only its lifetime is wrong): Key Vault's
    // TokenExpired 401 with the challenge, so a client fetches a new token.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = emulator
        .issue_token(&reader, "https://vault.azure.net", now - 7200, now - 3600)
        .unwrap();
    let raw = http.get(&url).bearer_auth(&expired).send().await.unwrap();
    assert_eq!(raw.status(), 401);
    assert_eq!(
        raw.headers()["www-authenticate"],
        format!("Bearer authorization=\"https://login.windows.net/{}\", resource=\"https://vault.azure.net\"", emulator.default_tenant()).as_str()
    );
    assert_eq!(
        raw.text().await.unwrap(),
        r#"{"error":{"code":"Unauthorized","message":"[TokenExpired] Error validating token: 'S2S12086'."}}"#
    );
    // A token for another resource.
    let management = emulator
        .issue_token(&reader, "https://management.azure.com/", now, now + 3600)
        .unwrap();
    let raw = http
        .get(&url)
        .bearer_auth(&management)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    assert_eq!(
        raw.text().await.unwrap(),
        r#"{"error":{"code":"Unauthorized","message":"AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com/."}}"#
    );

    // A token from another tenant: 401 again after the challenge.
    let stranger = emulator
        .add_user_identity(IdentitySpec {
            tenant_id: Some("11111111-1111-1111-1111-111111111111".into()),
            ..Default::default()
        })
        .unwrap();
    emulator
        .assign_roles(VAULT, &stranger.client_id, &["get"])
        .unwrap();
    let stranger_client = client(&emulator, Some(stranger.client_id), no_retry());
    assert_eq!(
        status(
            &stranger_client
                .get_secret("api-key", None)
                .await
                .unwrap_err()
        ),
        401
    );
}

#[tokio::test]
async fn throttling_and_injected_failures_are_retried_by_the_sdk() {
    let emulator = start().await;
    let identity = emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator
        .assign_roles(VAULT, "system", &["Key Vault Secrets User"])
        .unwrap();
    emulator
        .set_secret(
            VAULT,
            "s",
            SecretSpec {
                value: "v".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let _ = identity;

    // Without retries the 429 and its Key Vault body reach the caller.
    let strict = client(&emulator, None, no_retry());
    strict.get_secret("s", None).await.unwrap();
    emulator.fail_next(VAULT, &[429]);
    let err = strict.get_secret("s", None).await.unwrap_err();
    assert_eq!(status(&err), 429);
    assert_eq!(code(&err), "Throttled");

    // With the SDK's default retry policy, a 503 and a 429 are retried.
    let patient = client(&emulator, None, RetryOptions::default());
    patient.get_secret("s", None).await.unwrap();
    emulator.reset_counters();
    emulator.fail_next(VAULT, &[503, 429]);
    let secret = patient
        .get_secret("s", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(secret.value.as_deref(), "v");
    assert_eq!(emulator.status_count(VAULT, 503), 1);
    assert_eq!(emulator.status_count(VAULT, 429), 1);
    assert_eq!(emulator.status_count(VAULT, 200), 1);

    // Rate throttling: two requests per minute pass, the third gets 429 with Retry-After.
    emulator.throttle(VAULT, 2, std::time::Duration::from_secs(60), Some(7));
    strict.get_secret("s", None).await.unwrap();
    strict.get_secret("s", None).await.unwrap();
    assert_eq!(
        status(&strict.get_secret("s", None).await.unwrap_err()),
        429
    );
    let raw = http_client(&emulator)
        .get(format!(
            "{}/secrets/s?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 429);
    assert_eq!(raw.headers()["retry-after"], "7");
    emulator.clear_faults(VAULT);

    // A dropped connection is an error for the client, and the next request goes through.
    emulator.drop_next(VAULT, 1);
    let http = http_client(&emulator);
    let url = format!("{}/secrets/s?api-version=7.4", emulator.vault_url(VAULT));
    assert!(http.get(&url).send().await.is_err());
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_scope_form_of_the_challenge_works_with_the_sdk() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let spec = akvvm_emulator::VaultSpec {
        name: "scopevault".into(),
        challenge: akvvm_emulator::state::ChallengeForm::Scope,
        ..Default::default()
    };
    emulator.create_vault_from_spec(&spec).unwrap();
    emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator
        .assign_roles("scopevault", "system", &["get"])
        .unwrap();
    emulator
        .set_secret(
            "scopevault",
            "s",
            SecretSpec {
                value: "v".into(),
                ..Default::default()
            },
        )
        .unwrap();

    let raw = http_client(&emulator)
        .get(format!(
            "{}/secrets/s?api-version=7.6",
            emulator.vault_url("scopevault")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw.headers()["www-authenticate"],
        format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", scope=\"https://vault.azure.net/.default\"",
            emulator.default_tenant()
        )
        .as_str()
    );
    let credential = Arc::new(ImdsCredential {
        endpoint: emulator.imds_url(),
        client_id: None,
        http: reqwest::Client::new(),
    });
    let client = client_for(&emulator, "scopevault", credential, no_retry());
    let secret = client
        .get_secret("s", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(secret.value.as_deref(), "v");
}

/// List answers as Key Vault writes them: `nextLink` names the port and carries `maxresults`
/// only when the request did; a certificate's secret is listed `managed` but without the `kid`
/// that a get answers.
#[tokio::test]
async fn list_answers_have_key_vault_s_shape() {
    let (emulator, identity) = start_with_officer().await;
    for i in 0..26 {
        emulator
            .set_secret(
                VAULT,
                &format!("s{i:02}"),
                SecretSpec {
                    value: "v".into(),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    emulator
        .create_certificate(
            VAULT,
            "web",
            &serde_json::json!({"x509_props": {"subject": "CN=web"}}),
        )
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = emulator
        .issue_token(&identity, "https://vault.azure.net", now, now + 3600)
        .unwrap();
    let http = http_client(&emulator);
    let base = emulator.vault_url(VAULT);
    let get = |url: String| {
        let request = http.get(url).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };

    // 27 secrets: a full page of 25 without maxresults, and a link without it.
    let page = get(format!("{base}/secrets?api-version=7.4")).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 25);
    let next = page["nextLink"].as_str().unwrap();
    let prefix = format!("{base}/secrets?api-version=7.4&$skiptoken=");
    assert!(next.starts_with(&prefix), "{next}");
    assert!(!next.contains("maxresults"), "{next}");
    let last = get(next.to_owned()).await;
    assert_eq!(last["value"].as_array().unwrap().len(), 2);
    assert!(last["nextLink"].is_null());

    // With maxresults: pages of that size, the link carries it on.
    let page = get(format!("{base}/secrets?api-version=7.4&maxresults=10")).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 10);
    let next = page["nextLink"].as_str().unwrap();
    assert!(next.ends_with("&maxresults=10"), "{next}");
    assert_eq!(
        get(next.to_owned()).await["value"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    // The certificate's secret: managed in the list, with its kid only when read.
    let all: Vec<serde_json::Value> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .chain(last["value"].as_array().unwrap())
        .cloned()
        .collect();
    let web = all
        .iter()
        .find(|item| item["id"] == format!("{base}/secrets/web").as_str())
        .expect("the certificate's secret is listed");
    assert_eq!(web["managed"], true);
    assert_eq!(web["contentType"], "application/x-pkcs12");
    assert!(web.get("kid").is_none(), "{web}");
    let read = get(format!("{base}/secrets/web?api-version=7.4")).await;
    assert!(
        read["kid"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{base}/keys/web/")),
        "{}",
        read["kid"]
    );
}

#[tokio::test]
async fn backup_and_restore_a_secret_through_the_sdk() {
    let (emulator, _) = start_with_officer().await;
    let client = client(&emulator, None, no_retry());
    let mut current = None;
    for v in ["one", "two"] {
        current = client
            .set_secret("db", value(v).try_into().unwrap(), None)
            .await
            .unwrap()
            .into_model()
            .unwrap()
            .id;
    }
    let versions_before = sdk::list_versions(&client, "db", 25).await;

    let blob = client
        .backup_secret("db", None)
        .await
        .unwrap()
        .into_model()
        .unwrap()
        .value
        .unwrap();
    assert!(!blob.is_empty());
    let restore = |blob: Vec<u8>| {
        RestoreSecretParameters {
            secret_backup: Some(blob),
        }
        .try_into()
        .unwrap()
    };

    // Onto a name in use: 409, and onto a name kept deleted: Key Vault's 409 for that.
    let err = client
        .restore_secret(restore(blob.clone()), None)
        .await
        .unwrap_err();
    assert_eq!((status(&err), code(&err)), (409, "Conflict".to_owned()));
    // Key Vault's words, naming the backed-up version (azure-sdk-for-python recording
    // test_secrets_client.pyTestSecretClienttest_backup_restore[7.3].json).
    let message = body(&err)["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with(&format!(
            "There was a conflict restoring the secret '{}'. This can happen if either: a second secret with the same name was created after the first secret was deleted;",
            current.as_deref().unwrap()
        )),
        "{message}"
    );
    client.delete_secret("db", None).await.unwrap();
    let err = client
        .restore_secret(restore(blob.clone()), None)
        .await
        .unwrap_err();
    assert_eq!(status(&err), 409);
    assert_eq!(
        body(&err)["error"]["innererror"]["code"],
        "ObjectIsDeletedButRecoverable"
    );

    // Once purged, the backup brings the secret back with every version.
    client.purge_deleted_secret("db", None).await.unwrap();
    let restored = client
        .restore_secret(restore(blob), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(
        restored.value.is_none(),
        "a restore answer carries no value"
    );
    assert_eq!(restored.id, current);
    let secret = client
        .get_secret("db", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(secret.value.as_deref(), "two");
    let versions_after = sdk::list_versions(&client, "db", 25).await;
    let ids = |list: &[azure_security_keyvault_secrets::models::SecretProperties]| {
        list.iter().map(|p| p.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&versions_after), ids(&versions_before));

    // A blob the vault did not make: Key Vault's 400 (azure-sdk-for-js
    // recording_can_restore_a_secret_malformed_backup_bytes.json).
    let err = client
        .restore_secret(restore(vec![0; 64]), None)
        .await
        .unwrap_err();
    assert_eq!(status(&err), 400);
    assert_eq!(
        body(&err),
        serde_json::json!({"error": {"code": "Malformed backup blob", "message": "Backup blob contains invalid or corrupt version."}})
    );
    // The backup of a name that does not exist: SecretNotFound (recording
    // recording_can_backup_a_secret_non_existing.json).
    let err = client.backup_secret("never-set", None).await.unwrap_err();
    assert_eq!(
        (status(&err), code(&err)),
        (404, "SecretNotFound".to_owned())
    );
}
