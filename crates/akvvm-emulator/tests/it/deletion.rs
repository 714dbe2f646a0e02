//! Soft delete and recovery as Key Vault does them: with a deletion delay set, a delete or a
//! recovery completes later (meanwhile `/deleted...` or the recovered object reads as not found,
//! and writes to a name being deleted are `409 ObjectIsBeingDeleted`), through raw HTTP and the
//! official Rust SDK; recover and purge as permissions of their own in Key Vault's 403s; and
//! certificate backup and restore.

use std::sync::Arc;
use std::time::{Duration, Instant};

use akvvm_emulator::{AuthorizationModel, RunningEmulator, SecretSpec};
use akvvm_testkit::sdk::{
    self, ImdsCredential, error_answer, imds_request, json_answer, start_with_roles,
};
use azure_core::http::RetryOptions;
use serde_json::{Value, json};

const VAULT: &str = "delvault";
const DELAY: Duration = Duration::from_millis(1500);

/// The local vault with the system identity holding `roles` on [`VAULT`] (of `model`).
async fn start(model: AuthorizationModel, roles: &[&str]) -> RunningEmulator {
    let (emulator, _) = start_with_roles(VAULT, model, roles).await;
    emulator
        .set_secret(
            VAULT,
            "db",
            SecretSpec {
                value: "s3cret".into(),
                ..SecretSpec::default()
            },
        )
        .unwrap();
    emulator
}

