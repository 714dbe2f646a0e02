//! The vault client (official SDK + akvvm's transport and credentials) against real stand-ins:
//! Key Vault over https on 127.0.0.1:0 (reached through a host override), IMDS over http and
//! Entra over https.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akvvm::http::{HostOverride, HttpOptions};
use akvvm::identity::{
    BootstrapCertificate, BootstrapCertificateCredential, BootstrapOptions, Identity,
    IdentityError, ManagedIdentityCredential, ManagedIdentityOptions,
};
use akvvm::settings::MsiEndpoint;
use akvvm::vault::{VaultClient, VaultError, VaultOptions};
use akvvm_testkit::servers::{
    Counter, TestCa, fast_retry, rsa_client_cert, serve_http, serve_https, serve_https_counted,
};
use axum::Router;
use axum::extract::{Path as AxumPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use url::Url;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const VAULT_HOST: &str = "myvault.vault.azure.net";
const USER_ASSIGNED: &str = "c7373ae5-91c2-4165-8ab6-7381d6e75619";

#[derive(Clone)]
struct KeyVault {
    resource: &'static str,
    accepted_tokens: Arc<Vec<String>>,
    unauthenticated: Counter,
    authorization_headers: Arc<Mutex<Vec<String>>>,
    attempts: Arc<Mutex<HashMap<String, usize>>>,
}

fn kv_error(status: u16, code: &str, message: &str, inner: Option<&str>) -> Response {
    let mut error = json!({ "code": code, "message": message });
    if let Some(inner) = inner {
        error["innererror"] = json!({ "code": inner });
    }
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({ "error": error })),
    )
        .into_response()
}

fn challenge(resource: &str) -> Response {
    let mut response = kv_error(
        401,
        "Unauthorized",
        "AKV10000: Request is missing a Bearer or PoP token.",
        None,
    );
    response.headers_mut().insert(
        "www-authenticate",
        format!(
            r#"Bearer authorization="https://login.windows.net/{TENANT}", resource="{resource}""#
        )
        .parse()
        .unwrap(),
    );
    response
}

fn secret_document(name: &str, version: &str) -> Response {
    axum::Json(json!({
        "value": "-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n",
        "contentType": "application/x-pem-file",
        "id": format!("https://{VAULT_HOST}/secrets/{name}/{version}"),
        "managed": true,
        "kid": format!("https://{VAULT_HOST}/keys/{name}/{version}"),
        "attributes": {
            "enabled": true,
            "nbf": 1_700_000_000,
            "exp": 1_800_000_000,
            "created": 1_700_000_100,
            "updated": 1_700_000_200,
            "recoveryLevel": "Recoverable+Purgeable"
        },
        "tags": { "owner": "web-team" }
    }))
    .into_response()
}

async fn secrets(
    State(kv): State<KeyVault>,
    AxumPath(rest): AxumPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(authorization) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        kv.unauthenticated.bump();
        return challenge(kv.resource);
    };
    kv.authorization_headers
        .lock()
        .unwrap()
        .push(authorization.clone());
    let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
    if !kv.accepted_tokens.iter().any(|t| t == token) {
        return challenge(kv.resource);
    }
    let mut parts = rest.split('/').filter(|s| !s.is_empty());
    let name = parts.next().unwrap_or_default().to_owned();
    let version = parts.next().map(str::to_owned);
    let attempt = {
        let mut attempts = kv.attempts.lock().unwrap();
        let n = attempts.entry(name.clone()).or_default();
        *n += 1;
        *n
    };
    match name.as_str() {
        "web" => secret_document("web", version.as_deref().unwrap_or("0123abcd")),
        "denied" => kv_error(
            403,
            "Forbidden",
            "Caller is not authorized to perform action on resource.",
            Some("ForbiddenByRbac"),
        ),
        "missing" => kv_error(
            404,
            "SecretNotFound",
            "A secret with (name/id) missing was not found in this key vault.",
            None,
        ),
        "disabled" => kv_error(
            403,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            Some("SecretDisabled"),
        ),
        "busy" if attempt == 1 => {
            let mut response = kv_error(
                429,
                "Throttled",
                "Request was not processed because too many requests were received.",
                None,
            );
            response
                .headers_mut()
                .insert("retry-after", "1".parse().unwrap());
            response
        }
        "busy" => secret_document("busy", "v2"),
        "throttled" => kv_error(429, "Throttled", "Too many requests.", None),
        // A hostile or broken server: an answer of 16 MiB (streamed, never held whole here).
        "huge" => {
            let chunk = hyper::body::Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures::stream::iter(
                std::iter::repeat_n(chunk, 256).map(Ok::<_, std::convert::Infallible>),
            );
            (
                [("content-type", "application/json")],
                axum::body::Body::from_stream(stream),
            )
                .into_response()
        }
        "flaky" if attempt == 1 => kv_error(500, "InternalError", "Transient.", None),
        "flaky" => secret_document("flaky", "v1"),
        "broken" => kv_error(503, "ServiceUnavailable", "Down for maintenance.", None),
        "badreq" => kv_error(400, "BadParameter", "Bad parameter.", None),
        "noid" => {
            axum::Json(json!({ "value": "v", "attributes": { "enabled": true } })).into_response()
        }
        "notjson" => "<html>proxy error page</html>".into_response(),
        "unauth" => challenge(kv.resource),
        _ => kv_error(404, "SecretNotFound", "No such secret.", None),
    }
}

