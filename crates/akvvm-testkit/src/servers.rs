//! Real HTTP(S) stand-ins on 127.0.0.1:0 for the identity and vault tests: a test CA (rcgen),
//! an https server (rustls with aws-lc-rs) and a plain http server, both serving axum routers,
//! and [`HostileVault`], a Key Vault that answers what the local vault never would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A test certificate authority.
pub struct TestCa {
    pub pem: String,
    params: CertificateParams,
    key: KeyPair,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "akvvm test CA");
        params.distinguished_name = dn;
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            params,
            key,
        }
    }

    /// A TLS server certificate for `names`, signed by this CA: (cert DER, key DER).
    pub fn server_cert(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

/// A client certificate (subject CN `cn`) with an RSA key, valid in [not_before, not_after]:
/// (certificate PEM, PKCS#8 key PEM).
pub fn rsa_client_cert(
    cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> (String, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    client_cert_with(cn, not_before, not_after, key)
}

/// Like [`rsa_client_cert`] with a P-256 key.
pub fn ec_client_cert(cn: &str) -> (String, String) {
    let now = OffsetDateTime::now_utc();
    let key = KeyPair::generate().unwrap();
    client_cert_with(
        cn,
        now - time::Duration::days(1),
        now + time::Duration::days(30),
        key,
    )
}

fn client_cert_with(
    cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    key: KeyPair,
) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Serves `router` over https on 127.0.0.1:0 with a certificate for `names` from `ca`.
pub async fn serve_https(router: Router, ca: &TestCa, names: &[&str]) -> SocketAddr {
    serve_https_counted(router, ca, names, Counter::default()).await
}

/// Like [`serve_https`], counting accepted TCP connections in `connections`.
pub async fn serve_https_counted(
    router: Router,
    ca: &TestCa,
    names: &[&str],
    connections: Counter,
) -> SocketAddr {
    let (cert, key) = ca.server_cert(names);
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            connections.bump();
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// Serves `router` over plain http on 127.0.0.1:0.
pub async fn serve_http(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// A shared counter.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A retry policy with millisecond delays, for fast tests.
pub fn fast_retry(statuses: &[u16], max_attempts: u32) -> akvvm::http::RetryPolicy {
    akvvm::http::RetryPolicy {
        retry_statuses: statuses.to_vec(),
        retry_server_errors: true,
        retry_transport_errors: true,
        initial_delay: std::time::Duration::from_millis(5),
        max_delay: std::time::Duration::from_millis(20),
        max_attempts,
        deadline: Some(std::time::Duration::from_secs(10)),
        honour_retry_after: true,
        retry_throttling_until_deadline: false,
    }
}

/// What [`HostileVault`] answers to an authenticated `GET /secrets/...`.
#[derive(Clone, Debug)]
pub enum HostileAnswer {
    /// A 200 with this JSON document.
    Json(serde_json::Value),
    /// A 200 with this content type and body, as given.
    Raw {
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A 200 whose JSON `body` comes one byte every `every`.
    Trickle {
        body: Vec<u8>,
        every: std::time::Duration,
    },
}

/// A stand-in for Key Vault that answers hostile documents: bodies past any cap, bodies sent one
/// byte a second, bodies that are not JSON or not a secret, ids with `..` or `/` in them, PEM
/// chains of thousands of certificates. The local vault answers only what Key Vault would, so
/// these need a stand-in. It speaks Key Vault's challenge (a 401 with `WWW-Authenticate` to a
/// request without a token) and takes any bearer token after that; the token itself comes from
/// the local vault's IMDS.
#[derive(Clone)]
pub struct HostileVault {
    pub answer: Arc<std::sync::Mutex<HostileAnswer>>,
    /// Authenticated requests served.
    pub requests: Counter,
}

impl HostileVault {
    pub fn new(answer: HostileAnswer) -> Self {
        HostileVault {
            answer: Arc::new(std::sync::Mutex::new(answer)),
            requests: Counter::default(),
        }
    }

    /// Answers `answer` from now on.
    pub fn set(&self, answer: HostileAnswer) {
        *self.answer.lock().unwrap() = answer;
    }

    /// Serves it over https on 127.0.0.1:0 for `host` (`<vault>.vault.azure.net`).
    pub async fn serve(&self, ca: &TestCa, host: &str) -> SocketAddr {
        let this = self.clone();
        let router = Router::new().fallback(move |request: axum::extract::Request| {
            let this = this.clone();
            async move { this.handle(request) }
        });
        serve_https(router, ca, &[host]).await
    }

    fn handle(&self, request: axum::extract::Request) -> axum::response::Response {
        use axum::http::{HeaderValue, StatusCode, header};
        use axum::response::IntoResponse;
        if !request.headers().contains_key(header::AUTHORIZATION) {
            let mut answer = (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": {"code": "Unauthorized",
                    "message": "AKV10000: Request is missing a Bearer or PoP token."}})),
            )
                .into_response();
            answer.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer authorization=\"https://login.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47\", resource=\"https://vault.azure.net\"",
                ),
            );
            return answer;
        }
        self.requests.bump();
        match self.answer.lock().unwrap().clone() {
            HostileAnswer::Json(value) => axum::Json(value).into_response(),
            HostileAnswer::Raw { content_type, body } => {
                ([(header::CONTENT_TYPE, content_type)], body).into_response()
            }
            HostileAnswer::Trickle { body, every } => {
                let body = axum::body::Bytes::from(body);
                let stream = futures::stream::unfold(0usize, move |at| {
                    let body = body.clone();
                    async move {
                        if at >= body.len() {
                            return None;
                        }
                        if at > 0 {
                            tokio::time::sleep(every).await;
                        }
                        Some((
                            Ok::<_, std::convert::Infallible>(body.slice(at..=at)),
                            at + 1,
                        ))
                    }
                });
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    axum::body::Body::from_stream(stream),
                )
                    .into_response()
            }
        }
    }
}
