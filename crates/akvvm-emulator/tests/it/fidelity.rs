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
//! Self-contained: the emulator runs in-process on 127.0.0.1:0.

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

/// The version ids of a list answer's items, in the order listed.
fn listed_versions(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    ids.into_iter()
        .map(|id| id.rsplit('/').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn versions_are_listed_by_version_id_not_by_creation() {
    let (emulator, _) = start().await;
    emulator
        .assign_roles(VAULT, "system", &["Key Vault Certificates Officer"])
        .unwrap();
    // Eight random version ids: created in sorted order by chance once in 40,320 runs.
    let created: Vec<String> = (0..8)
        .map(|_| {
            emulator
                .set_secret(VAULT, "many", value("v"))
                .unwrap()
                .version
        })
        .collect();
    let mut by_id = created.clone();
    by_id.sort();

    // Through the official SDK's pager, three versions a page.
    let client = sdk(&emulator, VAULT, ".vault.azure.net");
    let listed = listed_versions(
        list_versions(&client, "many", 3)
            .await
            .into_iter()
            .map(|p| p.id.unwrap()),
    );
    assert_eq!(listed, by_id, "created in the order {created:?}");

    // Certificates the same way.
    let policy =
        json!({"key_props": {"kty": "EC", "crv": "P-256"}, "x509_props": {"subject": "CN=web"}});
    let mut created = vec![
        emulator
            .create_certificate(VAULT, "web", &policy)
            .unwrap()
            .version,
    ];
    for _ in 0..7 {
        created.push(emulator.rotate_certificate(VAULT, "web").unwrap().version);
    }
    let mut by_id = created.clone();
    by_id.sort();
    let token = imds_token(&emulator, "https://vault.azure.net").await;
    let (status, body) = json_answer(
        http(&emulator, &[VAULT])
            .get(format!(
                "{}/certificates/web/versions?api-version=7.4",
                emulator.vault_url(VAULT)
            ))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let listed = listed_versions(
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned()),
    );
    assert_eq!(listed, by_id, "created in the order {created:?}");
}

#[tokio::test]
async fn the_certificate_policy_is_read_and_updated_member_by_member() {
    let (emulator, _) = start().await;
    emulator
        .assign_roles(VAULT, "system", &["Key Vault Certificates Officer"])
        .unwrap();
    let policy = json!({"key_props": {"kty": "EC", "crv": "P-384"}, "x509_props": {"subject": "CN=web", "validity_months": 6}});
    emulator.create_certificate(VAULT, "web", &policy).unwrap();
    let client = http(&emulator, &[VAULT]);
    let token = imds_token(&emulator, "https://vault.azure.net").await;
    let url = |name: &str| {
        format!(
            "{}/certificates/{name}/policy?api-version=7.4",
            emulator.vault_url(VAULT)
        )
    };
    let patch = async |name: &str, body: Value| {
        json_answer(client.patch(url(name)).bearer_auth(&token).json(&body)).await
    };

    // "Set specified members in the certificate policy. Leave others as null." (the REST spec's
    // UpdateCertificatePolicy).
    let (status, updated) = patch(
        "web",
        json!({"x509_props": {"subject": "CN=renewed"}, "lifetime_actions": [{"trigger": {"days_before_expiry": 30}, "action": {"action_type": "EmailContacts"}}]}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["id"],
        format!("{}/certificates/web/policy", emulator.vault_url(VAULT))
    );
    assert_eq!(updated["x509_props"]["subject"], "CN=renewed");
    assert_eq!(updated["x509_props"]["validity_months"], 6);
    assert_eq!(updated["key_props"]["crv"], "P-384");
    assert_eq!(
        updated["lifetime_actions"],
        json!([{"trigger": {"days_before_expiry": 30}, "action": {"action_type": "EmailContacts"}}])
    );
    assert!(updated["attributes"]["updated"].as_i64() >= updated["attributes"]["created"].as_i64());
    let (_, read) = json_answer(client.get(url("web")).bearer_auth(&token)).await;
    assert_eq!(read, updated);
    // The next version follows it.
    emulator.rotate_certificate(VAULT, "web").unwrap();
    let (_, bundle) = json_answer(
        client
            .get(format!(
                "{}/certificates/web?api-version=7.4",
                emulator.vault_url(VAULT)
            ))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(bundle["policy"]["x509_props"]["subject"], "CN=renewed");
    // `policy` in a certificate's PATCH changes it the same way.
    let (status, bundle) = json_answer(
        client
            .patch(format!(
                "{}/certificates/web?api-version=7.4",
                emulator.vault_url(VAULT)
            ))
            .bearer_auth(&token)
            .json(&json!({"policy": {"x509_props": {"validity_months": 12}}})),
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["policy"]["x509_props"]["validity_months"], 12);
    assert_eq!(bundle["policy"]["x509_props"]["subject"], "CN=renewed");

    let (status, body) = patch(
        "web",
        json!({"key_props": {"kty": "RSA", "key_size": 1000}}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("BadParameter"))
    );
    let (status, body) = patch("no-such-cert", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("CertificateNotFound"))
    );
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

// ---- 6. The 403s of a vault's network rules ----

#[tokio::test]
async fn network_rules_refuse_with_key_vaults_firewall_and_private_link_403s() {
    let (emulator, identity) = start().await;
    emulator.set_secret(VAULT, "db", value("s3cret")).unwrap();
    let client = sdk(&emulator, VAULT, ".vault.azure.net");
    let who = format!(
        "Caller: appid={};oid={};iss=https://sts.windows.net/{}/\r\nVault: {VAULT};location=local",
        identity.client_id,
        identity.object_id,
        emulator.default_tenant()
    );

    let forbidden = |message: String, inner: &str| {
        let body = json!({"error": {"code": "Forbidden", "message": message, "innererror": {"code": inner}}});
        (403, body)
    };
    // The status and the body are compared, not the SDK's `error_code`: it reads the body's
    // code only when the message has no escapes, and Key Vault's 403 messages hold `\r\n`, so it
    // falls back to the status for them (with the local vault as with Key Vault).
    emulator.deny_network(VAULT, NetworkDenial::ForbiddenByFirewall);
    let err = client.get_secret("db", None).await.unwrap_err();
    assert_eq!(
        error_answer(&err),
        forbidden(
            format!(
                "Client address is not authorized and caller is not a trusted service.\r\nClient address: 127.0.0.1\r\n{who}"
            ),
            "ForbiddenByFirewall"
        )
    );
    // Whatever the caller's roles, and lists too.
    let listed = client
        .list_secret_properties(None)
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(
        error_answer(&listed).1["error"]["innererror"]["code"],
        "ForbiddenByFirewall"
    );
    // Without a token, the challenge still comes first: the 403 names the caller.
    let challenge = http(&emulator, &[VAULT])
        .get(format!(
            "{}/secrets/db?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 401);

    // The private-link variant, set through the HTTP admin API.
    let set = http(&emulator, &[])
        .put(format!(
            "{}/_emulator/faults/{VAULT}",
            emulator.authority_host()
        ))
        .json(&json!({"networkDenial": "ForbiddenByConnection"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(
        set.json::<Value>().await.unwrap()["networkDenial"],
        "ForbiddenByConnection"
    );
    let err = client.get_secret("db", None).await.unwrap_err();
    assert_eq!(
        error_answer(&err),
        forbidden(
            format!(
                "Public network access is disabled and request is not from a trusted service nor via an approved private link.\r\n{who}"
            ),
            "ForbiddenByConnection"
        )
    );

    emulator.clear_faults(VAULT);
    let secret = client
        .get_secret("db", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(
        secret.value.as_deref() == Some("s3cret"),
        "the value differs"
    );
}

// ---- 5. Entra ID ----

/// The first line of an Entra error's description (the rest is trace id, correlation id and
/// timestamp).
fn aadsts(body: &Value) -> &str {
    body["error_description"]
        .as_str()
        .unwrap()
        .split("\r\n")
        .next()
        .unwrap()
}

#[tokio::test]
async fn entra_refuses_client_assertions_in_its_own_words() {
    let (emulator, _) = start().await;
    let tenant = emulator.default_tenant();
    // An app certificate with a known validity, which AADSTS700027 names.
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.not_before = time::macros::datetime!(2026-01-02 03:04:05 UTC);
    params.not_after = time::macros::datetime!(2030-06-07 08:09:10 UTC);
    let cert = params.self_signed(&key).unwrap();
    let mut app = emulator
        .register_app(AppSpec {
            display_name: Some("words".into()),
            certificate_pem: Some(cert.pem()),
            ..AppSpec::default()
        })
        .unwrap();
    app.private_key_pem = Some(key.serialize_pem());
    let url = token_url(&emulator, &tenant);
    let refused = async |jwt: &str| {
        let (status, body) = request_token(&emulator, &tenant, &app.client_id, jwt).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        body
    };

    // Another audience: AADSTS700023.
    let body = refused(&assertion(
        &app,
        "RS256",
        "https://elsewhere/token",
        json!({}),
    ))
    .await;
    assert_eq!(body["error_codes"], json!([700023]));
    assert_eq!(
        aadsts(&body),
        "AADSTS700023: Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials."
    );

    // Claims changed after signing: the key is found, the signature fails, and Entra names the
    // key by its hex thumbprint and validity.
    let signed = assertion(&app, "RS256", &url, json!({}));
    let parts: Vec<&str> = signed.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(br#"{"aud":"x"}"#),
        parts[2]
    );
    let body = refused(&tampered).await;
    assert_eq!(body["error_codes"], json!([700027]));
    let client_id = &app.client_id;
    assert_eq!(
        aadsts(&body),
        format!(
            "AADSTS700027: Client assertion failed signature validation. [Reason - Key was found, but use of the key to verify the signature failed., Thumbprint of key used by client: '{}', Found key 'Start=01/02/2026 03:04:05, End=06/07/2030 08:09:10', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/{client_id}']",
            app.thumbprint
        )
    );

    // A key the app does not have: named the same way.
    let stranger = emulator.register_app(AppSpec::default()).unwrap();
    let mut borrowed = stranger.clone();
    borrowed.client_id = app.client_id.clone();
    let body = refused(&assertion(&borrowed, "RS256", &url, json!({}))).await;
    assert!(
        aadsts(&body).starts_with(&format!(
            "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}', Please visit",
            stranger.thumbprint
        )),
        "{body}"
    );

    // Expired: the times in ISO-8601, as Entra writes them.
    let body = refused(&assertion(
        &app,
        "RS256",
        &url,
        json!({"nbf": 1_577_836_800, "exp": 1_577_840_400}),
    ))
    .await;
    assert_eq!(body["error_codes"], json!([700024]));
    let line = aadsts(&body);
    let current = line
        .strip_prefix("AADSTS700024: Client assertion is not within its valid time range. Current time: ")
        .and_then(|rest| rest.strip_suffix(", assertion valid from 2020-01-01T00:00:00.0000000Z, expiry time of assertion 2020-01-01T01:00:00.0000000Z. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials ."))
        .unwrap_or_else(|| panic!("{line}"));
    let current =
        time::OffsetDateTime::parse(current, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert!((time::OffsetDateTime::now_utc() - current).abs() < time::Duration::minutes(1));
    assert_eq!(current.nanosecond(), 0, "{line}");
}

#[tokio::test]
async fn discovery_for_an_unknown_tenant_fails_with_invalid_tenant() {
    let (emulator, _) = start().await;
    let client = http(&emulator, &[]);
    let discover = async |tenant: &str| {
        json_answer(client.get(format!(
            "{}/{tenant}/v2.0/.well-known/openid-configuration",
            emulator.authority_host()
        )))
        .await
    };

    let (status, body) = discover("no-such-tenant").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_tenant");
    assert_eq!(body["error_codes"], json!([90002]));
    assert_eq!(
        body["error_uri"],
        "https://login.microsoftonline.com/error?code=90002"
    );
    assert_eq!(
        aadsts(&body),
        "AADSTS90002: Tenant 'no-such-tenant' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }

    // The tenants the local vault knows, and Entra's multi-tenant aliases.
    let tenant = emulator.default_tenant();
    let (status, body) = discover(&tenant).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["token_endpoint"],
        format!("{}/{tenant}/oauth2/v2.0/token", emulator.authority_host())
    );
    for alias in ["common", "organizations"] {
        assert_eq!(discover(alias).await.0, 200, "{alias}");
    }
}
