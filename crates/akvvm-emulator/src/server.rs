//! Listeners: HTTPS (Key Vault by host name, Entra ID and the admin API on other hosts) and plain
//! http (IMDS). Each connection is served by hyper; faults (latency, dropped connections,
//! injected statuses, throttling) and request counters are applied here, in front of the routers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::admin::ADMIN_PREFIX;
use crate::keyvault::{request_host, vault_from_host};
use crate::state::{FaultAction, State};

/// The fault scope of the IMDS listener.
pub const IMDS_SCOPE: &str = "imds";
/// The fault scope of Entra ID requests.
pub const ENTRA_SCOPE: &str = "entra";

/// A request the fault injection closes the connection on.
#[derive(Debug)]
struct DroppedConnection;

impl std::fmt::Display for DroppedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DroppedConnection {}

/// Which listener a request arrived on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listener {
    Https,
    Imds,
}

/// The router for requests that do not name a vault on the HTTPS listener: Entra ID and admin.
pub fn https_router(state: Arc<State>, ca_pem: Arc<String>) -> (Router, Router) {
    (
        crate::keyvault::router(state.clone()),
        crate::entra::router(state.clone()).merge(crate::admin::router(state, ca_pem)),
    )
}

/// The answer to an injected status, in the scope's own error format.
fn status_fault(scope: &str, status: u16) -> Response<Body> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match scope {
        IMDS_SCOPE => crate::imds::imds_error(
            code,
            "server_error",
            &format!("Injected fault: IMDS answered {status}."),
        ),
        ENTRA_SCOPE => crate::entra::aad_error(
            code,
            "temporarily_unavailable",
            50089,
            &format!("Injected fault: Entra ID answered {status}."),
        ),
        _ => crate::keyvault::fault_status(status),
    }
}

/// The answer to a throttled request: Key Vault's 429 body for vaults.
fn throttle_fault(scope: &str, retry_after_s: Option<u64>) -> Response<Body> {
    if scope != IMDS_SCOPE && scope != ENTRA_SCOPE {
        return crate::keyvault::throttled(retry_after_s);
    }
    let mut response = too_many(scope);
    if let Some(seconds) = retry_after_s {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

fn too_many(scope: &str) -> Response<Body> {
    if scope == IMDS_SCOPE {
        crate::imds::imds_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests: IMDS throttled this request.",
        )
    } else {
        crate::entra::aad_error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            50196,
            "The server terminated an operation because it encountered a client request loop.",
        )
    }
}

async fn dispatch(
    state: Arc<State>,
    listener: Listener,
    routers: Arc<(Router, Router)>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, DroppedConnection> {
    let host = request_host(req.headers(), req.uri());
    let path = req.uri().path().to_owned();
    let method = req.method().to_string();
    let vault = vault_from_host(&host);
    let (scope, router) = match (listener, &vault) {
        (Listener::Imds, _) => (IMDS_SCOPE.to_owned(), &routers.0),
        (Listener::Https, Some(v)) => (v.clone(), &routers.0),
        (Listener::Https, None) => (ENTRA_SCOPE.to_owned(), &routers.1),
    };
    let is_admin = listener == Listener::Https && vault.is_none() && path.starts_with(ADMIN_PREFIX);
    let req = req.map(Body::new);
    if is_admin {
        return Ok(router
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e: Infallible| match e {}));
    }
    // Held until the answer is ready: injected latency counts as time in flight.
    let _in_flight = state.enter(&scope);
    let (action, latency) = state.take_fault(&scope);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match action {
        FaultAction::Drop => {
            state.count(&scope, &method, &path, 0);
            tracing::info!(%scope, %path, "fault: dropping the connection");
            return Err(DroppedConnection);
        }
        FaultAction::Pass => router
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e: Infallible| match e {}),
        FaultAction::Status(status) => status_fault(&scope, status),
        FaultAction::Throttled { retry_after_s } => throttle_fault(&scope, retry_after_s),
    };
    state.count(&scope, &method, &path, response.status().as_u16());
    tracing::debug!(%scope, %method, %path, status = response.status().as_u16(), "request");
    Ok(response)
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    kind: Listener,
    state: Arc<State>,
    routers: Arc<(Router, Router)>,
    cancel: CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let (tls, state, routers, cancel) =
            (tls.clone(), state.clone(), routers.clone(), cancel.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                dispatch(state.clone(), kind, routers.clone(), req)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let served = match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        tokio::select! { r = conn => r, () = cancel.cancelled() => Ok(()) }
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), service);
                    tokio::select! { r = conn => r, () = cancel.cancelled() => Ok(()) }
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The HTTPS listener (Key Vault, Entra ID, admin). Default `127.0.0.1:0`.
    pub https_addr: SocketAddr,
    /// The plain-http IMDS listener. Default `127.0.0.1:0`.
    pub imds_addr: SocketAddr,
    /// Where the CA (and with `persist`, the state and signing key) is kept; none keeps
    /// everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Save the state to `data_dir/state.json` after every change and load it at start.
    pub persist: bool,
    /// Applied at start.
    pub seed: Option<crate::seed::Seed>,
    /// Answer IMDS as Azure Arc's agent does: a request without the key of a fresh key file in
    /// this directory gets a 401 naming the file ([`crate::imds::ArcChallenge`]).
    pub arc_key_directory: Option<PathBuf>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        EmulatorConfig {
            https_addr: loopback,
            imds_addr: loopback,
            data_dir: None,
            persist: false,
            seed: None,
            arc_key_directory: None,
        }
    }
}

