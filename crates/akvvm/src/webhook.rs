//! Push: an Event Grid webhook that syncs a certificate as soon as Key Vault announces a new
//! version, instead of at the next poll (`akvvm.webhook`). Polling stays as the safety net.
//!
//! Event Grid delivers to an HTTPS endpoint. akvvm serves one itself when `certificateFile`
//! names a PEM holding a certificate chain and its private key (for instance the stable link
//! of a certificate akvvm keeps: the file is read again when it changes), or plain HTTP for a
//! TLS-terminating proxy in front. Both Event Grid schemas are understood:
//!
//! - **Event Grid schema**: a JSON array of events with `eventType` and `data`. The subscription
//!   validation event (`Microsoft.EventGrid.SubscriptionValidationEvent`) is answered with its
//!   `validationResponse`.
//! - **CloudEvents 1.0**: one event (`application/cloudevents+json`) or an array
//!   (`application/cloudevents-batch+json`) with `type` and `data`. The validation handshake is
//!   the `OPTIONS` request with `WebHook-Request-Origin`, answered with `WebHook-Allowed-Origin`.
//!
//! `Microsoft.KeyVault.CertificateNewVersionCreated` and `SecretNewVersionCreated` events whose
//! `data.VaultName` and `data.ObjectName` name an observed certificate queue that certificate
//! for an immediate check ([`SyncRequests`]); other events are acknowledged and ignored, so
//! Event Grid does not retry them. With `secretFile`, a delivery must carry the secret as the
//! `key` query parameter (put it in the subscription's endpoint URL) or the `X-Akvvm-Key`
//! header; anything else is a 401.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::settings::{Settings, WebhookSettings};
use crate::sync::daemon::SyncRequests;

/// The Event Grid event that validates a new subscription.
pub const VALIDATION_EVENT: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";
/// The Key Vault events that mean "a new version exists".
pub const NEW_VERSION_EVENTS: [&str; 2] = [
    "Microsoft.KeyVault.CertificateNewVersionCreated",
    "Microsoft.KeyVault.SecretNewVersionCreated",
];

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "cannot read the webhook secret file {path}: {source}; create it (one line, the secret \
         Event Grid sends as ?key=) or remove akvvm.webhook.secretFile"
    )]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the webhook secret file {path} is empty; write the secret in it")]
    EmptySecret { path: PathBuf },
    #[error(
        "cannot use {path} as the webhook's TLS certificate: {reason}; it must be a PEM file \
         with the certificate chain and its private key (a file akvvm installs will do)"
    )]
    Certificate { path: PathBuf, reason: String },
    #[error("cannot listen for webhook deliveries on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// The secret file could be read or written by someone but root.
    #[error(transparent)]
    Untrusted(#[from] crate::trusted::Untrusted),
}

akvvm_cert::error_codes! {
    WebhookError {
        WebhookError::Secret { .. } => "webhook.secret_unreadable",
        WebhookError::EmptySecret { .. } => "webhook.secret_empty",
        WebhookError::Certificate { .. } => "webhook.certificate_invalid",
        WebhookError::Listen { .. } => "webhook.listen_failed",
    }
    passes through {
        WebhookError::Untrusted(e) => e,
    }
}

/// What a delivery's body asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The Event Grid subscription handshake: answer with this code.
    Validation(String),
    /// Events: the observed URLs they name (none when no event concerns them), and how many
    /// events were ignored.
    Events {
        urls: BTreeSet<String>,
        ignored: usize,
    },
}

/// The observed certificates by (vault name, secret name), both lower case: Key Vault names
/// are case-insensitive.
#[derive(Debug, Clone, Default)]
pub struct Targets(BTreeMap<(String, String), Vec<String>>);

impl Targets {
    pub fn from_settings(settings: &Settings) -> Self {
        let mut map: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for cert in &settings.observed {
            map.entry((
                cert.url.vault_name.to_ascii_lowercase(),
                cert.url.name.to_ascii_lowercase(),
            ))
            .or_default()
            .push(cert.url.to_string());
        }
        Targets(map)
    }

