//! The bootstrap certificate credential: finding the certificate on disk, and the JWT client
//! assertion sent to a real Entra token endpoint stand-in over https on 127.0.0.1:0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use akvvm::http::{HostOverride, HttpOptions};
use akvvm::identity::{
    AssertionAlgorithm, BootstrapCertificate, BootstrapCertificateCredential, BootstrapOptions,
    CertificateSource, IdentityError, KEY_VAULT_SCOPE, TenantSlot, find_bootstrap_certificate,
};
use akvvm_testkit::servers::{
    Counter, TestCa, ec_client_cert, fast_retry, rsa_client_cert, serve_https,
};
use axum::Router;
use axum::extract::{Path as AxumPath, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use azure_core::credentials::TokenCredential;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::{Value, json};
use sha1::Digest;
use time::{Duration, OffsetDateTime};
use url::Url;
use x509_cert::der::{Decode, Encode};

fn days(n: i64) -> Duration {
    Duration::days(n)
}

#[test]
fn newest_valid_certificate_with_the_subject_and_key_is_chosen() {
    let now = OffsetDateTime::now_utc();
    let store = tempfile::tempdir().unwrap();
    let waagent = tempfile::tempdir().unwrap();

    // In the store: an older valid one (full-chain PEM with key, akvvm's layout).
    let (old_cert, old_key) =
        rsa_client_cert("bootstrap.contoso.com", now - days(30), now + days(30));
    std::fs::write(
        store.path().join("vault.boot.v1"),
        format!("{old_cert}{old_key}"),
    )
    .unwrap();
    // The guest agent's pairs: the newest valid one, an expired one, and another subject.
    let (new_cert, new_key) =
        rsa_client_cert("bootstrap.contoso.com", now - days(1), now + days(60));
    std::fs::write(waagent.path().join("AAAA.crt"), &new_cert).unwrap();
    std::fs::write(waagent.path().join("AAAA.prv"), &new_key).unwrap();
    let (expired_cert, expired_key) =
        rsa_client_cert("bootstrap.contoso.com", now - days(10), now - days(2));
    std::fs::write(waagent.path().join("BBBB.crt"), &expired_cert).unwrap();
    std::fs::write(waagent.path().join("BBBB.prv"), &expired_key).unwrap();
    let (other_cert, other_key) = rsa_client_cert("other", now - days(1), now + days(1));
    std::fs::write(waagent.path().join("CCCC.crt"), &other_cert).unwrap();
    std::fs::write(waagent.path().join("CCCC.prv"), &other_key).unwrap();
    // A certificate without its key is not a candidate.
    let (lonely_cert, _) = rsa_client_cert("bootstrap.contoso.com", now - days(1), now + days(90));
    std::fs::write(waagent.path().join("DDDD.crt"), &lonely_cert).unwrap();

    let sources = [
        CertificateSource::Store(store.path().to_owned()),
        CertificateSource::Pairs(waagent.path().to_owned()),
    ];
    let found = find_bootstrap_certificate("bootstrap.contoso.com", &sources, now).unwrap();
    assert_eq!(found.path, waagent.path().join("AAAA.crt"));
    assert_eq!(found.subject_cn, "bootstrap.contoso.com");
    let der = x509_cert::Certificate::from_der(found.certificate_der())
        .unwrap()
        .to_der()
        .unwrap();
    let expected_thumbprint: String = sha1::Sha1::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(found.thumbprint, expected_thumbprint);

    // "CN=" in the setting is tolerated.
    let again = find_bootstrap_certificate("CN=bootstrap.contoso.com", &sources, now).unwrap();
    assert_eq!(again.thumbprint, found.thumbprint);

    // Without the newest, the store's older one is chosen.
    std::fs::remove_file(waagent.path().join("AAAA.prv")).unwrap();
    let fallback = find_bootstrap_certificate("bootstrap.contoso.com", &sources, now).unwrap();
    assert_eq!(fallback.path, store.path().join("vault.boot.v1"));
}

#[test]
fn missing_or_unusable_certificates_are_explained() {
    let now = OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().unwrap();
    let (expired_cert, expired_key) = rsa_client_cert("boot", now - days(10), now - days(2));
    std::fs::write(dir.path().join("EEEE.crt"), &expired_cert).unwrap();
    std::fs::write(dir.path().join("EEEE.prv"), &expired_key).unwrap();
    let sources = [CertificateSource::Pairs(dir.path().to_owned())];
    let err = find_bootstrap_certificate("boot", &sources, now).unwrap_err();
    assert_eq!(err.code(), "identity.bootstrap_certificate_not_found");
    let message = err.to_string();
    assert!(message.contains("CN=boot"), "{message}");
    assert!(message.contains("EEEE.crt: valid from"), "{message}");
    assert!(
        message.contains("clientCertificateSubjectName"),
        "{message}"
    );

    let err = find_bootstrap_certificate("nobody", &sources, now).unwrap_err();
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn ec_bootstrap_key_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ec_client_cert("boot-ec");
    std::fs::write(dir.path().join("FFFF.crt"), &cert).unwrap();
    std::fs::write(dir.path().join("FFFF.prv"), &key).unwrap();
    let err = find_bootstrap_certificate(
        "boot-ec",
        &[CertificateSource::Pairs(dir.path().to_owned())],
        OffsetDateTime::now_utc(),
    )
    .unwrap_err();
    assert!(matches!(err, IdentityError::NonRsaKey { .. }), "{err}");
    assert!(err.to_string().contains("need an RSA key"), "{err}");
}

/// (tenant, form fields) of each token request.
type SeenForms = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

#[derive(Clone, Default)]
struct Entra {
    calls: Counter,
    forms: SeenForms,
}

async fn token_endpoint(
    State(entra): State<Entra>,
    AxumPath(tenant): AxumPath<String>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    entra.calls.bump();
    entra
        .forms
        .lock()
        .unwrap()
        .push((tenant.clone(), form.clone()));
    if tenant == "wrong-tenant" {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "error": "invalid_client",
                "error_description": "AADSTS700027: Client assertion contains an invalid signature.",
                "error_codes": [700027]
            })),
        )
            .into_response();
    }
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": 86399,
        "ext_expires_in": 86399,
        "access_token": format!("entra-token-for-{tenant}")
    }))
    .into_response()
}

