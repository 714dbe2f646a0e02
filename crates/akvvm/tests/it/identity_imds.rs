//! The managed identity credential against a real IMDS stand-in on 127.0.0.1:0.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akvvm::http::{HttpError, HttpOptions};
use akvvm::identity::{
    IdentityError, KEY_VAULT_SCOPE, ManagedIdentityCredential, ManagedIdentityOptions,
};
use akvvm::settings::MsiEndpoint;
use akvvm_testkit::servers::{Counter, fast_retry, serve_http};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use azure_core::credentials::TokenCredential;
use serde_json::json;
use url::Url;

/// What the stand-in answers, in order; the last entry repeats.
#[derive(Clone)]
struct Script {
    answers: Arc<Vec<Answer>>,
    calls: Counter,
    seen: SeenRequests,
}

/// (query, Metadata header) of each request.
type SeenRequests = Arc<Mutex<Vec<(HashMap<String, String>, Option<String>)>>>;

#[derive(Clone)]
enum Answer {
    Token {
        value: &'static str,
        expires_in: &'static str,
    },
    Status(u16, Option<&'static str>),
    Error(u16, &'static str, &'static str),
}

async fn token_endpoint(
    State(script): State<Script>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let n = script.calls.bump();
    script.seen.lock().unwrap().push((
        query,
        headers
            .get("metadata")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    ));
    let answer = script
        .answers
        .get(n - 1)
        .or(script.answers.last())
        .unwrap()
        .clone();
    match answer {
        Answer::Token { value, expires_in } => {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let expires_on = now + expires_in.parse::<i64>().unwrap();
            axum::Json(json!({
                "access_token": value,
                "client_id": "c7373ae5-91c2-4165-8ab6-7381d6e75619",
                "expires_in": expires_in,
                "expires_on": expires_on.to_string(),
                "ext_expires_in": expires_in,
                "not_before": now.to_string(),
                "resource": "https://vault.azure.net",
                "token_type": "Bearer"
            }))
            .into_response()
        }
        Answer::Status(status, retry_after) => {
            let mut response = StatusCode::from_u16(status).unwrap().into_response();
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", value.parse().unwrap());
            }
            response
        }
        Answer::Error(status, error, description) => (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({ "error": error, "error_description": description })),
        )
            .into_response(),
    }
}

async fn imds(answers: Vec<Answer>) -> (Url, Script) {
    let script = Script {
        answers: Arc::new(answers),
        calls: Counter::default(),
        seen: Arc::default(),
    };
    let router = Router::new()
        .route("/metadata/identity/oauth2/token", get(token_endpoint))
        .with_state(script.clone());
    let addr = serve_http(router).await;
    (
        Url::parse(&format!("http://{addr}/metadata/identity")).unwrap(),
        script,
    )
}

