//! The one accept loop behind every HTTP listener akvvm runs (the Event Grid webhook, the
//! Prometheus endpoint) and the local vault's listeners: plain HTTP or TLS, HTTP/1.1 and HTTP/2
//! on the same port, one task per connection, every connection ended when `cancel` fires.
//!
//! Limits on connections and time live here, once ([`Limits`]): at most `max_connections`
//! connections are open at a time (the next one waits in the kernel's backlog, holding no
//! descriptor of ours), a TLS handshake must finish within `handshake_timeout`, an HTTP/1 request
//! head within `header_timeout`, and a connection with no request in progress for `idle_timeout`
//! is closed, whether it never sent a byte, sends its head one byte at a time, or is a kept-alive
//! connection nobody uses. An accept error (`EMFILE`, `ENFILE`, ...) pauses the loop for
//! `accept_error_pause` instead of spinning on it. [`Counters`] says what the limits did.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use akvvm_cert::locks::MutexExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Default for [`Limits::max_connections`]: far below the unit's `LimitNOFILE=1024` even with
/// the webhook and the metrics listener both full.
pub const MAX_CONNECTIONS: usize = 128;
/// Default for [`Limits::handshake_timeout`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`Limits::header_timeout`].
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`Limits::idle_timeout`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`Limits::accept_error_pause`].
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(500);

/// What one listener allows. The defaults are the constants above.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at a time; further ones wait to be accepted.
    pub max_connections: usize,
    /// Time a TLS handshake may take from accept.
    pub handshake_timeout: Duration,
    /// Time an HTTP/1 request head may take to arrive, once hyper starts reading it.
    pub header_timeout: Duration,
    /// Time a connection may stay open with no request in progress (from accept, and from the
    /// end of each answer).
    pub idle_timeout: Duration,
    /// Pause after a failed `accept`.
    pub accept_error_pause: Duration,
    /// What happened, for tests and logs.
    pub counters: Arc<Counters>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            accept_error_pause: ACCEPT_ERROR_PAUSE,
            counters: Arc::default(),
        }
    }
}

/// Counts kept by one listener.
#[derive(Debug, Default)]
pub struct Counters {
    open: AtomicUsize,
    most_open: AtomicUsize,
    accepted: AtomicU64,
    accept_errors: AtomicU64,
    handshake_timeouts: AtomicU64,
    idle_closed: AtomicU64,
}

impl Counters {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
    /// The most connections that were ever open at once.
    pub fn most_open(&self) -> usize {
        self.most_open.load(Ordering::SeqCst)
    }
    /// Connections accepted in all.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
    /// Failed `accept` calls.
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::SeqCst)
    }
    /// TLS handshakes cut off by `handshake_timeout`.
    pub fn handshake_timeouts(&self) -> u64 {
        self.handshake_timeouts.load(Ordering::SeqCst)
    }
    /// Connections closed by `idle_timeout`.
    pub fn idle_closed(&self) -> u64 {
        self.idle_closed.load(Ordering::SeqCst)
    }
}

/// One open connection in [`Counters::open`]; with the semaphore permit it holds.
struct Slot {
    counters: Arc<Counters>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Slot {
    fn new(counters: Arc<Counters>, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        let open = counters.open.fetch_add(1, Ordering::SeqCst) + 1;
        counters.most_open.fetch_max(open, Ordering::SeqCst);
        counters.accepted.fetch_add(1, Ordering::SeqCst);
        Self {
            counters,
            _permit: permit,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counters.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `service` on `listener` with the default [`Limits`]; see [`serve_with`].
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
    serve_with(name, listener, tls, service, Limits::default(), cancel).await;
}

/// Serves `service` on `listener` until `cancel`, over TLS with `tls` or plain HTTP, within
/// `limits`. `name` (`"webhook"`, `"metrics"`, ...) labels the log lines.
pub async fn serve_with<S, B>(
    name: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: S,
    limits: Limits,
    cancel: CancellationToken,
) where
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            () = cancel.cancelled() => return,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (tcp, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    limits.counters.accept_errors.fetch_add(1, Ordering::SeqCst);
                    tracing::warn!(listener = name, %error, pause = ?limits.accept_error_pause, "accept failed");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(limits.accept_error_pause) => continue,
                    }
                }
            },
        };
        let slot = Slot::new(limits.counters.clone(), permit);
        let (tls, service, cancel, limits) =
            (tls.clone(), service.clone(), cancel.clone(), limits.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let activity = Arc::new(Activity::new());
            let service = Tracked {
                inner: service,
                activity: activity.clone(),
            };
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let served = match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp));
                    let stream = tokio::select! {
                        () = cancel.cancelled() => return,
                        handshake = handshake => match handshake {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                tracing::debug!(listener = name, %peer, %error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                limits.counters.handshake_timeouts.fetch_add(1, Ordering::SeqCst);
                                tracing::debug!(listener = name, %peer, "TLS handshake timed out");
                                return;
                            }
                        },
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        r = conn => r,
                        () = cancel.cancelled() => Ok(()),
                        () = activity.idle(limits.idle_timeout) => {
                            limits.counters.idle_closed.fetch_add(1, Ordering::SeqCst);
                            tracing::debug!(listener = name, %peer, "idle connection closed");
                            Ok(())
                        }
                    }
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), service);
                    tokio::select! {
                        r = conn => r,
                        () = cancel.cancelled() => Ok(()),
                        () = activity.idle(limits.idle_timeout) => {
                            limits.counters.idle_closed.fetch_add(1, Ordering::SeqCst);
                            tracing::debug!(listener = name, %peer, "idle connection closed");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(error) = served {
                tracing::debug!(listener = name, %peer, %error, "connection ended with an error");
            }
        });
    }
}