    fn urls(&self, vault: &str, name: &str) -> &[String] {
        self.0
            .get(&(vault.to_ascii_lowercase(), name.to_ascii_lowercase()))
            .map_or(&[], Vec::as_slice)
    }
}

/// Why a delivery is refused ([`parse_delivery`]); `index` counts events from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("the body is not JSON: {reason}")]
    NotJson { reason: String },
    #[error("expected an event object or an array of events")]
    NotEvents,
    #[error("event {index} has neither eventType nor type")]
    NoEventType { index: usize },
    #[error("the validation event {index} has no data.validationCode")]
    NoValidationCode { index: usize },
}

/// Reads a delivery (either schema, one event or an array).
pub fn parse_delivery(body: &[u8], targets: &Targets) -> Result<Delivery, DeliveryError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| DeliveryError::NotJson {
        reason: e.to_string(),
    })?;
    let events = match value {
        Value::Array(events) => events,
        event @ Value::Object(_) => vec![event],
        _ => return Err(DeliveryError::NotEvents),
    };
    let mut urls = BTreeSet::new();
    let mut ignored = 0;
    for (i, event) in events.iter().enumerate() {
        let kind = event
            .get("eventType")
            .or_else(|| event.get("type"))
            .and_then(Value::as_str)
            .ok_or(DeliveryError::NoEventType { index: i })?;
        let data = event.get("data").unwrap_or(&Value::Null);
        if kind == VALIDATION_EVENT {
            let code = data
                .get("validationCode")
                .and_then(Value::as_str)
                .ok_or(DeliveryError::NoValidationCode { index: i })?;
            return Ok(Delivery::Validation(code.to_string()));
        }
        let named = NEW_VERSION_EVENTS
            .contains(&kind)
            .then(|| {
                let field = |name: &str| data.get(name).and_then(Value::as_str);
                Some(targets.urls(field("VaultName")?, field("ObjectName")?))
            })
            .flatten()
            .unwrap_or(&[]);
        if named.is_empty() {
            ignored += 1;
        }
        urls.extend(named.iter().cloned());
    }
    Ok(Delivery::Events { urls, ignored })
}