fn credential(
    endpoint: &Url,
    client_id: Option<&str>,
    max_attempts: u32,
) -> ManagedIdentityCredential {
    ManagedIdentityCredential::new(
        &MsiEndpoint::new(endpoint),
        client_id,
        &HttpOptions::default(),
        ManagedIdentityOptions {
            retry: fast_retry(&[404, 410, 429], max_attempts),
            ..ManagedIdentityOptions::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn token_is_parsed_cached_and_requested_as_documented() {
    let (endpoint, script) = imds(vec![Answer::Token {
        value: "tok-system",
        expires_in: "3599",
    }])
    .await;
    let credential = credential(&endpoint, None, 3);
    let before = time::OffsetDateTime::now_utc();
    let first = credential
        .get_token(&[KEY_VAULT_SCOPE], None)
        .await
        .unwrap();
    let second = credential
        .get_token(&[KEY_VAULT_SCOPE], None)
        .await
        .unwrap();
    assert!(
        first.token.secret() == "tok-system",
        "not the expected token (not shown)"
    );
    assert!(
        second.token.secret() == "tok-system",
        "not the expected token (not shown)"
    );
    let lifetime = first.expires_on - before;
    assert!(
        lifetime > time::Duration::seconds(3590) && lifetime <= time::Duration::seconds(3600),
        "{lifetime}"
    );
    assert_eq!(
        script.calls.get(),
        1,
        "the second call is served from the cache"
    );

    let seen = script.seen.lock().unwrap();
    let (query, metadata) = &seen[0];
    assert_eq!(
        query.get("api-version").map(String::as_str),
        Some("2018-02-01")
    );
    assert_eq!(
        query.get("resource").map(String::as_str),
        Some("https://vault.azure.net")
    );
    assert_eq!(
        query.get("client_id"),
        None,
        "system-assigned sends no client_id"
    );
    assert_eq!(metadata.as_deref(), Some("true"));
}

#[tokio::test]
async fn msi_endpoint_with_oauth2_token_suffix_works_too() {
    let (endpoint, script) = imds(vec![Answer::Token {
        value: "t",
        expires_in: "3599",
    }])
    .await;
    let full = endpoint.join("identity/oauth2/token").unwrap();
    assert!(full.path().ends_with("/metadata/identity/oauth2/token"));
    credential(&full, None, 1)
        .get_token(&[KEY_VAULT_SCOPE], None)
        .await
        .unwrap();
    assert_eq!(script.calls.get(), 1);
}

#[tokio::test]
async fn user_assigned_client_id_is_passed() {
    let (endpoint, script) = imds(vec![Answer::Token {
        value: "tok-user",
        expires_in: "3599",
    }])
    .await;
    let credential = credential(&endpoint, Some("c7373ae5-91c2-4165-8ab6-7381d6e75619"), 3);
    let token = credential
        .get_token(&[KEY_VAULT_SCOPE], None)
        .await
        .unwrap();
    assert!(
        token.token.secret() == "tok-user",
        "not the expected token (not shown)"
    );
    let seen = script.seen.lock().unwrap();
    assert_eq!(
        seen[0].0.get("client_id").map(String::as_str),
        Some("c7373ae5-91c2-4165-8ab6-7381d6e75619")
    );
}

#[tokio::test]
async fn expiring_token_is_refreshed() {
    // A 2-second token is due for refresh at half its life.
    let (endpoint, script) = imds(vec![
        Answer::Token {
            value: "short",
            expires_in: "2",
        },
        Answer::Token {
            value: "renewed",
            expires_in: "3599",
        },
    ])
    .await;
    let credential = credential(&endpoint, None, 1);
    let first = credential
        .get_token(&[KEY_VAULT_SCOPE], None)
        .await
        .unwrap();
    assert!(
        first.token.secret() == "short",
        "not the expected token (not shown)"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = credential
        .get_token(&[KEY_VAULT_SCOPE], None)
        .await
        .unwrap();
    assert!(
        second.token.secret() == "renewed",
        "not the expected token (not shown)"
    );
    let third = credential
        .get_token(&[KEY_VAULT_SCOPE], None)
        .await
        .unwrap();
    assert!(
        third.token.secret() == "renewed",
        "not the expected token (not shown)"
    );
    assert_eq!(script.calls.get(), 2);
}

#[tokio::test]
async fn boot_time_503_and_404_are_retried_until_success() {
    let (endpoint, script) = imds(vec![
        Answer::Status(503, None),
        Answer::Error(404, "not_found", "Identity not ready"),
        Answer::Status(410, None),
        Answer::Token {
            value: "after-boot",
            expires_in: "3599",
        },
    ])
    .await;
    let token = credential(&endpoint, None, 5)
        .get_token(&[KEY_VAULT_SCOPE], None)
        .await
        .unwrap();
    assert!(
        token.token.secret() == "after-boot",
        "not the expected token (not shown)"
    );
    assert_eq!(script.calls.get(), 4);
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let (endpoint, script) = imds(vec![
        Answer::Status(429, Some("1")),
        Answer::Token {
            value: "patient",
            expires_in: "3599",
        },
    ])
    .await;
    let started = Instant::now();
    let token = credential(&endpoint, None, 3)
        .get_token(&[KEY_VAULT_SCOPE], None)
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        token.token.secret() == "patient",
        "not the expected token (not shown)"
    );
    assert_eq!(script.calls.get(), 2);
    // The policy's own backoff is at most 20 ms: a wait of a second is Retry-After's.
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
}

#[tokio::test]
async fn imds_error_document_is_reported_and_400_not_retried() {
    let (endpoint, script) = imds(vec![Answer::Error(
        400,
        "invalid_request",
        "Identity not found",
    )])
    .await;
    let credential = credential(&endpoint, Some("0000-unknown"), 5);
    let err = credential
        .token_for_resource("https://vault.azure.net")
        .await
        .unwrap_err();
    assert_eq!(script.calls.get(), 1, "400 is not retried");
    assert_eq!(err.code(), "identity.imds_refused");
    let message = err.to_string();
    assert!(
        message.contains("invalid_request: Identity not found"),
        "{message}"
    );
    assert!(message.contains("0000-unknown"), "{message}");
    assert!(message.contains("HTTP 400"), "{message}");
}

#[tokio::test]
async fn exhausted_retries_return_the_last_error() {
    let (endpoint, script) = imds(vec![Answer::Status(503, None)]).await;
    let err = credential(&endpoint, None, 3)
        .token_for_resource("https://vault.azure.net")
        .await
        .unwrap_err();
    assert_eq!(script.calls.get(), 3);
    assert!(
        matches!(err, IdentityError::Imds { status: 503, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_imds_is_a_transport_error() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = Url::parse(&format!("http://127.0.0.1:{port}/metadata/identity")).unwrap();
    let err = credential(&endpoint, None, 2)
        .token_for_resource("https://vault.azure.net")
        .await
        .unwrap_err();
    let IdentityError::Transport(inner) = &err else {
        panic!("not a transport error: {err}");
    };
    assert!(matches!(inner, HttpError::Send { .. }), "{inner}");
    // The HTTP error's own code passes through.
    assert_eq!(err.code(), inner.code());
    assert!(err.to_string().contains("2 attempt(s)"), "{err}");
}