/// [`serve`] for an axum `Router`, with the default [`Limits`].
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

/// Requests in progress on one connection, and when the last one started or ended.
struct Activity {
    in_progress: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_progress: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        *self.last.lock_or_recover() = Instant::now();
    }

    /// Resolves once no request has been in progress for `timeout`.
    async fn idle(&self, timeout: Duration) {
        loop {
            let last = *self.last.lock_or_recover();
            let busy = self.in_progress.load(Ordering::SeqCst) > 0;
            let now = Instant::now();
            if !busy && now >= last + timeout {
                return;
            }
            let wake = if busy { now + timeout } else { last + timeout };
            tokio::time::sleep_until(wake).await;
        }
    }
}

/// A request in progress: from the call of the service until its answer's body is dropped.
struct InProgress(Arc<Activity>);

impl InProgress {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_progress.fetch_add(1, Ordering::SeqCst);
        activity.touch();
        Self(activity)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_progress.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `inner`, with each request counted in `activity`.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, B> Service<hyper::Request<Incoming>> for Tracked<S>
where
    S: Service<hyper::Request<Incoming>, Response = hyper::Response<B>>,
    S::Future: Send + 'static,
    B: Body,
{
    type Response = hyper::Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_progress = InProgress::new(self.activity.clone());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await?;
            Ok(answer.map(|body| TrackedBody {
                body: Box::pin(body),
                _in_progress: in_progress,
            }))
        })
    }
}

/// An answer's body, keeping its request in progress until it is sent (or dropped).
struct TrackedBody<B> {
    body: Pin<Box<B>>,
    _in_progress: InProgress,
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.body.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Generous: only there so that a broken limit ends the test instead of hanging it.
    const GIVE_UP: Duration = Duration::from_secs(60);

    fn up() -> axum::Router {
        axum::Router::new().route("/", axum::routing::get(|| async { "up" }))
    }