async fn entra_standin(ca: &TestCa) -> (Url, HttpOptions, Entra) {
    let entra = Entra::default();
    let router = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token_endpoint))
        .with_state(entra.clone());
    let addr = serve_https(router, ca, &["login.test.example"]).await;
    let http = HttpOptions {
        extra_ca_pems: vec![ca.pem.clone()],
        host_overrides: vec![HostOverride::parse("login.test.example", &addr.to_string()).unwrap()],
        ..HttpOptions::default()
    };
    (
        Url::parse("https://login.test.example").unwrap(),
        http,
        entra,
    )
}

fn decode_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn client_assertion_is_signed_by_the_certificate_and_token_cached_per_tenant() {
    let ca = TestCa::new();
    let (authority, http, entra) = entra_standin(&ca).await;
    let now = OffsetDateTime::now_utc();
    let (cert_pem, key_pem) = rsa_client_cert("boot", now - days(1), now + days(30));
    let certificate =
        BootstrapCertificate::from_pem(std::path::Path::new("inline"), &cert_pem, &key_pem)
            .unwrap();
    let cert_der = certificate.certificate_der().to_vec();
    let credential = Arc::new(
        BootstrapCertificateCredential::new(
            &authority,
            "11111111-2222-3333-4444-555555555555",
            certificate,
            &http,
            BootstrapOptions {
                retry: fast_retry(&[429], 2),
                ..BootstrapOptions::default()
            },
        )
        .unwrap(),
    );

    // The tenant is unknown until the challenge fills the slot.
    let slot = TenantSlot::new();
    let bound = credential.bind_tenant(slot.clone());
    let err = bound.get_token(&[KEY_VAULT_SCOPE], None).await.unwrap_err();
    assert!(err.to_string().contains("tenant"), "{err}");
    assert_eq!(entra.calls.get(), 0);

    slot.set("72f988bf-86f1-41af-91ab-2d7cd011db47");
    let token = bound.get_token(&[KEY_VAULT_SCOPE], None).await.unwrap();
    assert!(
        token.token.secret() == "entra-token-for-72f988bf-86f1-41af-91ab-2d7cd011db47",
        "not the expected token (not shown)"
    );
    let lifetime = token.expires_on - OffsetDateTime::now_utc();
    assert!(lifetime > Duration::seconds(86000), "{lifetime}");
    bound.get_token(&[KEY_VAULT_SCOPE], None).await.unwrap();
    assert_eq!(entra.calls.get(), 1, "cached");

    let (tenant, form) = entra.forms.lock().unwrap()[0].clone();
    assert_eq!(tenant, "72f988bf-86f1-41af-91ab-2d7cd011db47");
    assert_eq!(form["client_id"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(form["scope"], "https://vault.azure.net/.default");
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );

    let parts: Vec<&str> = form["client_assertion"].split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode_json(parts[0]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(
        header["x5t"],
        URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&cert_der))
    );
    let claims = decode_json(parts[1]);
    assert_eq!(
        claims["aud"],
        "https://login.test.example/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
    );
    assert_eq!(claims["iss"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(claims["sub"], "11111111-2222-3333-4444-555555555555");
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    let nbf = claims["nbf"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(exp - nbf, 600);
    assert!((nbf - now.unix_timestamp()).abs() < 60);

    // The signature verifies with the public key inside the certificate.
    let cert = x509_cert::Certificate::from_der(&cert_der).unwrap();
    let spki_der = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .unwrap();
    let public = rsa::RsaPublicKey::from_public_key_der(&spki_der).unwrap();
    let verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(public);
    let signature =
        rsa::pkcs1v15::Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice())
            .unwrap();
    verifier
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .unwrap();

    // Another tenant is another cache entry and another request.
    let other = credential.bind_tenant(TenantSlot::with_tenant("contoso.onmicrosoft.com"));
    let token = other.get_token(&[KEY_VAULT_SCOPE], None).await.unwrap();
    assert!(
        token.token.secret() == "entra-token-for-contoso.onmicrosoft.com",
        "not the expected token (not shown)"
    );
    assert_eq!(entra.calls.get(), 2);
}

#[tokio::test]
async fn ps256_assertion_names_the_certificate_by_sha256() {
    let ca = TestCa::new();
    let (authority, http, entra) = entra_standin(&ca).await;
    let now = OffsetDateTime::now_utc();
    let (cert_pem, key_pem) = rsa_client_cert("boot", now - days(1), now + days(30));
    let certificate =
        BootstrapCertificate::from_pem(std::path::Path::new("inline"), &cert_pem, &key_pem)
            .unwrap();
    let cert_der = certificate.certificate_der().to_vec();
    let credential = BootstrapCertificateCredential::new(
        &authority,
        "app",
        certificate,
        &http,
        BootstrapOptions {
            algorithm: AssertionAlgorithm::Ps256,
            tenant: Some("tenant-a".into()),
            ..BootstrapOptions::default()
        },
    )
    .unwrap();
    // With a tenant given in the options the credential works on its own.
    credential
        .get_token(&[KEY_VAULT_SCOPE], None)
        .await
        .unwrap();
    let (_, form) = entra.forms.lock().unwrap()[0].clone();
    let header = decode_json(form["client_assertion"].split('.').next().unwrap());
    assert_eq!(header["alg"], "PS256");
    assert_eq!(
        header["x5t#S256"],
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&cert_der))
    );
}

#[tokio::test]
async fn entra_error_names_the_application_and_the_aadsts_message() {
    let ca = TestCa::new();
    let (authority, http, entra) = entra_standin(&ca).await;
    let now = OffsetDateTime::now_utc();
    let (cert_pem, key_pem) = rsa_client_cert("boot", now - days(1), now + days(30));
    let certificate =
        BootstrapCertificate::from_pem(std::path::Path::new("inline"), &cert_pem, &key_pem)
            .unwrap();
    let credential = BootstrapCertificateCredential::new(
        &authority,
        "app-123",
        certificate,
        &http,
        BootstrapOptions::default(),
    )
    .unwrap();
    let err = credential
        .token_for_tenant("wrong-tenant", KEY_VAULT_SCOPE)
        .await
        .unwrap_err();
    assert_eq!(entra.calls.get(), 1, "400 is not retried");
    assert_eq!(err.code(), "identity.entra_refused");
    let message = err.to_string();
    assert!(message.contains("app-123"), "{message}");
    assert!(
        message.contains("invalid_client: AADSTS700027"),
        "{message}"
    );
}
