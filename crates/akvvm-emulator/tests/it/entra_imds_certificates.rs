//! Entra ID client assertions, IMDS errors, certificates as managed secrets (read through the
//! official Rust SDK and decoded with akvvm's own decoder), the seed file and persistence.

use std::sync::Arc;

use akvvm_emulator::seed::{Seed, SeedIdentities};
use akvvm_emulator::{
    AppCredentials, AppSpec, Emulator, EmulatorConfig, IdentitySpec, NamedSecret, RoleSpec,
    RunningEmulator, SecretSpec, VaultSpec,
};
use akvvm_testkit::sdk::{self, ImdsCredential, assert_value};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, RsaKeyPair};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::RetryOptions;
use azure_security_keyvault_secrets::models::{ContentType, SecretClientGetSecretOptions};
use azure_security_keyvault_secrets::{ResourceExt as _, SecretClient};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use sha2::Digest;

const VAULT: &str = "certvault";

fn http(emulator: &RunningEmulator) -> reqwest::Client {
    sdk::http_client(emulator, &[VAULT])
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A client assertion signed with the app's key.
pub(crate) fn assertion(app: &AppCredentials, alg: &str, aud: &str, claims: Value) -> String {
    let key_der =
        PrivatePkcs8KeyDer::from_pem_slice(app.private_key_pem.as_deref().unwrap().as_bytes())
            .unwrap();
    let key = RsaKeyPair::from_pkcs8(key_der.secret_pkcs8_der()).unwrap();
    let cert_der =
        rustls::pki_types::CertificateDer::from_pem_slice(app.certificate_pem.as_bytes()).unwrap();
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if alg == "PS256" {
        header["x5t#S256"] = json!(URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&cert_der)));
    } else {
        header["x5t"] = json!(app.x5t);
    }
    let mut body = json!({"aud": aud, "iss": app.client_id, "sub": app.client_id, "jti": "1", "nbf": now(), "exp": now() + 600});
    for (k, v) in claims.as_object().unwrap() {
        body[k] = v.clone();
    }
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap())
    );
    let padding: &'static dyn signature::RsaEncoding = if alg == "PS256" {
        &signature::RSA_PSS_SHA256
    } else {
        &signature::RSA_PKCS1_SHA256
    };
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(padding, &SystemRandom::new(), signed.as_bytes(), &mut sig)
        .unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

pub(crate) fn token_url(emulator: &RunningEmulator, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", emulator.authority_host())
}