    async fn start(limits: Limits) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let service = hyper_util::service::TowerToHyperService::new(up());
        tokio::spawn(serve_with(
            "test",
            listener,
            None,
            service,
            limits,
            cancel.clone(),
        ));
        (address, cancel)
    }

    /// Reads until the server closes the connection (EOF or reset), writing one more byte of
    /// `trickle` every so often; true if the server closed it before [`GIVE_UP`].
    async fn closed_by_server(stream: &mut TcpStream, trickle: &[u8]) -> bool {
        let mut sent = 0;
        let ended = tokio::time::timeout(GIVE_UP, async {
            let mut buf = [0u8; 64];
            loop {
                if sent < trickle.len() {
                    if stream.write_all(&trickle[sent..=sent]).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
                let read =
                    tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
                if let Ok(Ok(0) | Err(_)) = read {
                    return;
                }
            }
        })
        .await;
        ended.is_ok()
    }

    #[tokio::test]
    async fn serves_http_until_cancelled() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve_router("test", listener, None, up(), cancel.clone()));

        let answer = reqwest::get(format!("http://{address}/")).await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "up");

        cancel.cancel();
        task.await.unwrap();
        assert!(
            TcpListener::bind(address).await.is_ok(),
            "the port is free again"
        );
    }

    #[tokio::test]
    async fn idle_connections_neither_pile_up_nor_keep_a_request_out() {
        let limits = Limits {
            max_connections: 4,
            idle_timeout: Duration::from_millis(500),
            ..Limits::default()
        };
        let counters = limits.counters.clone();
        let (address, cancel) = start(limits).await;

        // 40 connections that never send a byte, as a flood of idle sockets would.
        let mut idle = Vec::new();
        for _ in 0..40 {
            idle.push(TcpStream::connect(address).await.unwrap());
        }
        let client = reqwest::Client::builder().timeout(GIVE_UP).build().unwrap();
        let answer = client
            .get(format!("http://{address}/"))
            .send()
            .await
            .expect("a request gets through the idle connections");
        assert_eq!(answer.text().await.unwrap(), "up");

        assert!(
            counters.most_open() <= 4,
            "{} connections were open at once, the limit is 4",
            counters.most_open()
        );
        assert!(
            counters.idle_closed() >= 4,
            "idle connections were closed to make room ({} were)",
            counters.idle_closed()
        );
        // Every idle socket is closed by the server in the end, none is kept forever.
        for stream in &mut idle {
            assert!(
                closed_by_server(stream, b"").await,
                "an idle connection stays open"
            );
        }
        assert_eq!(counters.accept_errors(), 0);
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_request_head_sent_one_byte_at_a_time_is_cut_off() {
        // The idle limit is out of the way: hyper's header timeout is what must end it.
        let limits = Limits {
            header_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(3600),
            ..Limits::default()
        };
        let counters = limits.counters.clone();
        let (address, cancel) = start(limits).await;

        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = format!(
            "GET / HTTP/1.1\r\nhost: {address}\r\n{}",
            "x-pad: y\r\n".repeat(1000)
        );
        assert!(
            closed_by_server(&mut stream, head.as_bytes()).await,
            "the server kept reading a request head sent one byte at a time"
        );
        assert_eq!(counters.idle_closed(), 0, "the header timeout closed it");
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_slow_head_is_cut_off_by_the_idle_limit_too() {
        // With hyper's header timeout out of the way, no request in progress is idle.
        let limits = Limits {
            header_timeout: Duration::from_secs(3600),
            idle_timeout: Duration::from_millis(500),
            ..Limits::default()
        };
        let counters = limits.counters.clone();
        let (address, cancel) = start(limits).await;

        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = format!(
            "GET / HTTP/1.1\r\nhost: {address}\r\n{}",
            "x-pad: y\r\n".repeat(1000)
        );
        assert!(
            closed_by_server(&mut stream, head.as_bytes()).await,
            "the server kept reading a request head sent one byte at a time"
        );
        assert_eq!(counters.idle_closed(), 1);
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_tls_handshake_that_never_comes_is_cut_off() {
        let (cert, key) = akvvm_testkit::servers::TestCa::new().server_cert(&["localhost"]);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        let limits = Limits {
            handshake_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(3600),
            header_timeout: Duration::from_secs(3600),
            ..Limits::default()
        };
        let counters = limits.counters.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let service = hyper_util::service::TowerToHyperService::new(up());
        tokio::spawn(serve_with(
            "test",
            listener,
            Some(TlsAcceptor::from(Arc::new(config))),
            service,
            limits,
            cancel.clone(),
        ));

        let mut stream = TcpStream::connect(address).await.unwrap();
        assert!(
            closed_by_server(&mut stream, b"").await,
            "a silent TLS client kept its connection"
        );
        assert_eq!(counters.handshake_timeouts(), 1);
        cancel.cancel();
    }

    /// Runs the test `name` of this binary alone in a child process with `AKVVM_TEST_CHILD` set
    /// (for what would disturb the other tests of this process); true if it passed.
    fn in_child_process(name: &str) -> bool {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env("AKVVM_TEST_CHILD", "1")
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }

    /// Out of descriptors, `accept` fails at once for every waiting connection: the loop must
    /// pause between failures, not spin on them.
    #[test]
    fn accept_errors_pause_the_loop() {
        if std::env::var_os("AKVVM_TEST_CHILD").is_none() {
            assert!(
                in_child_process("listener::tests::accept_errors_pause_the_loop"),
                "see the child's output above"
            );
            return;
        }
        // In the child: this test alone, so the descriptor limit it sets disturbs nothing.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            // Connections waiting to be accepted.
            let _waiting: Vec<_> = (0..8)
                .map(|_| std::net::TcpStream::connect(address).unwrap())
                .collect();
            // No descriptor left: the limit just above the highest one open, and every gap
            // below it filled.
            let highest = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
                .max()
                .unwrap();
            rustix::process::setrlimit(
                rustix::process::Resource::Nofile,
                rustix::process::Rlimit {
                    current: Some(highest + 1),
                    maximum: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
                },
            )
            .unwrap();
            let mut fillers = Vec::new();
            while let Ok(file) = std::fs::File::open("/dev/null") {
                fillers.push(file);
            }
            let limits = Limits {
                accept_error_pause: Duration::from_millis(200),
                ..Limits::default()
            };
            let counters = limits.counters.clone();
            let cancel = CancellationToken::new();
            let service = hyper_util::service::TowerToHyperService::new(up());
            let task = tokio::spawn(serve_with(
                "test",
                listener,
                None,
                service,
                limits,
                cancel.clone(),
            ));
            let started = tokio::time::timeout(GIVE_UP, async {
                while counters.accept_errors() == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            assert!(started.is_ok(), "accept never failed");
            // A second of failures: five with the pause; a spinning loop makes hundreds of
            // thousands.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let errors = counters.accept_errors();
            cancel.cancel();
            let _ = task.await;
            assert!(errors <= 20, "{errors} accept failures in about a second");
            assert_eq!(counters.accepted(), 0);
        });
    }
}