/// What the handlers share.
struct Shared {
    targets: Targets,
    secret: Option<Zeroizing<String>>,
    requests: Arc<SyncRequests>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Shared {
    fn count(&self, outcome: &'static str) {
        if let Some(metrics) = &self.metrics {
            metrics.record_webhook(outcome);
        }
    }

    fn authorised(&self, query: &BTreeMap<String, String>, headers: &HeaderMap) -> bool {
        let Some(secret) = &self.secret else {
            return true;
        };
        let offered = query
            .get("key")
            .map(String::as_bytes)
            .or_else(|| headers.get("x-akvvm-key").map(HeaderValue::as_bytes));
        offered.is_some_and(|offered| constant_time_eq(offered, secret.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        "the webhook secret is missing or wrong: add ?key=<secret> to the subscription's endpoint URL\n",
    )
        .into_response()
}

/// The largest delivery read: Event Grid sends at most 1 MB per delivery (one event or a batch).
pub const MAX_DELIVERY_BYTES: usize = 1024 * 1024;

/// A delivery: the secret is checked before the body is read (a client without it makes the
/// agent buffer nothing), and the body is read up to [`MAX_DELIVERY_BYTES`].
async fn deliver(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
    request: axum::extract::Request,
) -> Response {
    if !shared.authorised(&query, request.headers()) {
        tracing::warn!("refused a webhook delivery without the right secret");
        shared.count("unauthorised");
        return unauthorised();
    }
    let body: Bytes = match axum::body::to_bytes(request.into_body(), MAX_DELIVERY_BYTES).await {
        Ok(body) => body,
        Err(error) => {
            shared.count("invalid");
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the delivery could not be read ({error}); at most {MAX_DELIVERY_BYTES} bytes \
                     are accepted\n"
                ),
            )
                .into_response();
        }
    };
    match parse_delivery(&body, &shared.targets) {
        Ok(Delivery::Validation(code)) => {
            tracing::info!("answered the Event Grid subscription validation");
            shared.count("validation");
            axum::Json(json!({ "validationResponse": code })).into_response()
        }
        Ok(Delivery::Events { urls, ignored }) => {
            if urls.is_empty() {
                shared.count("ignored");
            } else {
                tracing::info!(certificates = ?urls, "new version announced; syncing now");
                shared.count("syncing");
                shared.requests.request(urls.iter().cloned());
            }
            axum::Json(json!({ "syncing": urls, "ignored": ignored })).into_response()
        }
        Err(reason) => {
            tracing::warn!(%reason, "refused an unreadable webhook delivery");
            shared.count("invalid");
            (
                StatusCode::BAD_REQUEST,
                format!(
                    "{reason}; expected Event Grid or CloudEvents 1.0 events from a Key Vault \
                     subscription\n"
                ),
            )
                .into_response()
        }
    }
}

/// The CloudEvents 1.0 abuse-protection handshake.
async fn handshake(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !shared.authorised(&query, &headers) {
        shared.count("unauthorised");
        return unauthorised();
    }
    shared.count("validation");
    let Some(origin) = headers.get("webhook-request-origin").cloned() else {
        return (
            StatusCode::BAD_REQUEST,
            "an OPTIONS request must carry WebHook-Request-Origin (the CloudEvents handshake)\n",
        )
            .into_response();
    };
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert("webhook-allowed-origin", origin);
    response
        .headers_mut()
        .insert("webhook-allowed-rate", HeaderValue::from_static("*"));
    response
}

/// Reads the shared secret of `secretFile`.
pub fn read_secret(path: &Path) -> Result<Zeroizing<String>, WebhookError> {
    let text = Zeroizing::new(
        crate::trusted::read_to_string("webhook secret file", path).map_err(|e| match e {
            crate::trusted::Read::Io(source) => WebhookError::Secret {
                path: path.to_path_buf(),
                source,
            },
            crate::trusted::Read::Untrusted(e) => WebhookError::Untrusted(e),
        })?,
    );
    let secret = Zeroizing::new(text.trim().to_string());
    if secret.is_empty() {
        return Err(WebhookError::EmptySecret {
            path: path.to_path_buf(),
        });
    }
    Ok(secret)
}

/// The webhook's router: `POST path` for deliveries, `OPTIONS path` for the handshake; each
/// request is counted in `metrics` when given.
pub fn router(
    path: &str,
    targets: Targets,
    secret: Option<Zeroizing<String>>,
    requests: Arc<SyncRequests>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
) -> axum::Router {
    let shared = Arc::new(Shared {
        targets,
        secret,
        requests,
        metrics,
    });
    axum::Router::new()
        .route(path, axum::routing::post(deliver).options(handshake))
        .with_state(shared)
}

/// Starts the webhook of `settings`: reads the secret, binds the address, loads the TLS
/// certificate, and serves until `cancel`. Returns the address it listens on.
pub async fn start(
    settings: &WebhookSettings,
    targets: Targets,
    requests: Arc<SyncRequests>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    cancel: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), WebhookError> {
    let secret = settings
        .secret_file
        .as_deref()
        .map(read_secret)
        .transpose()?;
    let acceptor = settings
        .certificate_file
        .clone()
        .map(tls_acceptor)
        .transpose()?;
    let listener = TcpListener::bind(settings.address)
        .await
        .map_err(|source| WebhookError::Listen {
            address: settings.address,
            source,
        })?;
    let address = listener.local_addr().unwrap_or(settings.address);
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    tracing::info!(
        url = %format!("{scheme}://{address}{}", settings.path),
        "listening for Event Grid deliveries"
    );
    let router = router(&settings.path, targets, secret, requests, metrics);
    let task = tokio::spawn(crate::listener::serve_router(
        "webhook", listener, acceptor, router, cancel,
    ));
    Ok((address, task))
}

/// A TLS acceptor whose certificate comes from `path` (see [`tls::FileResolver`]).
fn tls_acceptor(path: PathBuf) -> Result<tokio_rustls::TlsAcceptor, WebhookError> {
    let resolver = tls::FileResolver::new(path.clone())?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| WebhookError::Certificate {
        path,
        reason: e.to_string(),
    })?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(resolver));
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

