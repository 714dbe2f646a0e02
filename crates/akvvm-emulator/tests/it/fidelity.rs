//! The local vault answers as the real services do where the official SDKs and real clients
//! depend on it (issue 13), each checked against a public source:
//! - IMDS: the token path with a trailing slash, `invalid_resource` (AADSTS500011) for a resource
//!   Entra ID does not know, `X-Forwarded-For` refused, 404 and 410 while booting (the managed
//!   identity and IMDS documentation);
//! - the 401 challenge and the accepted token audience follow the vault host's DNS suffix
//!   (`*.vault.localhost` -> `https://vault.localhost`, `*.vault.azure.cn` -> ...), so the SDKs'
//!   challenge-resource check passes for every suffix the local vault serves;
//! - the versions of an unknown secret are an empty list (azure-sdk-for-js recording
//!   `recording_can_list_secret_versions_non_existing.json`), and short or empty pages that
//!   still carry a `nextLink` (a fault) do not lose items in the official Rust SDK's pager;
//! - the headers Key Vault sends on every answer (the same recording).
//!
//! Self-contained: the emulator runs in-process on 127.0.0.1:0.

use std::sync::Arc;

use akvvm_emulator::{
    AuthorizationModel, Emulator, EmulatorConfig, Identity, IdentitySpec, RunningEmulator,
    SecretSpec,
};
use akvvm_testkit::sdk::{
    ImdsCredential, http_client as http, imds_request, json_answer, list_secrets, list_versions,
};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
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
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    let identity = emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator
        .assign_roles(VAULT, "system", &["Key Vault Secrets Officer"])
        .unwrap();
    (emulator, identity)
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

// ---- 1. IMDS ----

#[tokio::test]
async fn imds_accepts_the_token_path_with_a_trailing_slash() {
    let (emulator, identity) = start().await;
    let response = reqwest::Client::new()
        .get(format!(
            "{}/oauth2/token/?api-version=2018-02-01&resource=https://vault.azure.net",
            emulator.imds_url()
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["client_id"], identity.client_id.as_str());
    assert_eq!(body["resource"], "https://vault.azure.net");
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() > 20));
}