pub(crate) async fn request_token(
    emulator: &RunningEmulator,
    tenant: &str,
    client_id: &str,
    assertion: &str,
) -> (u16, Value) {
    let response = http(emulator)
        .post(token_url(emulator, tenant))
        .form(&[
            ("client_id", client_id),
            ("scope", "https://vault.azure.net/.default"),
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The bootstrap-certificate flow as a TokenCredential: a client assertion for the v2 endpoint.
#[derive(Debug)]
struct AppCredential {
    app: AppCredentials,
    token_url: String,
    http: reqwest::Client,
}

#[async_trait::async_trait]
impl TokenCredential for AppCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let assertion = assertion(&self.app, "RS256", &self.token_url, json!({}));
        let body: Value = self
            .http
            .post(&self.token_url)
            .form(&[
                ("client_id", self.app.client_id.as_str()),
                ("scope", scopes[0]),
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let expires_on = time::OffsetDateTime::now_utc()
            + time::Duration::seconds(body["expires_in"].as_i64().unwrap());
        Ok(AccessToken::new(
            Secret::new(body["access_token"].as_str().unwrap().to_owned()),
            expires_on,
        ))
    }
}

fn sdk(emulator: &RunningEmulator, credential: Arc<dyn TokenCredential>) -> SecretClient {
    sdk::sdk_client(emulator, VAULT, credential, RetryOptions::none())
}

#[tokio::test]
async fn entra_checks_client_assertions_against_the_registered_certificate() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    let tenant = emulator.default_tenant();
    let app = emulator
        .register_app(AppSpec {
            display_name: Some("paas".into()),
            ..AppSpec::default()
        })
        .unwrap();
    let url = token_url(&emulator, &tenant);

    let (status, body) = request_token(
        &emulator,
        &tenant,
        &app.client_id,
        &assertion(&app, "RS256", &url, json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);

    let (status, body) = request_token(
        &emulator,
        &tenant,
        &app.client_id,
        &assertion(&app, "PS256", &url, json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The app's own assertion with its claims changed after signing.
    let signed = assertion(&app, "RS256", &url, json!({}));
    let parts: Vec<&str> = signed.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["exp"] = json!(now() + 86_400);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    let (status, body) = request_token(&emulator, &tenant, &app.client_id, &tampered).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // Entra's layout: the message, then trace id, correlation id and timestamp lines.
    let description = body["error_description"].as_str().unwrap();
    let lines: Vec<&str> = description.split("\r\n").collect();
    // Entra's words with the key's thumbprint (the whole text: fidelity.rs).
    assert!(
        lines[0].starts_with(&format!("AADSTS700027: Client assertion failed signature validation. [Reason - Key was found, but use of the key to verify the signature failed., Thumbprint of key used by client: '{}', Found key 'Start=", app.thumbprint)),
        "{body}"
    );
    assert_eq!(
        lines[1],
        format!("Trace ID: {}", body["trace_id"].as_str().unwrap())
    );
    assert_eq!(
        lines[2],
        format!(
            "Correlation ID: {}",
            body["correlation_id"].as_str().unwrap()
        )
    );
    assert_eq!(
        lines[3],
        format!("Timestamp: {}", body["timestamp"].as_str().unwrap())
    );
    assert_eq!(lines.len(), 4, "{body}");

    let cases = [
        (
            assertion(&app, "RS256", "https://elsewhere/token", json!({})),
            401,
            "invalid_client",
            700023,
        ),
        (
            assertion(
                &app,
                "RS256",
                &url,
                json!({"nbf": now() - 4000, "exp": now() - 3000}),
            ),
            401,
            "invalid_client",
            700024,
        ),
        (
            assertion(&app, "RS256", &url, json!({"iss": "someone-else"})),
            401,
            "invalid_client",
            700021,
        ),
        ("not-a-jwt".to_owned(), 401, "invalid_client", 50027),
    ];
    for (jwt, want_status, want_error, want_code) in cases {
        let (status, body) = request_token(&emulator, &tenant, &app.client_id, &jwt).await;
        assert_eq!(
            (
                status,
                body["error"].as_str().unwrap(),
                body["error_codes"][0].as_u64().unwrap()
            ),
            (want_status, want_error, want_code),
            "{body}"
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with(&format!("AADSTS{want_code}: "))
        );
    }
    let (status, body) = request_token(
        &emulator,
        &tenant,
        "unknown-app",
        &assertion(&app, "RS256", &url, json!({})),
    )
    .await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (400, Some(700016))
    );
    let (status, body) = request_token(
        &emulator,
        "no-such-tenant",
        &app.client_id,
        &assertion(&app, "RS256", &url, json!({})),
    )
    .await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (400, Some(90002))
    );

    // The whole bootstrap flow with the official SDK: challenge, assertion, token, secret.
    emulator
        .assign_roles(VAULT, "paas", &["Key Vault Secrets User"])
        .unwrap();
    emulator
        .set_secret(
            VAULT,
            "app-secret",
            SecretSpec {
                value: "for-the-app".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let credential = Arc::new(AppCredential {
        app,
        token_url: url,
        http: http(&emulator),
    });
    let secret = sdk(&emulator, credential)
        .get_secret("app-secret", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(secret.value.as_deref(), "for-the-app");
}

#[tokio::test]
async fn imds_errors_and_tokens_for_other_audiences() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    let management = "https://management.azure.com/";

    assert_eq!(
        sdk::json_answer(sdk::imds_request(&emulator, management)).await,
        (
            400,
            json!({"error": "invalid_request", "error_description": "Identity not found"})
        )
    );
    let no_header = reqwest::Client::new()
        .get(sdk::imds_token_url(&emulator, management))
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_header.json::<Value>().await.unwrap()["error_description"],
        "Required metadata header not specified"
    );

    let identity = emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator.assign_roles(VAULT, "system", &["get"]).unwrap();
    let (_, body) = sdk::json_answer(sdk::imds_request(&emulator, management)).await;
    assert_eq!(body["client_id"], identity.client_id.as_str());
    assert_eq!(body["resource"], "https://management.azure.com/");
    // A token for another audience is refused by Key Vault with the challenge.
    let response = http(&emulator)
        .get(format!(
            "{}/secrets/x?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("AKV10022: Invalid audience."),
        "{error}"
    );

    // Injected IMDS faults use IMDS's own error body.
    emulator.fail_next("imds", &[503]);
    let failed = sdk::imds_request(&emulator, management)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 503);
    assert_eq!(emulator.status_count("imds", 503), 1);
}

#[tokio::test]
async fn certificates_are_managed_secrets_encoded_as_key_vault_does() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator
        .assign_roles(VAULT, "system", &["Key Vault Secrets User"])
        .unwrap();
    let client = sdk(
        &emulator,
        Arc::new(ImdsCredential::system(emulator.imds_url())),
    );

    let rsa = emulator
        .create_certificate(VAULT, "web", &json!({"key_props": {"kty": "RSA", "key_size": 3072}, "x509_props": {"subject": "CN=www.contoso.com", "sans": {"dns_names": ["www.contoso.com"]}}}))
        .unwrap();
    let secret = client
        .get_secret("web", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(secret.content_type.as_deref(), Some("application/x-pkcs12"));
    assert_eq!(secret.managed, Some(true));
    assert_eq!(
        secret.kid.as_deref(),
        Some(format!("{}/keys/web/{}", emulator.vault_url(VAULT), rsa.version).as_str())
    );
    assert_eq!(
        secret.resource_id().unwrap().version.as_deref(),
        Some(rsa.version.as_str())
    );
    let value = secret.value.unwrap();
    let pfx = STANDARD.decode(&value).unwrap();
    // HMAC-SHA1 MAC, iteration count left out, as Key Vault's PFX files have it.
    assert_eq!(
        akvvm_cert::pkcs12::mac_summary(&pfx).unwrap(),
        Some(("1.3.14.3.2.26".to_owned(), None))
    );
    let bundle =
        akvvm_cert::certificate::decode_secret(Some("application/x-pkcs12"), &value).unwrap();
    assert_eq!(bundle.leaf.subject, "CN=www.contoso.com");
    assert_eq!(bundle.leaf.thumbprint(), rsa.thumbprint);
    assert_eq!(
        bundle.key.key_type(),
        &akvvm_cert::certificate::KeyType::Rsa { bits: 3072 }
    );

    // outContentType: the same PFX read as PEM (api-version 2025-07-01).
    let as_pem = client
        .get_secret(
            "web",
            Some(SecretClientGetSecretOptions {
                out_content_type: Some(ContentType::Pem),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(
        as_pem.content_type.as_deref(),
        Some("application/x-pem-file")
    );
    let converted = akvvm_cert::certificate::decode_secret(
        as_pem.content_type.as_deref(),
        as_pem.value.as_deref().unwrap(),
    )
    .unwrap();
    assert_eq!(converted.leaf.thumbprint(), rsa.thumbprint);

    let ec = emulator
        .create_certificate(VAULT, "mail", &json!({"key_props": {"kty": "EC", "crv": "P-521"}, "secret_props": {"contentType": "application/x-pem-file"}, "x509_props": {"subject": "CN=mail"}}))
        .unwrap();
    let pem = client
        .get_secret("mail", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(pem.content_type.as_deref(), Some("application/x-pem-file"));
    let bundle = akvvm_cert::certificate::decode_secret(
        pem.content_type.as_deref(),
        pem.value.as_deref().unwrap(),
    )
    .unwrap();
    assert_eq!(bundle.leaf.thumbprint(), ec.thumbprint);

    // Key Vault's own PFX (no password) imports as it is.
    let reimported = emulator
        .import_certificate(
            VAULT,
            "web-copy",
            &akvvm_emulator::certs::CertificateImport {
                pfx: Some(value.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(reimported.thumbprint, rsa.thumbprint);
    let bad = emulator
        .import_certificate(
            VAULT,
            "broken",
            &akvvm_emulator::certs::CertificateImport {
                pfx: Some("bm90IGEgcGZ4".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(bad.status(), 400);

    // Rotation: a new current version; the old one stays readable by version.
    let rotated = emulator.rotate_certificate(VAULT, "web").unwrap();
    assert_ne!(rotated.version, rsa.version);
    let current = client
        .get_secret("web", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(
        current.resource_id().unwrap().version.as_deref(),
        Some(rotated.version.as_str())
    );
    let old = client
        .get_secret(
            "web",
            Some(SecretClientGetSecretOptions {
                secret_version: Some(rsa.version.clone()),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(old.value.as_deref(), value.as_str());

    // Deleting a certificate deletes its secret.
    emulator.delete_certificate(VAULT, "mail").unwrap();
    let err = client.get_secret("mail", None).await.unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(404));

    // Disabling the certificate's current version disables its secret.
    emulator
        .set_certificate_enabled(VAULT, "web", None, false)
        .unwrap();
    let err = client.get_secret("web", None).await.unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(403));
}

#[tokio::test]
async fn seed_and_persisted_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed {
        tenant_id: Some("72f988bf-0000-4000-8000-000000000001".into()),
        identities: SeedIdentities {
            system: Some(IdentitySpec {
                client_id: Some("sys-client".into()),
                ..Default::default()
            }),
            user: vec![],
        },
        apps: vec![],
        vaults: vec![VaultSpec {
            name: VAULT.into(),
            roles: vec![RoleSpec {
                principal: "system".into(),
                roles: vec!["Key Vault Secrets Officer".into()],
            }],
            secrets: vec![NamedSecret {
                name: "seeded".into(),
                spec: SecretSpec {
                    value: "v1".into(),
                    ..Default::default()
                },
            }],
            ..VaultSpec::default()
        }],
    };
    let config = EmulatorConfig {
        data_dir: Some(dir.path().to_owned()),
        persist: true,
        seed: Some(seed),
        ..EmulatorConfig::default()
    };

    let first = Emulator::start(config.clone()).await.unwrap();
    assert_eq!(
        first.default_tenant(),
        "72f988bf-0000-4000-8000-000000000001"
    );
    first
        .set_secret(
            VAULT,
            "added",
            SecretSpec {
                value: "later".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let ca = first.ca_pem().to_owned();
    let token = ImdsCredential::system(first.imds_url())
        .get_token(&[], None)
        .await
        .unwrap();
    drop(first);

    let second = Emulator::start(config).await.unwrap();
    assert_eq!(second.ca_pem(), ca);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
        ca
    );
    // The token from before the restart is still valid: the signing key was kept.
    for (name, want) in [("seeded", "v1"), ("added", "later")] {
        let response = http(&second)
            .get(format!(
                "{}/secrets/{name}?api-version=7.4",
                second.vault_url(VAULT)
            ))
            .bearer_auth(token.token.secret())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let got = response.json::<Value>().await.unwrap();
        assert_value(got["value"].as_str(), want);
    }
    // The seed applied again creates no second version.
    let versions = second.read(|m| m.vaults[VAULT].secrets["seeded"].versions.len());
    assert_eq!(versions, 1);
}

#[tokio::test]
async fn admin_api_over_https_and_access_policy_vaults() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let http = http(&emulator);
    let admin = |path: &str| format!("{}/_emulator{path}", emulator.authority_host());

    assert_eq!(
        http.get(admin("/ca.pem"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        emulator.ca_pem()
    );
    let created = http
        .post(admin("/vaults"))
        .json(&json!({"name": VAULT, "authorization": "accessPolicy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let duplicate = http
        .post(admin("/vaults"))
        .json(&json!({"name": VAULT}))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 409);
    let bad = http
        .post(admin("/vaults"))
        .json(&json!({"name": VAULT, "nmae": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("unknown field `nmae`"));

    let identity: Value = http
        .post(admin("/identities/system"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let put = http
        .put(admin(&format!("/vaults/{VAULT}/secrets/s")))
        .json(&json!({"value": "v", "contentType": "text/plain"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);

    // No permission yet: an access-policy vault's 403.
    let token = ImdsCredential::system(emulator.imds_url())
        .get_token(&[], None)
        .await
        .unwrap();
    let get = || {
        http.get(format!(
            "{}/secrets/s?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .bearer_auth(token.token.secret())
        .send()
    };
    let denied: Value = get().await.unwrap().json().await.unwrap();
    assert_eq!(denied["error"]["innererror"]["code"], "AccessDenied");
    let message = denied["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("oid={}", identity["objectId"].as_str().unwrap())),
        "{message}"
    );
    assert!(
        message.contains("does not have secrets get permission on key vault 'certvault"),
        "{message}"
    );

    let granted = http
        .post(admin(&format!("/vaults/{VAULT}/roles")))
        .json(&json!({"principal": "system", "roles": ["get"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 200);
    let granted_read = get().await.unwrap().json::<Value>().await.unwrap();
    assert_value(granted_read["value"].as_str(), "v");

    // Latency and counters over HTTP.
    let faults = http
        .put(admin(&format!("/faults/{VAULT}")))
        .json(&json!({"latencyMs": 250}))
        .send()
        .await
        .unwrap();
    assert_eq!(faults.json::<Value>().await.unwrap()["latencyMs"], 250);
    let started = std::time::Instant::now();
    assert_eq!(get().await.unwrap().status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    let counters: Vec<Value> = http
        .get(admin("/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ok = counters
        .iter()
        .find(|c| c["scope"] == VAULT && c["path"] == "/secrets/s" && c["status"] == 200)
        .unwrap();
    assert_eq!(ok["count"], 2);
    assert_eq!(ok["method"], "GET");
}

/// Deleting a certificate through the data plane soft-deletes it as Key Vault does: it is read
/// back under `/deletedcertificates` (what the SDKs' delete pollers wait for), its name cannot be
/// reused until it is purged or recovered, and recovering brings back its secret too.
#[tokio::test]
async fn deleted_certificates_can_be_read_recovered_and_purged() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    let identity = emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator
        .assign_roles(
            VAULT,
            &identity.object_id,
            &["Key Vault Certificates Officer", "Key Vault Secrets User"],
        )
        .unwrap();
    emulator
        .create_certificate(VAULT, "web", &json!({"x509_props": {"subject": "CN=web"}}))
        .unwrap();
    let token = emulator
        .issue_token(&identity, "https://vault.azure.net", now(), now() + 3600)
        .unwrap();
    let http = http(&emulator);
    let base = emulator.vault_url(VAULT);
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{base}{path}?api-version=7.4"))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let body = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            };
            (status, body)
        }
    };

    let (status, deleted) = call(reqwest::Method::DELETE, "/certificates/web", None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted["recoveryId"],
        format!("{base}/deletedcertificates/web").as_str()
    );
    assert_eq!(
        deleted["attributes"]["recoveryLevel"],
        "Recoverable+Purgeable"
    );
    let (status, body) = call(reqwest::Method::GET, "/certificates/web", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "CertificateNotFound");
    assert_eq!(
        call(reqwest::Method::GET, "/secrets/web", None).await.0,
        404
    );
    let (status, read) = call(reqwest::Method::GET, "/deletedcertificates/web", None).await;
    assert_eq!(status, 200);
    assert_eq!(read["x5t"], deleted["x5t"]);
    assert_eq!(read["deletedDate"], deleted["deletedDate"]);
    let (status, listed) = call(reqwest::Method::GET, "/deletedcertificates", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["value"][0]["recoveryId"],
        format!("{base}/deletedcertificates/web").as_str()
    );

    // The name is taken while the certificate is deleted.
    let (status, body) = call(
        reqwest::Method::POST,
        "/certificates/web/create",
        Some(json!({"policy": {"x509_props": {"subject": "CN=web"}}})),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        body,
        json!({"error": {"code": "Conflict", "message": "Certificate web is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the certificate can only be recovered or purged.", "innererror": {"code": "ObjectIsDeletedButRecoverable"}}})
    );

    // Recover: the certificate and its secret are back.
    let (status, recovered) = call(
        reqwest::Method::POST,
        "/deletedcertificates/web/recover",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(recovered["x5t"], deleted["x5t"]);
    assert_eq!(
        call(reqwest::Method::GET, "/secrets/web", None).await.0,
        200
    );
    let (status, body) = call(reqwest::Method::GET, "/deletedcertificates/web", None).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {"code": "CertificateNotFound", "message": "Deleted Certificate not found: web"}})
    );

    // Delete and purge: gone for good, and the name is free again.
    assert_eq!(
        call(reqwest::Method::DELETE, "/certificates/web", None)
            .await
            .0,
        200
    );
    let (status, body) = call(reqwest::Method::DELETE, "/deletedcertificates/web", None).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(
        call(reqwest::Method::GET, "/deletedcertificates/web", None)
            .await
            .0,
        404
    );
    let (status, body) = call(
        reqwest::Method::POST,
        "/certificates/web/create",
        Some(json!({"policy": {"x509_props": {"subject": "CN=web"}}})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
}

/// "Key Vault Certificate User" reads certificates and their secrets (the PFX an agent installs)
/// and may change nothing, as the built-in role does.
#[tokio::test]
async fn the_certificate_user_role_reads_certificates_and_their_secrets() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    let identity = emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator
        .assign_roles(VAULT, &identity.object_id, &["Key Vault Certificate User"])
        .unwrap();
    emulator
        .create_certificate(VAULT, "web", &json!({"x509_props": {"subject": "CN=web"}}))
        .unwrap();
    let token = emulator
        .issue_token(&identity, "https://vault.azure.net", now(), now() + 3600)
        .unwrap();
    let http = http(&emulator);
    let base = emulator.vault_url(VAULT);
    for (method, path, expected) in [
        (reqwest::Method::GET, "/certificates/web", 200),
        (reqwest::Method::GET, "/certificates", 200),
        (reqwest::Method::GET, "/secrets/web", 200),
        (reqwest::Method::GET, "/secrets", 200),
        (reqwest::Method::DELETE, "/certificates/web", 403),
        (reqwest::Method::PUT, "/secrets/other", 403),
    ] {
        let response = http
            .request(method.clone(), format!("{base}{path}?api-version=7.4"))
            .bearer_auth(&token)
            .json(&json!({"value": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{method} {path}");
    }
}