async fn key_vault(
    ca: &TestCa,
    resource: &'static str,
    tokens: &[&str],
) -> (std::net::SocketAddr, KeyVault) {
    key_vault_counted(ca, resource, tokens, Counter::default()).await
}

async fn key_vault_counted(
    ca: &TestCa,
    resource: &'static str,
    tokens: &[&str],
    connections: Counter,
) -> (std::net::SocketAddr, KeyVault) {
    let kv = KeyVault {
        resource,
        accepted_tokens: Arc::new(tokens.iter().map(|t| t.to_string()).collect()),
        unauthenticated: Counter::default(),
        authorization_headers: Arc::default(),
        attempts: Arc::default(),
    };
    let router = Router::new()
        .route("/secrets/{*rest}", get(secrets))
        .with_state(kv.clone());
    let addr = serve_https_counted(router, ca, &[VAULT_HOST], connections).await;
    (addr, kv)
}

#[derive(Clone, Default)]
struct Imds {
    calls: Counter,
    fail: bool,
    /// Hand out `mi-token-1`, `mi-token-2`, … instead of `mi-token`.
    rotating: bool,
}

async fn imds_token(State(imds): State<Imds>) -> Response {
    let n = imds.calls.bump();
    if imds.fail {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "invalid_request", "error_description": "Identity not found"}),
            ),
        )
            .into_response();
    }
    axum::Json(json!({
        "access_token": if imds.rotating { format!("mi-token-{n}") } else { "mi-token".to_owned() },
        "expires_in": "3599",
        "expires_on": (time::OffsetDateTime::now_utc().unix_timestamp() + 3599).to_string(),
        "resource": "https://vault.azure.net",
        "token_type": "Bearer"
    }))
    .into_response()
}

async fn imds(fail: bool) -> (Url, Imds) {
    imds_with(Imds {
        fail,
        ..Imds::default()
    })
    .await
}

async fn imds_with(imds: Imds) -> (Url, Imds) {
    let router = Router::new()
        .route("/metadata/identity/oauth2/token", get(imds_token))
        .with_state(imds.clone());
    let addr = serve_http(router).await;
    (
        Url::parse(&format!("http://{addr}/metadata/identity")).unwrap(),
        imds,
    )
}

fn http_options(ca: &TestCa, vault_addr: std::net::SocketAddr) -> HttpOptions {
    HttpOptions {
        extra_ca_pems: vec![ca.pem.clone()],
        host_overrides: vec![HostOverride::parse(VAULT_HOST, &vault_addr.to_string()).unwrap()],
        ..HttpOptions::default()
    }
}

fn managed(endpoint: &Url, client_id: Option<&str>) -> Identity {
    Identity::Managed(Arc::new(
        ManagedIdentityCredential::new(
            &MsiEndpoint::new(endpoint),
            client_id,
            &HttpOptions::default(),
            ManagedIdentityOptions {
                retry: fast_retry(&[404, 410, 429], 2),
                ..ManagedIdentityOptions::default()
            },
        )
        .unwrap(),
    ))
}

fn vault_client(identity: &Identity, http: HttpOptions, max_attempts: u32) -> VaultClient {
    vault_client_with(identity, http, max_attempts, false)
}