/// Sends `method path` (api-version 7.4) with the system identity's token and `body`; the status
/// and the JSON answer (null when empty).
async fn call(
    emulator: &RunningEmulator,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (_, token) = json_answer(imds_request(emulator, "https://vault.azure.net")).await;
    let mut request = sdk::http_client(emulator, &[VAULT])
        .request(
            method,
            format!("{}{path}?api-version=7.4", emulator.vault_url(VAULT)),
        )
        .bearer_auth(token["access_token"].as_str().unwrap());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

/// Polls `GET path` until it answers 200, as the SDKs' pollers do; the time it took.
async fn wait_for(emulator: &RunningEmulator, path: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (status, _) = call(emulator, reqwest::Method::GET, path, None).await;
        if status == 200 {
            return started.elapsed();
        }
        assert_eq!(status, 404, "GET {path} while waiting");
        assert!(
            started.elapsed() < DELAY * 4,
            "GET {path} never answered 200"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn being_deleted(kind: &str) -> (u16, Value) {
    (
        409,
        json!({"error": {"code": "Conflict", "message": format!("{kind} is currently being deleted."), "innererror": {"code": "ObjectIsBeingDeleted"}}}),
    )
}

/// While the delete of the `kind` (`Secret`, `Certificate`) `name` is in progress, it is neither
/// found nor listed among the deleted ones.
async fn assert_not_deleted_yet(emulator: &RunningEmulator, kind: &str, name: &str) {
    let deleted = format!("/deleted{}s", kind.to_ascii_lowercase());
    let answer = call(
        emulator,
        reqwest::Method::GET,
        &format!("{deleted}/{name}"),
        None,
    )
    .await;
    let message = format!("Deleted {kind} not found: {name}");
    let expected = json!({"error": {"code": format!("{kind}NotFound"), "message": message}});
    assert_eq!(answer, (404, expected));
    let listed = call(emulator, reqwest::Method::GET, &deleted, None).await;
    assert_eq!(listed.1["value"], json!([]));
}

#[tokio::test]
async fn a_delayed_secret_delete_and_recovery_complete_later() {
    use reqwest::Method;
    let emulator = start(AuthorizationModel::Rbac, &["Key Vault Secrets Officer"]).await;
    emulator.set_deletion_delay(VAULT, DELAY);

    let (status, deleted) = call(&emulator, Method::DELETE, "/secrets/db", None).await;
    assert_eq!(status, 200);
    assert!(
        deleted["recoveryId"]
            .as_str()
            .unwrap()
            .ends_with("/deletedsecrets/db")
    );
    // In progress: not yet among the deleted secrets, and the name cannot be written, recovered
    // or purged.
    assert_not_deleted_yet(&emulator, "Secret", "db").await;
    assert_eq!(
        call(
            &emulator,
            Method::PUT,
            "/secrets/db",
            Some(json!({"value": "new"}))
        )
        .await,
        being_deleted("Secret")
    );
    assert_eq!(
        call(&emulator, Method::POST, "/deletedsecrets/db/recover", None).await,
        being_deleted("Secret")
    );
    assert_eq!(
        call(&emulator, Method::DELETE, "/deletedsecrets/db", None).await,
        being_deleted("Secret")
    );
    assert_eq!(
        call(&emulator, Method::GET, "/secrets/db", None).await.0,
        404
    );

    // Completed: deleted but recoverable.
    let waited = wait_for(&emulator, "/deletedsecrets/db").await;
    assert!(waited >= DELAY / 2, "the delete completed after {waited:?}");
    let (status, conflict) = call(
        &emulator,
        Method::PUT,
        "/secrets/db",
        Some(json!({"value": "new"})),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        conflict["error"]["innererror"]["code"],
        "ObjectIsDeletedButRecoverable"
    );

    // A recovery: the secret reads as not found until it completes, then with its value.
    let (status, recovered) =
        call(&emulator, Method::POST, "/deletedsecrets/db/recover", None).await;
    assert_eq!(status, 200);
    assert!(recovered["id"].as_str().unwrap().contains("/secrets/db/"));
    let (status, body) = call(&emulator, Method::GET, "/secrets/db", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "SecretNotFound");
    assert_eq!(
        call(&emulator, Method::GET, "/secrets", None).await.1["value"],
        json!([])
    );
    assert_eq!(
        call(&emulator, Method::GET, "/deletedsecrets/db", None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&emulator, Method::POST, "/secrets/db/backup", None)
            .await
            .0,
        404
    );
    wait_for(&emulator, "/secrets/db").await;
    let (_, secret) = call(&emulator, Method::GET, "/secrets/db", None).await;
    sdk::assert_value(secret["value"].as_str(), "s3cret");

    // With no delay (the default), both complete at once.
    emulator.set_deletion_delay(VAULT, Duration::ZERO);
    assert_eq!(
        call(&emulator, Method::DELETE, "/secrets/db", None).await.0,
        200
    );
    assert_eq!(
        call(&emulator, Method::GET, "/deletedsecrets/db", None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_delayed_certificate_delete_and_recovery_complete_later() {
    use reqwest::Method;
    let emulator = start(
        AuthorizationModel::Rbac,
        &["Key Vault Certificates Officer"],
    )
    .await;
    emulator
        .create_certificate(VAULT, "web", &Value::Null)
        .unwrap();
    emulator.set_deletion_delay(VAULT, DELAY);

    assert_eq!(
        call(&emulator, Method::DELETE, "/certificates/web", None)
            .await
            .0,
        200
    );
    assert_not_deleted_yet(&emulator, "Certificate", "web").await;
    assert_eq!(
        call(
            &emulator,
            Method::POST,
            "/certificates/web/create",
            Some(json!({}))
        )
        .await,
        being_deleted("Certificate")
    );
    wait_for(&emulator, "/deletedcertificates/web").await;

    let (status, _) = call(
        &emulator,
        Method::POST,
        "/deletedcertificates/web/recover",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        call(&emulator, Method::GET, "/certificates/web", None)
            .await
            .0,
        404
    );
    wait_for(&emulator, "/certificates/web").await;
}

#[tokio::test]
async fn the_rust_sdk_waits_out_a_delayed_delete_and_recovery() {
    let emulator = start(AuthorizationModel::Rbac, &["Key Vault Secrets Officer"]).await;
    emulator.set_deletion_delay(VAULT, DELAY);
    let client = sdk::sdk_client(
        &emulator,
        VAULT,
        Arc::new(ImdsCredential {
            endpoint: emulator.imds_url(),
            client_id: None,
            http: reqwest::Client::new(),
        }),
        RetryOptions::none(),
    );
    client.delete_secret("db", None).await.unwrap();
    let err = client.get_deleted_secret("db", None).await.unwrap_err();
    assert_eq!(error_answer(&err).0, 404);
    let set = client
        .set_secret(
            "db",
            azure_security_keyvault_secrets::models::SetSecretParameters {
                value: Some("new".into()),
                ..Default::default()
            }
            .try_into()
            .unwrap(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(error_answer(&set), being_deleted("Secret"));

    let started = Instant::now();
    while client.get_deleted_secret("db", None).await.is_err() {
        assert!(started.elapsed() < DELAY * 4, "the delete never completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.recover_deleted_secret("db", None).await.unwrap();
    let err = client.get_secret("db", None).await.unwrap_err();
    assert_eq!(error_answer(&err).0, 404);
    let started = Instant::now();
    let secret = loop {
        match client.get_secret("db", None).await {
            Ok(secret) => break secret.into_model().unwrap(),
            Err(e) => assert_eq!(error_answer(&e).0, 404),
        }
        assert!(
            started.elapsed() < DELAY * 4,
            "the recovery never completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    sdk::assert_value(secret.value.as_deref(), "s3cret");
}

#[tokio::test]
async fn recover_and_purge_are_permissions_of_their_own_in_rbac_403s() {
    use reqwest::Method;
    // What recovering and purging needed before they had permissions of their own.
    let emulator = start(
        AuthorizationModel::Rbac,
        &[
            "secrets/set",
            "secrets/delete",
            "certificates/create",
            "certificates/delete",
        ],
    )
    .await;
    emulator
        .create_certificate(VAULT, "web", &Value::Null)
        .unwrap();
    assert_eq!(
        call(&emulator, Method::DELETE, "/secrets/db", None).await.0,
        200
    );
    assert_eq!(
        call(&emulator, Method::DELETE, "/certificates/web", None)
            .await
            .0,
        200
    );
    for (method, path, action) in [
        (
            Method::POST,
            "/deletedsecrets/db/recover",
            "Microsoft.KeyVault/vaults/secrets/recover/action",
        ),
        (
            Method::DELETE,
            "/deletedsecrets/db",
            "Microsoft.KeyVault/vaults/secrets/purge/action",
        ),
        (
            Method::POST,
            "/deletedcertificates/web/recover",
            "Microsoft.KeyVault/vaults/certificates/recover/action",
        ),
        (
            Method::DELETE,
            "/deletedcertificates/web",
            "Microsoft.KeyVault/vaults/certificates/purge/action",
        ),
    ] {
        let (status, body) = call(&emulator, method.clone(), path, None).await;
        assert_eq!(status, 403, "{method} {path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("Action: '{action}'")),
            "{method} {path}: {message}"
        );
        assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    }
    // Granted, they pass.
    emulator
        .assign_roles(VAULT, "system", &["secrets/recover", "certificates/purge"])
        .unwrap();
    assert_eq!(
        call(&emulator, Method::POST, "/deletedsecrets/db/recover", None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&emulator, Method::DELETE, "/deletedcertificates/web", None)
            .await
            .0,
        204
    );
}

#[tokio::test]
async fn recover_and_purge_are_permissions_of_their_own_in_access_policy_403s() {
    use reqwest::Method;
    let emulator = start(
        AuthorizationModel::AccessPolicy,
        &["secrets/set", "secrets/delete"],
    )
    .await;
    assert_eq!(
        call(&emulator, Method::DELETE, "/secrets/db", None).await.0,
        200
    );
    for (method, path, words) in [
        (
            Method::POST,
            "/deletedsecrets/db/recover",
            "does not have secrets recover permission",
        ),
        (
            Method::DELETE,
            "/deletedsecrets/db",
            "does not have secrets purge permission",
        ),
        (
            Method::POST,
            "/deletedcertificates/web/recover",
            "does not have certificates recover permission",
        ),
        (
            Method::DELETE,
            "/deletedcertificates/web",
            "does not have certificates purge permission",
        ),
    ] {
        let (status, body) = call(&emulator, method.clone(), path, None).await;
        assert_eq!(status, 403, "{method} {path}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{method} {path}: {message}");
        assert_eq!(body["error"]["innererror"]["code"], "AccessDenied");
    }
}

#[tokio::test]
async fn a_certificate_backup_restores_with_its_secret_once_the_name_is_free() {
    use reqwest::Method;
    let emulator = start(AuthorizationModel::Rbac, &["Key Vault Administrator"]).await;
    emulator
        .create_certificate(VAULT, "web", &Value::Null)
        .unwrap();
    let (_, original) = call(&emulator, Method::GET, "/certificates/web", None).await;
    let (status, backup) = call(&emulator, Method::POST, "/certificates/web/backup", None).await;
    assert_eq!(status, 200);
    let blob = backup["value"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&emulator, Method::POST, "/certificates/nope/backup", None)
            .await
            .1["error"]["code"],
        "CertificateNotFound"
    );

    // In use, then kept deleted: both 409.
    let restore = || json!({"value": blob.clone()});
    let (status, _) = call(
        &emulator,
        Method::POST,
        "/certificates/restore",
        Some(restore()),
    )
    .await;
    assert_eq!(status, 409);
    call(&emulator, Method::DELETE, "/certificates/web", None).await;
    let (status, kept) = call(
        &emulator,
        Method::POST,
        "/certificates/restore",
        Some(restore()),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        kept["error"]["innererror"]["code"],
        "ObjectIsDeletedButRecoverable"
    );
    call(&emulator, Method::DELETE, "/deletedcertificates/web", None).await;

    let (status, restored) = call(
        &emulator,
        Method::POST,
        "/certificates/restore",
        Some(restore()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(restored["id"], original["id"]);
    assert_eq!(restored["x5t"], original["x5t"]);
    assert_eq!(restored["policy"], original["policy"]);
    let (status, secret) = call(&emulator, Method::GET, "/secrets/web", None).await;
    assert_eq!(status, 200);
    assert_eq!(secret["managed"], true);

    assert_eq!(
        call(
            &emulator,
            Method::POST,
            "/certificates/restore",
            Some(json!({"value": "AAAA"}))
        )
        .await,
        (
            400,
            json!({"error": {"code": "Malformed backup blob", "message": "Backup blob contains invalid or corrupt version."}})
        )
    );
    // Backup and restore are permissions of their own.
    let limited = start(AuthorizationModel::Rbac, &["certificates/get"]).await;
    let (status, body) = call(&limited, Method::POST, "/certificates/web/backup", None).await;
    assert_eq!(status, 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Action: 'Microsoft.KeyVault/vaults/certificates/backup/action'")
    );
}
