//! The certificate operation (`/certificates/{name}/pending`) as Key Vault runs it, checked
//! against the azure-sdk-for-js recording
//! `certificates_client__create_read_update_and_delete/recording_can_read_cancel_and_delete_a_certificates_operation.js`
//! and the REST spec (`CertificateOperation`): the 202 of `POST .../create` with `Location`
//! (`api-version` and `request_id`) and `Retry-After: 10`, a PKCS#10 CSR for the certificate's key
//! with the policy's subject, one `request_id` across polls, `inProgress` for a configured number
//! of polls then `completed` with `target`, the `pending` link on the bundle while the operation
//! exists, cancel (`PATCH`) and delete, `404 PendingCertificateNotFound` for an imported
//! certificate, and issuer `Unknown` waiting for `POST .../pending/merge` (the REST spec's
//! `MergeCertificate`: `x5c`, 201 with the bundle).

use akvvm_emulator::{AuthorizationModel, RunningEmulator};
use akvvm_testkit::sdk::{http_client as http, imds_request, json_answer, start_with_roles};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use der::{Decode, Encode};
use serde_json::{Value, json};

const VAULT: &str = "pending";

/// The emulator, an HTTP client for the vault and an IMDS token of an identity that may manage
/// certificates.
async fn start() -> (RunningEmulator, reqwest::Client, String) {
    let (emulator, _) = start_with_roles(
        VAULT,
        AuthorizationModel::Rbac,
        &["Key Vault Certificates Officer"],
    )
    .await;
    let (_, body) = json_answer(imds_request(&emulator, "https://vault.azure.net")).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let client = http(&emulator, &[VAULT]);
    (emulator, client, token)
}

fn url(emulator: &RunningEmulator, path: &str) -> String {
    format!("{}{path}?api-version=7.4", emulator.vault_url(VAULT))
}

async fn create(
    emulator: &RunningEmulator,
    client: &reqwest::Client,
    token: &str,
    name: &str,
) -> reqwest::Response {
    let policy = json!({"issuer": {"name": "Self"}, "x509_props": {"subject": "CN=web.example", "validity_months": 12}, "key_props": {"kty": "RSA", "key_size": 2048}});
    client
        .post(url(emulator, &format!("/certificates/{name}/create")))
        .bearer_auth(token)
        .json(&json!({"policy": policy}))
        .send()
        .await
        .unwrap()
}