/// The emulator; see [`Emulator::start`].
pub struct Emulator;

impl Emulator {
    /// Binds the listeners and starts serving; the emulator stops when the handle is dropped or
    /// [`RunningEmulator::shutdown`] is called.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<RunningEmulator> {
        let data_dir = config.data_dir.as_deref();
        if config.persist && data_dir.is_none() {
            anyhow::bail!("persisting the state needs a data directory (--data-dir)");
        }
        let authority = crate::tls::Authority::load_or_create(data_dir)?;
        let (model, issuer, persist_path) = crate::persist::load(data_dir, config.persist)?;
        let state = Arc::new(State::new(model, issuer, persist_path));
        if let Some(seed) = &config.seed {
            crate::seed::apply(&state, seed).context("failed to apply the seed")?;
        }
        let ca_pem = Arc::new(authority.ca_pem.clone());
        let https = TcpListener::bind(config.https_addr)
            .await
            .with_context(|| format!("failed to listen on {} (https)", config.https_addr))?;
        let imds = TcpListener::bind(config.imds_addr)
            .await
            .with_context(|| format!("failed to listen on {} (imds)", config.imds_addr))?;
        let https_addr = https.local_addr()?;
        let imds_addr = imds.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(authority.server_config()?);
        let routers = Arc::new(https_router(state.clone(), ca_pem.clone()));
        let arc = config
            .arc_key_directory
            .clone()
            .map(crate::imds::ArcChallenge::new);
        let imds_routers = Arc::new((crate::imds::router(state.clone(), arc), Router::new()));
        let cancel = CancellationToken::new();
        tokio::spawn(accept_loop(
            https,
            Some(acceptor),
            Listener::Https,
            state.clone(),
            routers,
            cancel.clone(),
        ));
        tokio::spawn(accept_loop(
            imds,
            None,
            Listener::Imds,
            state.clone(),
            imds_routers,
            cancel.clone(),
        ));
        tracing::info!(%https_addr, %imds_addr, "local vault listening");
        Ok(RunningEmulator {
            state,
            https_addr,
            imds_addr,
            ca_pem,
            cancel,
        })
    }
}

/// A running emulator: its addresses, CA, and the admin API as methods.
pub struct RunningEmulator {
    pub(crate) state: Arc<State>,
    https_addr: SocketAddr,
    imds_addr: SocketAddr,
    ca_pem: Arc<String>,
    cancel: CancellationToken,
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl RunningEmulator {
    /// The HTTPS listener's address; map vault host names to it.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The IMDS listener's address.
    pub fn imds_addr(&self) -> SocketAddr {
        self.imds_addr
    }

    /// The IMDS identity endpoint (an `msiEndpoint`): `http://127.0.0.1:PORT/metadata/identity`.
    pub fn imds_url(&self) -> String {
        format!("http://{}/metadata/identity", self.imds_addr)
    }

    /// The Entra ID authority host: `https://localhost:PORT`.
    pub fn authority_host(&self) -> String {
        format!("https://localhost:{}", self.https_addr.port())
    }

    /// The vault URL clients use: `https://<vault>.vault.azure.net:PORT` (map the host to
    /// [`Self::https_addr`]).
    pub fn vault_url(&self, vault: &str) -> String {
        format!("https://{vault}.vault.azure.net:{}", self.https_addr.port())
    }

    /// The CA certificate (PEM) that issued the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The shared state, for the admin operations not wrapped below.
    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}
