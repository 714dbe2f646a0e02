//! The one accept loop behind every HTTP listener akvvm runs (the Event Grid webhook, the
//! Prometheus endpoint) and the local vault's listeners: plain HTTP or TLS, HTTP/1.1 and HTTP/2
//! on the same port, one task per connection, every connection ended when `cancel` fires.
//! Limits on connections and time (and anything else every listener needs) belong here, once.

use std::error::Error as StdError;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Serves `service` on `listener` until `cancel`, over TLS with `tls` or plain HTTP. `name`
/// (`"webhook"`, `"metrics"`, ...) labels the log lines.
pub async fn serve<S, B>(
    name: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    cancel: CancellationToken,
) where
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    loop {
        let (tcp, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(listener = name, %error, "accept failed");
                    continue;
                }
            },
        };
        let (tls, service, cancel) = (tls.clone(), service.clone(), cancel.clone());
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let served = match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let conn = builder.serve_connection(TokioIo::new(stream), service);
                        tokio::select! { r = conn => r, () = cancel.cancelled() => Ok(()) }
                    }
                    Err(error) => {
                        tracing::debug!(listener = name, %peer, %error, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), service);
                    tokio::select! { r = conn => r, () = cancel.cancelled() => Ok(()) }
                }
            };
            if let Err(error) = served {
                tracing::debug!(listener = name, %peer, %error, "connection ended with an error");
            }
        });
    }
}

/// [`serve`] for an axum `Router`.
pub async fn serve_router(
    name: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: axum::Router,
    cancel: CancellationToken,
) {
    let service = hyper_util::service::TowerToHyperService::new(router);
    serve(name, listener, tls, service, cancel).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_http_until_cancelled() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "up" }));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve_router("test", listener, None, router, cancel.clone()));

        let answer = reqwest::get(format!("http://{address}/")).await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "up");

        cancel.cancel();
        task.await.unwrap();
        assert!(
            TcpListener::bind(address).await.is_ok(),
            "the port is free again"
        );
    }
}
