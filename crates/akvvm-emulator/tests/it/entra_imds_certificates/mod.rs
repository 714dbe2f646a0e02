//! Entra ID client assertions, IMDS errors, certificates as managed secrets (read through the
//! official Rust SDK and decoded with akvvm's own decoder), the seed file and persistence. One
//! module per topic (`entra`, `imds`, `certificates`, `seed_and_admin`); the shared helpers (and
//! the client assertions `fidelity` uses too) are here.

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

mod certificates;
mod entra;
mod imds;
mod seed_and_admin;
