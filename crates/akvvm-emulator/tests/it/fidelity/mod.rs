//! The local vault answers as the real services do where the official SDKs and real clients
//! depend on it (issue 13), each checked against a public source:
//! - IMDS: the token path with a trailing slash, `invalid_resource` (AADSTS500011) for a resource
//!   Entra ID does not know, `X-Forwarded-For` refused, 404 and 410 while booting (the managed
//!   identity and IMDS documentation);
//! - the 401 challenge and the accepted token audience follow the vault host's DNS suffix
//!   (`*.vault.localhost` -> `https://vault.localhost`, `*.vault.azure.cn` -> ...), so the SDKs'
//!   challenge-resource check passes for every suffix the local vault serves;
//! - the versions of an unknown secret are an empty list (azure-sdk-for-js recording
//!   `recording_can_list_secret_versions_non_existing.json`), versions are listed by version id
//!   and not by creation (the recordings named at `akvvm_emulator::state::model::listing_order`),
//!   and short or empty pages that still carry a `nextLink` (a fault) do not lose items in the
//!   official Rust SDK's pager;
//! - the headers Key Vault sends on every answer (the same recording);
//! - Entra ID's words for client assertions: AADSTS700023 for another audience, AADSTS700027
//!   naming the key's thumbprint and validity for a bad signature, AADSTS700024 with ISO-8601
//!   times (texts quoted in the Azure SDKs' troubleshooting guides and in public issues), and
//!   discovery for an unknown tenant refused with `invalid_tenant` AADSTS90002 (the body
//!   azidentity for Go prints);
//! - a certificate's policy updated member by member (`PATCH .../policy`, the REST spec's
//!   "Set specified members in the certificate policy. Leave others as null.");
//! - the 403s of a vault's network rules, `ForbiddenByFirewall` and `ForbiddenByConnection`
//!   (fault presets), with the bodies Key Vault sends (quoted in
//!   hashicorp/terraform-provider-azurerm#20742 and microsoft/multimodal-ai#171).
//!
//! Self-contained: the emulator runs in-process on 127.0.0.1:0. One module per topic (`imds`,
//! `suffixes`, `lists`, `vault_answers`, `entra`); the shared helpers are here.

use std::sync::Arc;

use crate::entra_imds_certificates::{assertion, request_token, token_url};
use akvvm_emulator::{
    AppSpec, AuthorizationModel, Identity, NetworkDenial, RunningEmulator, SecretSpec,
};
use akvvm_testkit::sdk::{
    ImdsCredential, error_answer, http_client as http, imds_request, json_answer, list_secrets,
    list_versions, start_with_roles,
};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::TryStreamExt;
use serde_json::{Value, json};

const VAULT: &str = "fidelity";
/// Every DNS suffix of a vault host the local vault serves, and its Key Vault resource.
const CLOUDS: &[(&str, &str)] = &[
    (".vault.azure.net", "https://vault.azure.net"),
    (".vault.localhost", "https://vault.localhost"),
    (".vault.azure.cn", "https://vault.azure.cn"),
    (
        ".vault.usgovcloudapi.net",
        "https://vault.usgovcloudapi.net",
    ),
    (
        ".vault.microsoftazure.de",
        "https://vault.microsoftazure.de",
    ),
];

async fn start() -> (RunningEmulator, Identity) {
    start_with_roles(
        VAULT,
        AuthorizationModel::Rbac,
        &["Key Vault Secrets Officer"],
    )
    .await
}

/// An IMDS token for the system identity and `resource`.
async fn imds_token(emulator: &RunningEmulator, resource: &str) -> String {
    let (_, body) = json_answer(imds_request(emulator, resource)).await;
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("IMDS refused: {}", body["error_description"]))
        .to_owned()
}

/// The official SDK's client for `vault` under `suffix`, challenge-resource verification on.
fn sdk(emulator: &RunningEmulator, vault: &str, suffix: &str) -> SecretClient {
    let options = SecretClientOptions {
        client_options: ClientOptions {
            transport: Some(Transport::new(Arc::new(http(emulator, &[vault])))),
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        },
        ..SecretClientOptions::default()
    };
    let credential = Arc::new(ImdsCredential::system(emulator.imds_url()));
    SecretClient::new(
        &emulator.vault_url_in(vault, suffix),
        credential,
        Some(options),
    )
    .unwrap()
}

fn value(v: &str) -> SecretSpec {
    SecretSpec {
        value: v.into(),
        ..SecretSpec::default()
    }
}

mod entra;
mod imds;
mod lists;
mod suffixes;
mod vault_answers;
