//! Real HTTP(S) stand-ins on 127.0.0.1:0 for the identity and vault tests: a test CA (rcgen),
//! an https server (rustls with aws-lc-rs) and a plain http server, both serving axum routers.

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