#[tokio::test]
async fn imds_refuses_a_resource_entra_id_does_not_know_with_aadsts500011() {
    let (emulator, identity) = start().await;
    let (status, body) = json_answer(imds_request(&emulator, "https://unknown.example.com")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_resource");
    assert_eq!(body["error_codes"], json!([500011]));
    assert_eq!(
        body["error_uri"],
        "https://login.microsoftonline.com/error?code=500011"
    );
    let description = body["error_description"].as_str().unwrap();
    let expected = format!(
        "AADSTS500011: The resource principal named https://unknown.example.com was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.\r\nTrace ID: ",
        identity.tenant_id
    );
    assert!(description.starts_with(&expected), "{description}");
    assert!(description.contains("\r\nCorrelation ID: "));
    assert!(description.contains("\r\nTimestamp: "));

    // Known resources, with or without the trailing slash, and every cloud's Key Vault.
    for resource in ["https://management.azure.com/", "https://vault.azure.net/"]
        .into_iter()
        .chain(CLOUDS.iter().map(|(_, r)| *r))
    {
        imds_token(&emulator, resource).await;
    }
}

#[tokio::test]
async fn imds_refuses_a_request_carrying_x_forwarded_for() {
    let (emulator, _) = start().await;
    let request =
        imds_request(&emulator, "https://vault.azure.net").header("X-Forwarded-For", "10.0.0.4");
    assert_eq!(
        json_answer(request).await,
        (
            400,
            json!({"error": "invalid_request", "error_description": "Request contains X-Forwarded-For header"})
        )
    );
}

async fn imds_status(emulator: &RunningEmulator) -> (u16, Value) {
    json_answer(imds_request(emulator, "https://vault.azure.net")).await
}

#[tokio::test]
async fn booting_imds_answers_404_then_410_then_tokens() {
    let (emulator, _) = start().await;
    let not_found =
        json!({"error": "not_found", "error_description": "IMDS endpoint is updating."});
    let gone = json!({"error": "service_unavailable", "error_description": "IMDS is going through updates; it will be available within 70 seconds."});

    emulator.imds_booting(2, 1);
    assert_eq!(imds_status(&emulator).await, (404, not_found.clone()));
    assert_eq!(imds_status(&emulator).await, (404, not_found.clone()));
    assert_eq!(imds_status(&emulator).await, (410, gone.clone()));
    assert_eq!(imds_status(&emulator).await.0, 200);

    // The same through the HTTP admin API.
    let admin = http(&emulator, &[]);
    let admin_url = format!("{}/_emulator/faults/imds", emulator.authority_host());
    let set = admin
        .put(&admin_url)
        .json(&json!({"booting": {"notFound": 1, "gone": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(
        set.json::<Value>().await.unwrap()["booting"],
        json!({"notFound": 1, "gone": 1})
    );
    assert_eq!(imds_status(&emulator).await, (404, not_found));
    assert_eq!(imds_status(&emulator).await, (410, gone));
    assert_eq!(imds_status(&emulator).await.0, 200);
    assert_eq!(emulator.status_count("imds", 404), 3);
    assert_eq!(emulator.status_count("imds", 410), 2);
}

// ---- 2. The challenge follows the vault's DNS suffix ----

#[tokio::test]
async fn the_challenge_and_the_audience_follow_the_vault_hosts_suffix() {
    let (emulator, _) = start().await;
    emulator.set_secret(VAULT, "db", value("s3cret")).unwrap();
    let client = http(&emulator, &[VAULT]);
    let tenant = emulator.default_tenant();
    for (suffix, resource) in CLOUDS {
        let url = format!(
            "{}/secrets/db?api-version=7.4",
            emulator.vault_url_in(VAULT, suffix)
        );
        let challenge = client.get(&url).send().await.unwrap();
        assert_eq!(challenge.status(), 401, "{suffix}");
        assert_eq!(
            challenge.headers()["www-authenticate"],
            format!(
                "Bearer authorization=\"https://login.windows.net/{tenant}\", resource=\"{resource}\""
            )
            .as_str()
        );

        let own = imds_token(&emulator, resource).await;
        let ok = client.get(&url).bearer_auth(&own).send().await.unwrap();
        assert_eq!(ok.status(), 200, "{suffix}");

        // A token for another cloud's Key Vault is refused.
        let other = if *resource == "https://vault.azure.net" {
            "https://vault.azure.cn"
        } else {
            "https://vault.azure.net"
        };
        let foreign = imds_token(&emulator, other).await;
        let refused = client.get(&url).bearer_auth(&foreign).send().await.unwrap();
        assert_eq!(refused.status(), 401, "{suffix}");
        assert!(refused.headers().contains_key("www-authenticate"));
        assert_eq!(
            refused.json::<Value>().await.unwrap(),
            json!({"error": {"code": "Unauthorized", "message": format!("AKV10022: Invalid audience. Expected {resource}, found: {other}.")}})
        );
    }
}

#[tokio::test]
async fn the_official_sdk_works_against_vault_localhost() {
    let (emulator, _) = start().await;
    emulator.set_secret(VAULT, "db", value("s3cret")).unwrap();
    let secret = sdk(&emulator, VAULT, ".vault.localhost")
        .get_secret("db", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(
        secret.value.as_deref() == Some("s3cret"),
        "the value differs"
    );
    assert!(
        secret
            .id
            .as_deref()
            .unwrap()
            .starts_with(&emulator.vault_url_in(VAULT, ".vault.localhost"))
    );
}

// ---- 3. Lists ----

#[tokio::test]
async fn the_versions_of_an_unknown_secret_are_an_empty_list() {
    let (emulator, _) = start().await;
    let token = imds_token(&emulator, "https://vault.azure.net").await;
    let response = http(&emulator, &[VAULT])
        .get(format!(
            "{}/secrets/never-set/versions?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"value":[],"nextLink":null}"#
    );

    let versions: Vec<_> = sdk(&emulator, VAULT, ".vault.azure.net")
        .list_secret_properties_versions("never-set", None)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(versions.is_empty());
}

#[tokio::test]
async fn short_and_empty_pages_with_a_next_link_lose_no_item_in_the_sdk_pager() {
    let (emulator, _) = start().await;
    for i in 0..7 {
        emulator
            .set_secret(VAULT, &format!("s{i}"), value("v"))
            .unwrap();
        emulator.set_secret(VAULT, "many", value("v")).unwrap();
    }
    let client = sdk(&emulator, VAULT, ".vault.azure.net");
    // The SDK's first request goes without a token, for the challenge: not counted below.
    client.get_secret("many", None).await.unwrap();

    emulator.short_list_pages(VAULT, 2, 1);
    emulator.reset_counters();
    let listed = list_secrets(&client).await;
    assert_eq!(listed.len(), 8);
    // 8 items in pages of 2, each after an empty page: 8 answers.
    assert_eq!(emulator.request_count(VAULT, "/secrets"), 8);

    assert_eq!(list_versions(&client, "many", 5).await.len(), 7);

    // The first answer is an empty page that still links on; set through the HTTP admin API.
    let admin = http(&emulator, &[VAULT]);
    let set = admin
        .put(format!(
            "{}/_emulator/faults/{VAULT}",
            emulator.authority_host()
        ))
        .json(&json!({"listPaging": {"pageSize": 3, "emptyPages": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let token = imds_token(&emulator, "https://vault.azure.net").await;
    let first: Value = admin
        .get(format!(
            "{}/secrets?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["value"], json!([]));
    assert!(first["nextLink"].is_string());
    emulator.reset_counters();
    let listed = list_secrets(&client).await;
    assert_eq!(listed.len(), 8);
    // 3 pages of at most 3 items, each after two empty pages.
    assert_eq!(emulator.request_count(VAULT, "/secrets"), 9);

    emulator.clear_faults(VAULT);
    let listed = list_secrets(&client).await;
    assert_eq!(listed.len(), 8);
}

// ---- 4. Headers ----

#[tokio::test]
async fn answers_carry_key_vaults_headers_and_echo_the_client_request_id() {
    let (emulator, _) = start().await;
    emulator.set_secret(VAULT, "db", value("s3cret")).unwrap();
    let client = http(&emulator, &[VAULT, "policies"]);
    let token = imds_token(&emulator, "https://vault.azure.net").await;
    let url = format!("{}/secrets/db?api-version=7.4", emulator.vault_url(VAULT));
    let request_id = "b30a3070-3af8-40ac-8b41-9d3345b7a5a2";

    // The URL with the client request id (and the token), sent.
    let send = async |url: &str, token: Option<&str>| {
        let request = client.get(url).header("x-ms-client-request-id", request_id);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
        .await
        .unwrap()
    };
    let check = |response: &reqwest::Response| {
        let h = response.headers();
        let get = |name: &str| {
            h.get(name)
                .unwrap_or_else(|| panic!("{name} missing ({})", response.status()))
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(get("x-ms-client-request-id"), request_id);
        assert_eq!(get("cache-control"), "no-cache");
        assert_eq!(get("pragma"), "no-cache");
        assert_eq!(get("expires"), "-1");
        assert_eq!(
            get("strict-transport-security"),
            "max-age=31536000;includeSubDomains"
        );
        assert_eq!(get("x-content-type-options"), "nosniff");
        assert_eq!(
            get("x-ms-keyvault-network-info"),
            "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;"
        );
        assert!(!get("x-ms-keyvault-region").is_empty());
        assert!(
            get("x-ms-keyvault-service-version")
                .split('.')
                .all(|n| n.parse::<u32>().is_ok())
        );
        assert!(uuid::Uuid::parse_str(&get("x-ms-request-id")).is_ok());
    };

    // 401: no role assignment was consulted.
    let challenge = send(&url, None).await;
    assert_eq!(challenge.status(), 401);
    check(&challenge);
    assert!(
        !challenge
            .headers()
            .contains_key("x-ms-keyvault-rbac-assignment-id")
    );

    // 200 on an RBAC vault: the role assignment that allowed it, the same each time.
    let mut assignment = None;
    for _ in 0..2 {
        let ok = send(&url, Some(&token)).await;
        assert_eq!(ok.status(), 200);
        check(&ok);
        let id = ok.headers()["x-ms-keyvault-rbac-assignment-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 5);
        assert!(assignment.is_none() || assignment.as_ref() == Some(&id));
        assignment = Some(id);
    }

    // Injected faults answer with the headers too.
    emulator.fail_next(VAULT, &[503]);
    let failed = send(&url, Some(&token)).await;
    assert_eq!(failed.status(), 503);
    check(&failed);

    // An access-policy vault names no role assignment.
    emulator
        .create_vault("policies", None, AuthorizationModel::AccessPolicy)
        .unwrap();
    emulator
        .assign_roles("policies", "system", &["get"])
        .unwrap();
    emulator
        .set_secret("policies", "db", value("s3cret"))
        .unwrap();
    let policy_url = format!(
        "{}/secrets/db?api-version=7.4",
        emulator.vault_url("policies")
    );
    let policy = send(&policy_url, Some(&token)).await;
    assert_eq!(policy.status(), 200);
    check(&policy);
    assert!(
        !policy
            .headers()
            .contains_key("x-ms-keyvault-rbac-assignment-id")
    );
}