mod tls {
    //! The webhook's server certificate, from a PEM file read again when it changes (akvvm may
    //! be the one rotating it).

    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;

    use super::WebhookError;
    use akvvm_cert::locks::MutexExt;

    /// (device, inode, size, mtime in ns): what changes when the file is replaced or rewritten.
    type FileId = (u64, u64, u64, i128);

    /// Serves the certificate of a PEM file, read again when its identity changes. A file that
    /// does not exist yet (an observed certificate before its first install) fails handshakes
    /// until it appears.
    #[derive(Debug)]
    pub struct FileResolver {
        path: PathBuf,
        current: Mutex<Option<(FileId, Arc<CertifiedKey>)>>,
    }

    fn file_id(path: &Path) -> std::io::Result<FileId> {
        let meta = std::fs::metadata(path)?;
        Ok((
            meta.dev(),
            meta.ino(),
            meta.size(),
            i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        ))
    }

    fn load(path: &Path) -> Result<Arc<CertifiedKey>, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let pem = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| e.to_string())?);
        let chain = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("unreadable certificate: {e}"))?;
        if chain.is_empty() {
            return Err("it holds no certificate".to_string());
        }
        let key = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|_| "it holds no private key".to_string())?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| format!("the key does not fit the certificate: {e}"))?;
        Ok(Arc::new(certified))
    }

    impl FileResolver {
        pub fn new(path: PathBuf) -> Result<Self, WebhookError> {
            let error = |reason: String| WebhookError::Certificate {
                path: path.clone(),
                reason,
            };
            let current = match file_id(&path) {
                Ok(id) => Some((id, load(&path).map_err(error)?)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(
                        path = %path.display(),
                        "the webhook certificate does not exist yet; HTTPS handshakes fail until it is installed"
                    );
                    None
                }
                Err(e) => return Err(error(e.to_string())),
            };
            Ok(FileResolver {
                current: Mutex::new(current),
                path,
            })
        }
    }

    impl ResolvesServerCert for FileResolver {
        fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            let mut current = self.current.lock_or_recover();
            if let Ok(id) = file_id(&self.path)
                && current.as_ref().is_none_or(|(known, _)| *known != id)
            {
                match load(&self.path) {
                    Ok(key) => {
                        tracing::info!(path = %self.path.display(), "webhook certificate loaded");
                        *current = Some((id, key));
                    }
                    Err(reason) => tracing::warn!(
                        path = %self.path.display(),
                        %reason,
                        "keeping the previous webhook certificate"
                    ),
                }
            }
            current.as_ref().map(|(_, key)| key.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Targets {
        let mut map = BTreeMap::new();
        map.insert(
            ("contoso".to_string(), "web".to_string()),
            vec!["https://contoso.vault.azure.net/secrets/web".to_string()],
        );
        Targets(map)
    }

    #[test]
    fn the_event_grid_validation_event_is_answered() {
        let body = br#"[{"id":"2d1781af-3a4c-4d7c-bd0c-e34b19da4e66","topic":"/subscriptions/x","subject":"","data":{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6","validationUrl":"https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/x/validate?id=1"},"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2018-01-25T22:12:19.4556811Z","metadataVersion":"1","dataVersion":"1"}]"#;
        assert_eq!(
            parse_delivery(body, &targets()),
            Ok(Delivery::Validation(
                "512d38b6-c7b8-40c8-89fe-f46f9e9622b6".to_string()
            ))
        );
    }

    #[test]
    fn key_vault_events_in_both_schemas_name_observed_certificates() {
        let event_grid = br#"[{"id":"1","topic":"/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/Contoso","subject":"web","eventType":"Microsoft.KeyVault.CertificateNewVersionCreated","data":{"Id":"https://contoso.vault.azure.net/certificates/web/ee059b2bb5bc48398a53b168c6cdcb10","VaultName":"Contoso","ObjectType":"Certificate","ObjectName":"WEB","Version":"ee059b2bb5bc48398a53b168c6cdcb10","NBF":1559081980,"EXP":1559082102},"dataVersion":"1","metadataVersion":"1","eventTime":"2019-05-28T22:17:22.0Z"},
            {"id":"2","eventType":"Microsoft.KeyVault.SecretNewVersionCreated","data":{"VaultName":"contoso","ObjectName":"other"}},
            {"id":"3","eventType":"Microsoft.KeyVault.CertificateNearExpiry","data":{"VaultName":"contoso","ObjectName":"web"}}]"#;
        let Delivery::Events { urls, ignored } = parse_delivery(event_grid, &targets()).unwrap()
        else {
            panic!("not events")
        };
        assert_eq!(
            urls.into_iter().collect::<Vec<_>>(),
            ["https://contoso.vault.azure.net/secrets/web"]
        );
        assert_eq!(
            ignored, 2,
            "another secret, and an event that is not a new version"
        );

        let cloud_event = br#"{"specversion":"1.0","id":"1","source":"/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/contoso","subject":"web","type":"Microsoft.KeyVault.CertificateNewVersionCreated","time":"2019-05-28T22:17:22Z","data":{"Id":"https://contoso.vault.azure.net/certificates/web/1","VaultName":"contoso","ObjectType":"Certificate","ObjectName":"web","Version":"1"}}"#;
        let Delivery::Events { urls, ignored } = parse_delivery(cloud_event, &targets()).unwrap()
        else {
            panic!("not events")
        };
        assert_eq!(urls.len(), 1);
        assert_eq!(ignored, 0);
    }

    #[test]
    fn unreadable_deliveries_say_what_is_wrong() {
        for (body, expected) in [
            (&b"not json"[..], "the body is not JSON"),
            (b"42", "expected an event object or an array of events"),
            (b"[{\"data\":{}}]", "event 0 has neither eventType nor type"),
            (
                b"[{\"eventType\":\"Microsoft.EventGrid.SubscriptionValidationEvent\",\"data\":{}}]",
                "the validation event 0 has no data.validationCode",
            ),
        ] {
            let error = parse_delivery(body, &targets()).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    /// Deliveries larger than Event Grid sends are refused, and nothing is queued.
    #[tokio::test]
    async fn an_oversized_delivery_is_refused() {
        let requests = SyncRequests::new();
        let router = router(
            "/eventgrid",
            targets(),
            Some(Zeroizing::new("s3cret".to_string())),
            requests.clone(),
            None,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        tokio::spawn(crate::listener::serve_router(
            "test",
            listener,
            None,
            router,
            cancel.clone(),
        ));
        let client = reqwest::Client::new();
        // 1.5 MiB: more than Event Grid's 1 MB, less than axum's default limit of 2 MB.
        let mut body = br#"[{"id":"1","eventType":"Microsoft.KeyVault.SecretNewVersionCreated","data":{"VaultName":"contoso","ObjectName":"web"},"pad":""#.to_vec();
        body.extend(std::iter::repeat_n(b'x', 1536 * 1024));
        body.extend(br#""}]"#);
        let answer = client
            .post(format!("http://{address}/eventgrid?key=s3cret"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 413);
        assert!(requests.take().is_empty());
        // Without the secret: refused before the body is looked at.
        let answer = client
            .post(format!("http://{address}/eventgrid"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
        cancel.cancel();
    }
}
