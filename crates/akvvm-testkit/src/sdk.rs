//! The official SDK against the local vault (the emulator's tests): an HTTP client that trusts
//! the local vault, raw IMDS token requests and JSON answers, a managed-identity credential for the official SDK,
//! the SDK's secret client and its paged lists of secrets and of a secret's versions, and a
//! comparison of secret values that never prints them.

use std::sync::Arc;

use akvvm_emulator::{
    AuthorizationModel, Emulator, EmulatorConfig, Identity, IdentitySpec, RunningEmulator,
};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_secrets::models::{
    SecretClientListSecretPropertiesVersionsOptions, SecretProperties,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use futures::TryStreamExt;

/// A reqwest client that trusts the emulator's CA and maps `vaults` under every DNS suffix the
/// local vault serves (`<name>.vault.azure.net`, `<name>.vault.localhost`, ...) and `localhost`
/// (the authority host) to it.
pub fn http_client(emulator: &RunningEmulator, vaults: &[&str]) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(emulator.ca_pem().as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder().tls_certs_only([ca]);
    for vault in vaults {
        for suffix in akvvm_emulator::keyvault::VAULT_SUFFIXES {
            builder = builder.resolve(&format!("{vault}{suffix}"), emulator.https_addr());
        }
    }
    builder
        .resolve("localhost", emulator.https_addr())
        .no_proxy()
        .build()
        .unwrap()
}

/// The emulator's IMDS token URL for `resource` (written as given, not encoded), no identity
/// named.
pub fn imds_token_url(emulator: &RunningEmulator, resource: &str) -> String {
    format!(
        "{}/oauth2/token?api-version=2018-02-01&resource={resource}",
        emulator.imds_url()
    )
}

/// A raw IMDS token request for `resource` ([`imds_token_url`]) with the `Metadata: true` header;
/// add headers, then send.
pub fn imds_request(emulator: &RunningEmulator, resource: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(imds_token_url(emulator, resource))
        .header("Metadata", "true")
}

/// Sends `request`; its status and JSON body.
pub async fn json_answer(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A managed identity through the emulator's IMDS (`endpoint` is its `/metadata/identity`).
#[derive(Debug)]
pub struct ImdsCredential {
    pub endpoint: String,
    pub client_id: Option<String>,
    pub http: reqwest::Client,
}

impl ImdsCredential {
    /// The system-assigned identity.
    pub fn system(endpoint: String) -> Self {
        Self {
            endpoint,
            client_id: None,
            http: reqwest::Client::new(),
        }
    }
}

#[async_trait::async_trait]
impl TokenCredential for ImdsCredential {
    /// A token for the first scope's resource (Key Vault when no scope is given).
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let resource = scopes.first().map_or("https://vault.azure.net", |s| {
            s.trim_end_matches("/.default")
        });
        let mut query = vec![("api-version", "2018-02-01"), ("resource", resource)];
        if let Some(id) = &self.client_id {
            query.push(("client_id", id));
        }
        let failed = |e: &dyn std::fmt::Display| {
            azure_core::Error::with_message(ErrorKind::Credential, e.to_string())
        };
        let response = self
            .http
            .get(format!("{}/oauth2/token", self.endpoint))
            .header("Metadata", "true")
            .query(&query)
            .send()
            .await
            .map_err(|e| failed(&e))?;
        let body: serde_json::Value = response.json().await.map_err(|e| failed(&e))?;
        let (Some(token), Some(expires_on)) =
            (body["access_token"].as_str(), body["expires_on"].as_str())
        else {
            return Err(failed(&format!(
                "IMDS refused: {}",
                body["error_description"]
            )));
        };
        let expires_on =
            time::OffsetDateTime::from_unix_timestamp(expires_on.parse().unwrap()).unwrap();
        Ok(AccessToken::new(Secret::new(token.to_owned()), expires_on))
    }
}

/// The official SDK's secret client for `vault` on the emulator.
pub fn sdk_client(
    emulator: &RunningEmulator,
    vault: &str,
    credential: Arc<dyn TokenCredential>,
    retry: RetryOptions,
) -> SecretClient {
    let options = SecretClientOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(http_client(emulator, &[vault])))),
            retry,
            ..ClientOptions::default()
        },
        ..SecretClientOptions::default()
    };
    SecretClient::new(&emulator.vault_url(vault), credential, Some(options)).unwrap()
}

/// The vault's secrets through the SDK's pager, following every `nextLink`.
pub async fn list_secrets(client: &SecretClient) -> Vec<SecretProperties> {
    client
        .list_secret_properties(None)
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// The versions of secret `name` through the SDK's pager, asking for `maxresults` a page and
/// following every `nextLink`.
pub async fn list_versions(
    client: &SecretClient,
    name: &str,
    maxresults: i32,
) -> Vec<SecretProperties> {
    client
        .list_secret_properties_versions(
            name,
            Some(SecretClientListSecretPropertiesVersionsOptions {
                maxresults: Some(maxresults),
                ..Default::default()
            }),
        )
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Compares a secret's value; a failure shows lengths, never the value.
#[track_caller]
pub fn assert_value(actual: Option<&str>, expected: &str) {
    assert!(
        actual == Some(expected),
        "the secret value differs (not shown): {:?} bytes where {} were expected",
        actual.map(str::len),
        expected.len()
    );
}

/// The status and JSON body of the answer an SDK error came from.
pub fn error_answer(e: &azure_core::Error) -> (u16, serde_json::Value) {
    match e.kind() {
        ErrorKind::HttpResponse {
            status,
            raw_response,
            ..
        } => (
            u16::from(*status),
            raw_response
                .as_ref()
                .expect("the SDK keeps the answer")
                .body()
                .json()
                .unwrap(),
        ),
        other => panic!("not an HTTP error: {other:?}"),
    }
}

/// The local vault in-process with `vault` (of `model`) and the system-assigned identity holding
/// `roles` on it.
pub async fn start_with_roles(
    vault: &str,
    model: AuthorizationModel,
    roles: &[&str],
) -> (RunningEmulator, Identity) {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.create_vault(vault, None, model).unwrap();
    let identity = emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator.assign_roles(vault, "system", roles).unwrap();
    (emulator, identity)
}