fn vault_client_with(
    identity: &Identity,
    http: HttpOptions,
    max_attempts: u32,
    preauthenticate: bool,
) -> VaultClient {
    VaultClient::new(
        &Url::parse(&format!("https://{VAULT_HOST}")).unwrap(),
        identity,
        &VaultOptions {
            http,
            retry: fast_retry(&[429], max_attempts),
            api_version: None,
            metrics: None,
            preauthenticate,
        },
    )
    .unwrap()
}

/// Compares the `Authorization` headers the vault received; a failure shows how many there were,
/// never the tokens.
#[track_caller]
fn assert_headers(kv: &KeyVault, expected: Vec<String>) {
    let got = kv.authorization_headers.lock().unwrap();
    assert!(
        *got == expected,
        "the vault received {} Authorization headers, not the {} expected (tokens not shown)",
        got.len(),
        expected.len()
    );
}

#[tokio::test]
async fn latest_and_pinned_versions_are_read_after_the_challenge() {
    let ca = TestCa::new();
    let (vault_addr, kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token"]).await;
    let (imds_url, imds) = imds(false).await;
    let identity = managed(&imds_url, None);
    let client = vault_client(&identity, http_options(&ca, vault_addr), 3);

    let bundle = client.get_latest("web").await.unwrap();
    assert_eq!(bundle.name, "web");
    assert_eq!(bundle.version, "0123abcd");
    assert_eq!(
        bundle.id,
        format!("https://{VAULT_HOST}/secrets/web/0123abcd")
    );
    assert!(bundle.value.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        bundle.content_type.as_deref(),
        Some("application/x-pem-file")
    );
    assert_eq!(bundle.enabled, Some(true));
    assert_eq!(bundle.managed, Some(true));
    assert_eq!(
        bundle.key_id.as_deref(),
        Some("https://myvault.vault.azure.net/keys/web/0123abcd")
    );
    assert_eq!(bundle.not_before.unwrap().unix_timestamp(), 1_700_000_000);
    assert_eq!(bundle.expires.unwrap().unix_timestamp(), 1_800_000_000);
    assert_eq!(bundle.created.unwrap().unix_timestamp(), 1_700_000_100);
    assert_eq!(bundle.updated.unwrap().unix_timestamp(), 1_700_000_200);
    assert_eq!(
        bundle.tags.get("owner").map(String::as_str),
        Some("web-team")
    );
    assert!(!format!("{bundle:?}").contains("not really"));

    let pinned = client.get_version("web", "fedc9876").await.unwrap();
    assert_eq!(pinned.version, "fedc9876");

    // One unauthenticated request drew the challenge; the token was fetched once and reused.
    assert_eq!(kv.unauthenticated.get(), 1);
    assert_eq!(imds.calls.get(), 1);
    assert_headers(
        &kv,
        vec!["Bearer mi-token".to_owned(), "Bearer mi-token".to_owned()],
    );
    assert_eq!(client.tenant().as_deref(), Some(TENANT));
}

#[tokio::test]
async fn no_token_goes_to_a_host_outside_the_challenge_resource() {
    let ca = TestCa::new();
    // The vault claims to be another cloud's: its host does not end with ".vault.other.net".
    let (vault_addr, kv) = key_vault(&ca, "https://vault.other.net", &["mi-token"]).await;
    let (imds_url, imds) = imds(false).await;
    let client = vault_client(&managed(&imds_url, None), http_options(&ca, vault_addr), 3);
    let err = client.get_latest("web").await.unwrap_err();
    assert_eq!(err.code(), "vault.challenge_refused", "{err}");
    assert!(err.to_string().contains("vault.other.net"), "{err}");
    assert_eq!(kv.unauthenticated.get(), 1);
    assert!(kv.authorization_headers.lock().unwrap().is_empty());
    assert_eq!(imds.calls.get(), 0, "no token was even requested");
    assert_eq!(
        client.tenant(),
        None,
        "the tenant of a foreign challenge is not kept"
    );
}

#[tokio::test]
async fn plain_http_vault_urls_are_refused() {
    let (imds_url, _imds) = imds(false).await;
    let err = VaultClient::new(
        &Url::parse("http://myvault.vault.azure.net").unwrap(),
        &managed(&imds_url, None),
        &VaultOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "vault.url_invalid");
    assert!(err.to_string().contains("https"), "{err}");
}

#[tokio::test]
async fn http_errors_map_to_variants_naming_identity_vault_and_right() {
    let ca = TestCa::new();
    let (vault_addr, kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token"]).await;
    let (imds_url, _imds) = imds(false).await;
    let identity = managed(&imds_url, Some(USER_ASSIGNED));
    let client = vault_client(&identity, http_options(&ca, vault_addr), 3);

    let err = client.get_latest("denied").await.unwrap_err();
    assert!(matches!(err, VaultError::Forbidden { .. }), "{err}");
    assert_eq!(err.code(), "vault.forbidden");
    let message = err.to_string();
    for needle in [
        USER_ASSIGNED,
        "user-assigned managed identity",
        VAULT_HOST,
        "denied",
        "Key Vault Secrets User",
        "get and list on secrets",
        "HTTP 403",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from {message}"
        );
    }

    let err = client.get_latest("unauth").await.unwrap_err();
    assert_eq!(err.code(), "vault.unauthorized", "{err}");
    let message = err.to_string();
    assert!(message.contains(USER_ASSIGNED), "{message}");
    assert!(message.contains(VAULT_HOST), "{message}");
    assert!(message.contains("Key Vault Secrets User"), "{message}");

    let err = client.get_latest("missing").await.unwrap_err();
    assert_eq!(err.code(), "vault.secret_not_found", "{err}");
    assert!(err.to_string().contains("missing was not found"), "{err}");
    let err = client.get_version("missing", "abc").await.unwrap_err();
    assert!(err.to_string().contains("version abc"), "{err}");

    let err = client.get_latest("disabled").await.unwrap_err();
    assert_eq!(err.code(), "vault.secret_disabled", "{err}");
    assert!(err.to_string().contains("disabled"), "{err}");
    assert!(!err.to_string().contains("Key Vault Secrets User"), "{err}");

    let err = client.get_latest("throttled").await.unwrap_err();
    assert_eq!(err.code(), "vault.throttled", "{err}");
    assert!(err.is_transient());

    let err = client.get_latest("broken").await.unwrap_err();
    assert!(
        matches!(err, VaultError::Server { status: 503, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Down for maintenance"), "{err}");

    let err = client.get_latest("badreq").await.unwrap_err();
    assert!(
        matches!(err, VaultError::UnexpectedStatus { status: 400, .. }),
        "{err}"
    );

    // 429 and 503 were retried up to the policy's three attempts; 4xx were not retried.
    let attempts = kv.attempts.lock().unwrap().clone();
    assert_eq!(attempts["throttled"], 3);
    assert_eq!(attempts["broken"], 3);
    assert_eq!(attempts["denied"], 1);
    assert_eq!(attempts["missing"], 2);
    assert_eq!(attempts["badreq"], 1);
}

#[tokio::test]
async fn throttling_with_retry_after_and_a_5xx_burst_recover() {
    let ca = TestCa::new();
    let (vault_addr, kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token"]).await;
    let (imds_url, _imds) = imds(false).await;
    let client = vault_client(&managed(&imds_url, None), http_options(&ca, vault_addr), 3);

    let started = Instant::now();
    let bundle = client.get_latest("busy").await.unwrap();
    let waited = started.elapsed();
    assert_eq!(bundle.version, "v2");
    // The policy's own backoff is at most 20 ms; a second is Retry-After's.
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );

    let bundle = client.get_latest("flaky").await.unwrap();
    assert_eq!(bundle.version, "v1");
    let attempts = kv.attempts.lock().unwrap().clone();
    assert_eq!(attempts["busy"], 2);
    assert_eq!(attempts["flaky"], 2);
}

#[tokio::test]
async fn token_failure_is_an_auth_error_with_the_imds_message() {
    let ca = TestCa::new();
    let (vault_addr, kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token"]).await;
    let (imds_url, _imds) = imds(true).await;
    let client = vault_client(
        &managed(&imds_url, Some(USER_ASSIGNED)),
        http_options(&ca, vault_addr),
        3,
    );
    let err = client.get_latest("web").await.unwrap_err();
    match &err {
        VaultError::Auth { source, .. } => {
            assert!(
                matches!(**source, IdentityError::Imds { status: 400, .. }),
                "{source}"
            );
            // The identity error's own code passes through.
            assert_eq!(err.code(), source.code(), "{err}");
        }
        other => panic!("expected Auth, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("Identity not found"), "{message}");
    assert!(message.contains(USER_ASSIGNED), "{message}");
    assert!(kv.authorization_headers.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unreachable_vault_is_a_transport_error() {
    let ca = TestCa::new();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (imds_url, _imds) = imds(false).await;
    let client = vault_client(
        &managed(&imds_url, None),
        http_options(&ca, format!("127.0.0.1:{port}").parse().unwrap()),
        2,
    );
    let err = client.get_latest("web").await.unwrap_err();
    assert_eq!(err.code(), "vault.unreachable", "{err}");
    assert!(err.is_transient());
    assert!(err.to_string().contains(VAULT_HOST), "{err}");
}

#[tokio::test]
async fn untrusted_vault_certificate_is_refused() {
    let ca = TestCa::new();
    let (vault_addr, kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token"]).await;
    let (imds_url, _imds) = imds(false).await;
    // No extra CA root: the stand-in's certificate is not trusted.
    let http = HttpOptions {
        host_overrides: vec![HostOverride::parse(VAULT_HOST, &vault_addr.to_string()).unwrap()],
        ..HttpOptions::default()
    };
    let client = vault_client(&managed(&imds_url, None), http, 1);
    let err = client.get_latest("web").await.unwrap_err();
    assert_eq!(err.code(), "vault.unreachable", "{err}");
    assert_eq!(kv.unauthenticated.get(), 0);
}

#[derive(Clone, Default)]
struct Entra {
    tenants: Arc<Mutex<Vec<String>>>,
}

async fn entra_token(State(entra): State<Entra>, AxumPath(tenant): AxumPath<String>) -> Response {
    entra.tenants.lock().unwrap().push(tenant.clone());
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": 86399,
        "access_token": format!("entra-token-for-{tenant}")
    }))
    .into_response()
}

#[tokio::test]
async fn bootstrap_identity_learns_its_tenant_from_the_challenge() {
    let ca = TestCa::new();
    let entra_token_value = format!("entra-token-for-{TENANT}");
    let (vault_addr, kv) = key_vault(
        &ca,
        "https://vault.azure.net",
        &[entra_token_value.as_str()],
    )
    .await;
    let entra = Entra::default();
    let entra_addr = serve_https(
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(entra_token))
            .with_state(entra.clone()),
        &ca,
        &["login.test.example"],
    )
    .await;
    let mut http = http_options(&ca, vault_addr);
    http.host_overrides
        .push(HostOverride::parse("login.test.example", &entra_addr.to_string()).unwrap());

    let now = time::OffsetDateTime::now_utc();
    let (cert_pem, key_pem) = rsa_client_cert(
        "bootstrap",
        now - time::Duration::days(1),
        now + time::Duration::days(30),
    );
    let certificate =
        BootstrapCertificate::from_pem(std::path::Path::new("inline"), &cert_pem, &key_pem)
            .unwrap();
    let credential = BootstrapCertificateCredential::new(
        &Url::parse("https://login.test.example").unwrap(),
        "11111111-2222-3333-4444-555555555555",
        certificate,
        &http,
        BootstrapOptions::default(),
    )
    .unwrap();
    let identity = Identity::Bootstrap(Arc::new(credential));
    assert!(
        identity
            .describe()
            .contains("11111111-2222-3333-4444-555555555555")
    );
    let client = vault_client(&identity, http, 3);
    let bundle = client.get_latest("web").await.unwrap();
    assert_eq!(bundle.version, "0123abcd");
    assert_eq!(*entra.tenants.lock().unwrap(), vec![TENANT.to_owned()]);
    assert_headers(&kv, vec![format!("Bearer {entra_token_value}")]);
}

/// The testkit's CONNECT proxy, with its URL parsed.
async fn connect_proxy(upstream: std::net::SocketAddr) -> (Url, Arc<Mutex<Vec<String>>>) {
    let (url, targets) = akvvm_testkit::proxy::connect_proxy(upstream).await;
    (Url::parse(&url).unwrap(), targets)
}

#[tokio::test]
async fn https_through_a_proxy_keeps_the_extra_roots_and_imds_stays_direct() {
    let ca = TestCa::new();
    let (vault_addr, kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token"]).await;
    let (proxy_url, targets) = connect_proxy(vault_addr).await;
    // No host override: only the proxy knows where the vault is.
    let http = HttpOptions {
        extra_ca_pems: vec![ca.pem.clone()],
        proxy: akvvm::http::ProxyMode::Explicit {
            url: proxy_url.to_string(),
            no_proxy: None,
        },
        ..HttpOptions::default()
    };
    let (imds_url, imds) = imds(false).await;
    // The IMDS credential gets the same options, proxy included, and must ignore the proxy.
    let identity = Identity::Managed(Arc::new(
        ManagedIdentityCredential::new(
            &MsiEndpoint::new(&imds_url),
            None,
            &http,
            ManagedIdentityOptions {
                retry: fast_retry(&[404, 410, 429], 1),
                ..ManagedIdentityOptions::default()
            },
        )
        .unwrap(),
    ));
    let client = vault_client(&identity, http, 1);
    let bundle = client.get_latest("web").await.unwrap();
    assert_eq!(bundle.version, "0123abcd");
    assert_eq!(imds.calls.get(), 1);
    let targets = targets.lock().unwrap().clone();
    assert!(!targets.is_empty());
    assert!(
        targets.iter().all(|t| t == &format!("{VAULT_HOST}:443")),
        "{targets:?}"
    );
    assert_eq!(kv.authorization_headers.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn no_proxy_hosts_bypass_the_proxy() {
    let ca = TestCa::new();
    let (vault_addr, _kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token"]).await;
    let (proxy_url, targets) = connect_proxy(vault_addr).await;
    let http = HttpOptions {
        proxy: akvvm::http::ProxyMode::Explicit {
            url: proxy_url.to_string(),
            no_proxy: Some(".vault.azure.net".to_owned()),
        },
        ..http_options(&ca, vault_addr)
    };
    let (imds_url, _imds) = imds(false).await;
    let client = vault_client(&managed(&imds_url, None), http, 1);
    client.get_latest("web").await.unwrap();
    assert!(targets.lock().unwrap().is_empty());
}

#[tokio::test]
async fn answers_that_are_not_secrets_are_invalid_responses() {
    let ca = TestCa::new();
    let (vault_addr, _kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token"]).await;
    let (imds_url, _imds) = imds(false).await;
    let client = vault_client(&managed(&imds_url, None), http_options(&ca, vault_addr), 1);
    for name in ["noid", "notjson"] {
        let err = client.get_latest(name).await.unwrap_err();
        assert_eq!(err.code(), "vault.response_invalid", "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[tokio::test]
async fn unusable_http_options_are_a_client_error() {
    let (imds_url, _imds) = imds(false).await;
    let dir = tempfile::tempdir().unwrap();
    let bad_root = dir.path().join("roots.pem");
    std::fs::write(&bad_root, "no certificate here").unwrap();
    let err = VaultClient::new(
        &Url::parse(&format!("https://{VAULT_HOST}")).unwrap(),
        &managed(&imds_url, None),
        &VaultOptions {
            http: HttpOptions {
                extra_ca_files: vec![bad_root.clone()],
                ..HttpOptions::default()
            },
            ..VaultOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.code(), "http.ca_root_invalid", "{err}");
    assert!(
        err.to_string().contains(&bad_root.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_token_is_not_presented_again() {
    let ca = TestCa::new();
    // The vault only accepts the second token IMDS hands out.
    let (vault_addr, kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token-2"]).await;
    let (imds_url, imds) = imds_with(Imds {
        rotating: true,
        ..Imds::default()
    })
    .await;
    let client = vault_client(&managed(&imds_url, None), http_options(&ca, vault_addr), 1);
    let err = client.get_latest("web").await.unwrap_err();
    assert_eq!(err.code(), "vault.unauthorized", "{err}");
    let bundle = client.get_latest("web").await.unwrap();
    assert_eq!(bundle.version, "0123abcd");
    assert_eq!(imds.calls.get(), 2);
    // The SDK's own per-client cache presents the refused token once more; its 401 leads to a
    // new token within the same call (without akvvm forgetting the token, the credential would
    // hand out mi-token-1 again until it expired).
    assert_headers(
        &kv,
        vec![
            "Bearer mi-token-1".to_owned(),
            "Bearer mi-token-1".to_owned(),
            "Bearer mi-token-2".to_owned(),
        ],
    );
}

#[tokio::test]
async fn one_connection_serves_every_request_to_a_vault() {
    let ca = TestCa::new();
    let connections = Counter::default();
    let (vault_addr, kv) = key_vault_counted(
        &ca,
        "https://vault.azure.net",
        &["mi-token"],
        connections.clone(),
    )
    .await;
    let (imds_url, _imds) = imds(false).await;
    let client = vault_client(&managed(&imds_url, None), http_options(&ca, vault_addr), 1);
    for _ in 0..5 {
        client.get_latest("web").await.unwrap();
    }
    assert_eq!(kv.authorization_headers.lock().unwrap().len(), 5);
    assert_eq!(connections.get(), 1, "the pooled connection is reused");
}

#[tokio::test]
async fn concurrent_reads_share_one_client_and_one_token() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<VaultClient>();
    assert_send_sync::<Identity>();

    let ca = TestCa::new();
    let (vault_addr, kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token"]).await;
    let (imds_url, imds) = imds(false).await;
    let client = Arc::new(vault_client(
        &managed(&imds_url, None),
        http_options(&ca, vault_addr),
        1,
    ));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_latest("web").await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().version, "0123abcd");
    }
    assert_eq!(
        imds.calls.get(),
        1,
        "concurrent challenges share one token request"
    );
    assert_eq!(kv.authorization_headers.lock().unwrap().len(), 20);
}

/// No answer is read past [`akvvm::http::MAX_BODY_BYTES`]: not Key Vault's through the SDK,
/// not a token endpoint's.
#[tokio::test]
async fn huge_answers_are_refused_at_the_cap() {
    let ca = TestCa::new();
    let (vault_addr, _kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token"]).await;
    let (imds_url, _imds) = imds(false).await;
    let identity = managed(&imds_url, None);
    let client = vault_client(&identity, http_options(&ca, vault_addr), 1);
    let error = client.get_latest("huge").await.unwrap_err();
    assert!(
        error.to_string().contains("larger than 1048576 bytes"),
        "{error}"
    );
    // The regular secret still reads: the cap is per answer.
    client.get_latest("web").await.unwrap();

    // A token endpoint that answers with 16 MiB.
    let router = Router::new().route(
        "/metadata/identity/oauth2/token",
        get(|| async { vec![b'{'; 16 * 1024 * 1024] }),
    );
    let addr = serve_http(router).await;
    let endpoint = Url::parse(&format!("http://{addr}/metadata/identity")).unwrap();
    let Identity::Managed(credential) = managed(&endpoint, None) else {
        unreachable!()
    };
    let error = credential
        .token_for_resource("https://vault.azure.net")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("larger than 1048576 bytes"),
        "{error}"
    );
}

#[tokio::test]
async fn a_known_cloud_gets_its_token_with_the_first_request() {
    let ca = TestCa::new();
    let (vault_addr, kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token"]).await;
    let (imds_url, imds) = imds(false).await;
    let client = vault_client_with(
        &managed(&imds_url, None),
        http_options(&ca, vault_addr),
        3,
        true,
    );
    client.get_latest("web").await.unwrap();
    client.get_version("web", "fedc9876").await.unwrap();
    // No challenge round trip: every request carried the token, fetched once.
    assert_eq!(kv.unauthenticated.get(), 0);
    assert_eq!(imds.calls.get(), 1);
    assert_headers(
        &kv,
        vec!["Bearer mi-token".to_owned(), "Bearer mi-token".to_owned()],
    );
}

#[tokio::test]
async fn a_refused_pre_authentication_falls_back_to_the_challenge() {
    let ca = TestCa::new();
    // The vault refuses the first token: the request meets the challenge as without
    // pre-authentication, and later requests follow the challenge's path.
    let (vault_addr, kv) = key_vault(&ca, "https://vault.azure.net", &["mi-token-2"]).await;
    let (imds_url, imds) = imds_with(Imds {
        rotating: true,
        ..Imds::default()
    })
    .await;
    let client = vault_client_with(
        &managed(&imds_url, None),
        http_options(&ca, vault_addr),
        1,
        true,
    );
    let bundle = client.get_latest("web").await.unwrap();
    assert_eq!(bundle.version, "0123abcd");
    client.get_latest("web").await.unwrap();
    assert_eq!(imds.calls.get(), 2);
    assert_headers(
        &kv,
        vec![
            "Bearer mi-token-1".to_owned(),
            "Bearer mi-token-2".to_owned(),
            "Bearer mi-token-2".to_owned(),
        ],
    );
    assert_eq!(client.tenant().as_deref(), Some(TENANT));
}