/// `GET` the operation at `pending`.
async fn get_operation(client: &reqwest::Client, pending: &str, token: &str) -> reqwest::Response {
    let request = client.get(pending).bearer_auth(token);
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn create_answers_a_csr_and_completes_after_the_configured_polls() {
    let (emulator, client, token) = start().await;
    emulator.pending_polls(VAULT, 2);
    let response = create(&emulator, &client, &token, "web").await;
    assert_eq!(response.status(), 202);
    let retry_after = header(&response, "retry-after");
    let location = header(&response, "location").unwrap();
    let created: Value = response.json().await.unwrap();
    assert_eq!(retry_after.as_deref(), Some("10"));
    let request_id = created["request_id"].as_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!(
            "{}/certificates/web/pending?api-version=7.4&request_id={request_id}",
            emulator.vault_url(VAULT)
        )
    );
    assert_eq!(created["status"], "inProgress");
    assert_eq!(created["cancellation_requested"], false);
    assert_eq!(created["issuer"], json!({"name": "Self"}));
    assert!(created["status_details"].is_string(), "{created}");

    // The CSR is PKCS#10 with the policy's subject.
    let csr_der = STANDARD.decode(created["csr"].as_str().unwrap()).unwrap();
    let csr = x509_cert::request::CertReq::from_der(&csr_der).unwrap();
    assert_eq!(csr.info.subject.to_string(), "CN=web.example");

    // Two polls in progress (with Retry-After), then completed with the target; one request_id.
    let pending = url(&emulator, "/certificates/web/pending");
    for poll in 0..2 {
        let response = get_operation(&client, &pending, &token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "retry-after").as_deref(), Some("10"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "inProgress", "poll {poll}: {body}");
        assert_eq!(body["request_id"], request_id.as_str());
        assert_eq!(body["csr"], created["csr"]);
        assert!(body.get("target").is_none());
    }
    let response = get_operation(&client, &pending, &token).await;
    assert_eq!(header(&response, "retry-after"), None);
    let done: Value = response.json().await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_id"], request_id.as_str());
    assert_eq!(
        done["target"],
        format!("{}/certificates/web", emulator.vault_url(VAULT))
    );
    assert!(done.get("status_details").is_none());

    // The bundle links the operation, and the CSR's key is the certificate's.
    let (status, bundle) = json_answer(
        client
            .get(url(&emulator, "/certificates/web"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        bundle["pending"],
        json!({"id": format!("{}/certificates/web/pending", emulator.vault_url(VAULT))})
    );
    let cer = STANDARD.decode(bundle["cer"].as_str().unwrap()).unwrap();
    let cert = x509_cert::Certificate::from_der(&cer).unwrap();
    assert_eq!(
        cert.tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap(),
        csr.info.public_key.to_der().unwrap()
    );
}

#[tokio::test]
async fn without_configured_polls_the_first_poll_completes() {
    let (emulator, client, token) = start().await;
    assert_eq!(
        create(&emulator, &client, &token, "quick").await.status(),
        202
    );
    let (status, body) = json_answer(
        client
            .get(url(&emulator, "/certificates/quick/pending"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("completed")));
}

#[tokio::test]
async fn an_operation_is_cancelled_and_deleted() {
    let (emulator, client, token) = start().await;
    emulator.pending_polls(VAULT, 5);
    let created: Value = create(&emulator, &client, &token, "web")
        .await
        .json()
        .await
        .unwrap();
    let pending = url(&emulator, "/certificates/web/pending");

    // The recording: the PATCH answers `inProgress` with `cancellation_requested`.
    let (status, cancelled) = json_answer(
        client
            .patch(&pending)
            .bearer_auth(&token)
            .json(&json!({"cancellation_requested": true})),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["cancellation_requested"], true);
    assert_eq!(cancelled["status"], "inProgress");
    assert_eq!(cancelled["request_id"], created["request_id"]);
    let (_, read) = json_answer(client.get(&pending).bearer_auth(&token)).await;
    assert_eq!(read["status"], "cancelled", "{read}");

    // DELETE answers the operation; afterwards it is gone and the bundle has no link.
    let (status, deleted) = json_answer(client.delete(&pending).bearer_auth(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["request_id"], created["request_id"]);
    assert_eq!(deleted["cancellation_requested"], true);
    let (status, gone) = json_answer(client.get(&pending).bearer_auth(&token)).await;
    assert_eq!(status, 404);
    assert_eq!(
        gone,
        json!({"error": {"code": "PendingCertificateNotFound", "message": "Pending certificate not found: web"}})
    );
    let (_, bundle) = json_answer(
        client
            .get(url(&emulator, "/certificates/web"))
            .bearer_auth(&token),
    )
    .await;
    assert!(bundle.get("pending").is_none(), "{bundle}");
    assert!(bundle["cer"].is_string());
}

#[tokio::test]
async fn an_imported_certificate_has_no_operation() {
    let (emulator, client, token) = start().await;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["imported.example".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    let (status, bundle) = json_answer(
        client
            .post(url(&emulator, "/certificates/imported/import"))
            .bearer_auth(&token)
            .json(&json!({"value": pem, "policy": {"secret_props": {"contentType": "application/x-pem-file"}}})),
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    assert!(bundle.get("pending").is_none(), "{bundle}");
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let (status, body) = json_answer(
            client
                .request(method, url(&emulator, "/certificates/imported/pending"))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(status, 404);
        assert_eq!(
            body,
            json!({"error": {"code": "PendingCertificateNotFound", "message": "Pending certificate not found: imported"}})
        );
    }
}

/// A CA that signs the CSR of an operation: (certificate DER, CA DER).
fn sign_csr(csr_der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let csr = x509_cert::request::CertReq::from_der(csr_der).unwrap();
    let key = CsrKey(csr.info.public_key.subject_public_key.raw_bytes().to_vec());
    let mut params = rcgen::CertificateParams::new(vec!["merged.example".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "merged.example");
    let leaf = params.signed_by(&key, &issuer).unwrap();
    (leaf.der().to_vec(), ca.der().to_vec())
}

/// The RSA public key of a CSR, for rcgen to certify.
struct CsrKey(Vec<u8>);

impl rcgen::PublicKeyData for CsrKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

#[tokio::test]
async fn issuer_unknown_waits_for_the_merge() {
    let (emulator, client, token) = start().await;
    let policy =
        json!({"issuer": {"name": "Unknown"}, "x509_props": {"subject": "CN=merged.example"}});
    let response = client
        .post(url(&emulator, "/certificates/merged/create"))
        .bearer_auth(&token)
        .json(&json!({"policy": policy}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["issuer"], json!({"name": "Unknown"}));
    let pending = url(&emulator, "/certificates/merged/pending");
    for _ in 0..3 {
        let (_, body) = json_answer(client.get(&pending).bearer_auth(&token)).await;
        assert_eq!(body["status"], "inProgress", "{body}");
        assert_eq!(body["request_id"], created["request_id"]);
    }
    let merge = url(&emulator, "/certificates/merged/pending/merge");

    // A certificate for another key is refused.
    let other = rcgen::KeyPair::generate().unwrap();
    let stranger = rcgen::CertificateParams::new(vec!["x".to_owned()])
        .unwrap()
        .self_signed(&other)
        .unwrap();
    let (status, refused) = json_answer(
        client
            .post(&merge)
            .bearer_auth(&token)
            .json(&json!({"x5c": [STANDARD.encode(stranger.der())]})),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "BadParameter");

    let csr = STANDARD.decode(created["csr"].as_str().unwrap()).unwrap();
    let (leaf, ca) = sign_csr(&csr);
    let (status, bundle) = json_answer(
        client
            .post(&merge)
            .bearer_auth(&token)
            .json(&json!({"x5c": [STANDARD.encode(&leaf), STANDARD.encode(&ca)]})),
    )
    .await;
    assert_eq!(status, 201, "{bundle}");
    assert_eq!(bundle["cer"], STANDARD.encode(&leaf));
    let (_, done) = json_answer(client.get(&pending).bearer_auth(&token)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_id"], created["request_id"]);
    let (status, read) = json_answer(
        client
            .get(url(&emulator, "/certificates/merged"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!((status, &read["cer"]), (200, &bundle["cer"]));

    // Nothing waits for a merge any more.
    let (status, again) = json_answer(
        client
            .post(&merge)
            .bearer_auth(&token)
            .json(&json!({"x5c": [STANDARD.encode(&leaf)]})),
    )
    .await;
    assert_eq!(status, 404, "{again}");
    assert_eq!(again["error"]["code"], "PendingCertificateNotFound");
}
