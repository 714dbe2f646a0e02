//! Listeners and routing: HTTPS (Key Vault by host name, Entra ID and the admin API on other
//! hosts) and plain http (IMDS). Each connection is served by hyper; faults (latency, dropped
//! connections, answers cut short, injected statuses, throttling) and request counters are applied here, in front of
//! the routers, each answering in its service's own error format. Starting the emulator is
//! [`crate::emulator`]; the services are [`crate::keyvault`], [`crate::entra`], [`crate::imds`]
//! and [`crate::admin`].

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::admin::ADMIN_PREFIX;
use crate::imds::ArcChallenge;
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
        _ => crate::keyvault::wire::fault_status(status),
    }
}

/// The answer to a throttled request: Key Vault's 429 body for vaults.
fn throttle_fault(scope: &str, retry_after_s: Option<u64>) -> Response<Body> {
    if scope != IMDS_SCOPE && scope != ENTRA_SCOPE {
        return crate::keyvault::wire::throttled(retry_after_s);
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
    let client_request_id = req.headers().get("x-ms-client-request-id").cloned();
    let req = req.map(Body::new);
    if is_admin {
        return Ok(router
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e: Infallible| match e {}));
    }
    // Held until the answer is ready: injected latency counts as time in flight.
    let _in_flight = state.traffic.enter(&scope);
    let (action, latency) = state.traffic.take_fault(&scope);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match action {
        FaultAction::Drop => {
            state.traffic.count(&scope, &method, &path, 0);
            tracing::info!(%scope, %path, "fault: dropping the connection");
            return Err(DroppedConnection);
        }
        FaultAction::Pass => router
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|e: Infallible| match e {}),
        FaultAction::Cut => {
            let answer = router
                .clone()
                .oneshot(req)
                .await
                .unwrap_or_else(|e: Infallible| match e {});
            tracing::info!(%scope, %path, "fault: cutting the answer short");
            cut_short(answer).await
        }
        FaultAction::Status(status) => status_fault(&scope, status),
        FaultAction::Booting(status) => crate::imds::booting(status),
        FaultAction::Throttled { retry_after_s } => throttle_fault(&scope, retry_after_s),
    };
    let mut response = response;
    // Key Vault echoes the client's request id on every answer, injected faults included.
    if let (Some(id), Listener::Https, Some(_)) = (client_request_id, listener, &vault) {
        response.headers_mut().insert("x-ms-client-request-id", id);
    }
    state
        .traffic
        .count(&scope, &method, &path, response.status().as_u16());
    tracing::debug!(%scope, %method, %path, status = response.status().as_u16(), "request");
    Ok(response)
}

/// `answer` with its whole length announced but only half its body sent: the body stream then
/// fails, and hyper closes the connection mid-answer.
async fn cut_short(answer: Response<Body>) -> Response<Body> {
    let (mut parts, body) = answer.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, bytes.len().into());
    let half = bytes.slice(..bytes.len() / 2);
    let chunks: Vec<Result<axum::body::Bytes, DroppedConnection>> =
        vec![Ok(half), Err(DroppedConnection)];
    Response::from_parts(parts, Body::from_stream(futures::stream::iter(chunks)))
}

/// The listener's service: every request goes through [`dispatch`] with its listener kind.
fn spawn_listener(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    kind: Listener,
    state: Arc<State>,
    routers: Arc<(Router, Router)>,
    cancel: &CancellationToken,
) {
    let service =
        hyper::service::service_fn(move |req| dispatch(state.clone(), kind, routers.clone(), req));
    let name = match kind {
        Listener::Https => "local vault https",
        Listener::Imds => "local vault imds",
    };
    // The local vault is the bed of fleet benchmarks and load tests: a thousand agents keep a
    // thousand connections open. The agent's own listeners keep the stricter default.
    let limits = akvvm::listener::Limits {
        max_connections: MAX_CONNECTIONS,
        ..Default::default()
    };
    tokio::spawn(akvvm::listener::serve_with(
        name,
        listener,
        tls,
        service,
        limits,
        cancel.clone(),
    ));
}

/// Connections each of the local vault's listeners keeps open at a time (the agent's
/// listeners allow [`akvvm::listener::MAX_CONNECTIONS`]); each needs a file descriptor.
pub const MAX_CONNECTIONS: usize = 8192;

/// Serves `https` (TLS through `acceptor`) and `imds` (plain http, answering as Azure Arc does
/// with `arc`) until `cancel` is cancelled.
pub fn spawn(
    state: Arc<State>,
    ca_pem: Arc<String>,
    https: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    imds: TcpListener,
    arc: Option<Arc<ArcChallenge>>,
    cancel: &CancellationToken,
) {
    let routers = Arc::new(https_router(state.clone(), ca_pem));
    let imds_routers = Arc::new((crate::imds::router(state.clone(), arc), Router::new()));
    spawn_listener(
        https,
        Some(acceptor),
        Listener::Https,
        state.clone(),
        routers,
        cancel,
    );
    spawn_listener(imds, None, Listener::Imds, state, imds_routers, cancel);
}
