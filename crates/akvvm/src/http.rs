//! The one HTTP client akvvm uses, and its retry policy as data.
//!
//! Every outbound request (IMDS, Entra ID, Key Vault) goes through a [`reqwest::Client`] built by
//! [`build_client`] from [`HttpOptions`]:
//! - extra trusted CA roots (PEM files) on top of the platform's roots, for TLS-inspecting proxies
//!   and the local vault;
//! - host name overrides (`myvault.vault.azure.net` -> `127.0.0.1:8443`), for the local vault and
//!   private endpoints without touching `/etc/hosts`;
//! - `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment (reqwest's system proxy); the TLS
//!   session is tunnelled through the proxy, so the extra roots still apply end to end;
//! - connect and request timeouts (`akvvm.requestTimeoutInS`), and the user agent
//!   `akvvm/<version>`;
//! - the system resolver, except that names under `.invalid` fail without a query (RFC 6761).
//!
//! A proxy resolves host names itself, so host overrides do not apply to proxied requests: list
//! the overridden hosts (private endpoints, the local vault) in `NO_PROXY`. IMDS is always
//! reached directly ([`HttpOptions::direct`]).
//!
//! Build one client per vault and keep it: it pools connections.
//!
//! Retrying is data, not code: a [`RetryPolicy`] says which statuses retry, the exponential
//! backoff with full jitter and its cap, the maximum number of attempts and the overall deadline,
//! and whether `Retry-After` is honoured. [`send_with_retry`] applies a policy to any request;
//! the Key Vault transport (in the `vault` module) applies the same policy to the SDK's requests.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::time::Instant;
use tracing::Instrument;

/// The user agent of every request akvvm sends.
pub const USER_AGENT: &str = concat!("akvvm/", env!("CARGO_PKG_VERSION"));

/// Default time allowed to establish a TCP (and TLS) connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time allowed for one whole request, from sending to the last byte of the answer
/// (the default of the `requestTimeoutInS` setting).
pub use crate::settings::DEFAULT_REQUEST_TIMEOUT;

mod body;
pub use body::{BodyError, MAX_BODY_BYTES, capped_stream, read_body};
mod dns;
pub use dns::{SystemResolver, is_reserved_invalid};

/// Errors while building the client or sending a request.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// An extra CA root file could not be read.
    #[error("failed to read the CA root file {}: {source}", path.display())]
    ReadCaRoot {
        /// The file named in the settings.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An extra CA root file holds no usable certificate.
    #[error(
        "the CA root file {} holds no PEM certificate: {reason}; give a file with one or more \
         -----BEGIN CERTIFICATE----- blocks",
        path.display()
    )]
    InvalidCaRoot {
        /// The file named in the settings.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// A host override is malformed.
    #[error(
        "invalid host override {host:?} -> {value:?}: {reason}; give an address such as \
         \"127.0.0.1:8443\" or \"10.0.0.5\" (the port then comes from the URL)"
    )]
    InvalidHostOverride {
        /// The host name being overridden.
        host: String,
        /// The address given for it.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// reqwest refused the configuration.
    #[error("failed to build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// A request could not be sent or its answer not read, after every retry.
    #[error("request to {url} failed after {attempts} attempt(s): {source}")]
    Send {
        /// The URL, without its query string.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last transport error.
        source: reqwest::Error,
    },
    /// An extra CA root file could be written by someone but root.
    #[error(transparent)]
    Untrusted(#[from] crate::trusted::Untrusted),
}

akvvm_cert::error_codes! {
    HttpError {
        HttpError::ReadCaRoot { .. } => "http.ca_root_unreadable",
        HttpError::InvalidCaRoot { .. } => "http.ca_root_invalid",
        HttpError::InvalidHostOverride { .. } => "http.host_override_invalid",
        HttpError::Build(_) => "http.client_build",
        HttpError::Send { .. } => "http.transport",
    }
    passes through {
        HttpError::Untrusted(e) => e,
    }
}

/// One host name mapped to a fixed address, like an `/etc/hosts` line for akvvm alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostOverride {
    host: String,
    addr: SocketAddr,
}

impl HostOverride {
    /// Parses `value` as `IP:PORT` (`127.0.0.1:8443`, `[::1]:8443`) or a bare IP (the port then
    /// comes from the URL, or the scheme's default).
    pub fn parse(host: &str, value: &str) -> Result<Self, HttpError> {
        let invalid = |reason: &str| HttpError::InvalidHostOverride {
            host: host.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let host_trimmed = host.trim().trim_end_matches('.');
        if host_trimmed.is_empty()
            || !host_trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(invalid("the host name must be a DNS name"));
        }
        let value_trimmed = value.trim();
        let addr = if let Ok(addr) = value_trimmed.parse::<SocketAddr>() {
            addr
        } else if let Ok(ip) = value_trimmed
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            // Port 0 tells reqwest to use the URL's port or the scheme's default.
            SocketAddr::new(ip, 0)
        } else {
            return Err(invalid("not an IP address or IP:port"));
        };
        Ok(Self {
            host: host_trimmed.to_ascii_lowercase(),
            addr,
        })
    }

    /// Maps `host` to `addr` (port 0 meaning "the URL's port").
    pub fn new(host: &str, addr: SocketAddr) -> Self {
        Self {
            host: host.trim().trim_end_matches('.').to_ascii_lowercase(),
            addr,
        }
    }

    /// The overridden host name, lower case.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The address it maps to; port 0 means "the URL's port".
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// How the client reaches the network.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// Honour `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` from the environment.
    #[default]
    FromEnvironment,
    /// Always connect directly (IMDS must never go through a proxy).
    Direct,
    /// Send every request through this proxy URL, except hosts matched by `no_proxy`
    /// (the `NO_PROXY` syntax: comma-separated names, domains and CIDR ranges).
    Explicit {
        /// `http://proxy:3128`.
        url: String,
        /// Hosts that bypass the proxy.
        no_proxy: Option<String>,
    },
}

/// Everything [`build_client`] needs. Defaults: platform roots only, no overrides, proxies from
/// the environment, [`DEFAULT_CONNECT_TIMEOUT`] and [`DEFAULT_REQUEST_TIMEOUT`].
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// PEM files whose certificates are trusted in addition to the platform's roots.
    pub extra_ca_files: Vec<PathBuf>,
    /// PEM text whose certificates are trusted in addition to the platform's roots.
    pub extra_ca_pems: Vec<String>,
    /// Host names mapped to fixed addresses.
    pub host_overrides: Vec<HostOverride>,
    /// Proxy handling.
    pub proxy: ProxyMode,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request.
    pub request_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            extra_ca_files: Vec::new(),
            extra_ca_pems: Vec::new(),
            host_overrides: Vec::new(),
            proxy: ProxyMode::FromEnvironment,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl HttpOptions {
    /// The options the settings' `"akvvm"` object asks for: `caCertificates` as extra roots and
    /// `resolve` as host overrides, `requestTimeoutInS` as the request timeout; proxies from the
    /// environment, the default connect timeout.
    pub fn from_settings(agent: &crate::settings::AgentOptions) -> Self {
        Self {
            extra_ca_files: agent.ca_certificates.clone(),
            host_overrides: agent
                .resolve
                .iter()
                .map(|(host, target)| {
                    let addr = match *target {
                        crate::settings::ResolveTarget::Ip(ip) => SocketAddr::new(ip, 0),
                        crate::settings::ResolveTarget::Socket(addr) => addr,
                    };
                    HostOverride::new(host, addr)
                })
                .collect(),
            request_timeout: agent.request_timeout,
            proxy: proxy_mode(&agent.waagent_config, |name| std::env::var(name).ok()),
            ..Self::default()
        }
    }

    /// The same options with proxies turned off: what the IMDS client uses.
    pub fn direct(&self) -> Self {
        Self {
            proxy: ProxyMode::Direct,
            ..self.clone()
        }
    }
}

/// The proxy for Key Vault and Entra ID: the environment's when `HTTPS_PROXY` or `https_proxy`
/// is set, else the guest agent's (`HttpProxy.Host` and `HttpProxy.Port` in `waagent_conf`),
/// bypassed for `NO_PROXY`/`no_proxy` hosts, else none but what the environment says. IMDS,
/// the WireServer and Azure Arc's local endpoint never use it ([`HttpOptions::direct`]).
pub fn proxy_mode(waagent_conf: &Path, env: impl Fn(&str) -> Option<String>) -> ProxyMode {
    let set = |name: &str| env(name).is_some_and(|v| !v.trim().is_empty());
    if set("HTTPS_PROXY") || set("https_proxy") {
        return ProxyMode::FromEnvironment;
    }
    let Ok(text) = std::fs::read_to_string(waagent_conf) else {
        return ProxyMode::FromEnvironment;
    };
    match waagent_proxy(&text) {
        Ok(Some(url)) => ProxyMode::Explicit {
            url,
            no_proxy: env("NO_PROXY")
                .or_else(|| env("no_proxy"))
                .filter(|v| !v.trim().is_empty()),
        },
        Ok(None) => ProxyMode::FromEnvironment,
        Err(problem) => {
            let problem = problem.to_string();
            tracing::warn!(file = %waagent_conf.display(), problem, "ignoring the guest agent's proxy setting");
            ProxyMode::FromEnvironment
        }
    }
}

/// Why waagent.conf's proxy setting is unusable ([`waagent_proxy`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaagentProxyError {
    #[error("HttpProxy.Host is {host:?} but HttpProxy.Port is not set")]
    NoPort { host: String },
    #[error("HttpProxy.Port {port:?} is not a port number")]
    BadPort { port: String },
    #[error("HttpProxy.Host {host:?} is not a host name")]
    BadHost { host: String },
}

/// `http://<HttpProxy.Host>:<HttpProxy.Port>` from waagent.conf's text (`Key=Value` lines, `#`
/// comments, `None` or empty meaning unset), or why it is unusable.
pub fn waagent_proxy(text: &str) -> Result<Option<String>, WaagentProxyError> {
    let mut host = None;
    let mut port = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        let value = (!value.is_empty() && value != "None").then(|| value.to_owned());
        match key.trim() {
            "HttpProxy.Host" => host = value,
            "HttpProxy.Port" => port = value,
            _ => {}
        }
    }
    let Some(host) = host else { return Ok(None) };
    let Some(port) = port else {
        return Err(WaagentProxyError::NoPort { host });
    };
    let port: u16 = port
        .parse()
        .map_err(|_| WaagentProxyError::BadPort { port: port.clone() })?;
    let host = host
        .strip_prefix("http://")
        .unwrap_or(&host)
        .trim_end_matches('/');
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(WaagentProxyError::BadHost {
            host: host.to_owned(),
        });
    }
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Ok(Some(format!("http://{host}:{port}")))
}

/// Builds the reqwest client described by `options`.
///
/// Redirects are not followed (Azure services don't redirect, and a redirect must never carry a
/// token elsewhere).
pub fn build_client(options: &HttpOptions) -> Result<reqwest::Client, HttpError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .dns_resolver(std::sync::Arc::new(dns::SystemResolver))
        .redirect(reqwest::redirect::Policy::none());

    let mut roots = Vec::new();
    for path in &options.extra_ca_files {
        let pem = crate::trusted::read("CA root file", path).map_err(|e| match e {
            crate::trusted::Read::Io(source) => HttpError::ReadCaRoot {
                path: path.clone(),
                source,
            },
            crate::trusted::Read::Untrusted(e) => HttpError::Untrusted(e),
        })?;
        roots.extend(parse_ca_bundle(path, &pem)?);
    }
    for (index, pem) in options.extra_ca_pems.iter().enumerate() {
        let label = PathBuf::from(format!("<inline CA root #{}>", index + 1));
        roots.extend(parse_ca_bundle(&label, pem.as_bytes())?);
    }
    if !roots.is_empty() {
        builder = builder.tls_certs_merge(roots);
    }

    for host_override in &options.host_overrides {
        builder = builder.resolve(&host_override.host, host_override.addr);
    }

    match &options.proxy {
        ProxyMode::FromEnvironment => {}
        ProxyMode::Direct => builder = builder.no_proxy(),
        ProxyMode::Explicit { url, no_proxy } => {
            let proxy = reqwest::Proxy::all(url.as_str())
                .map_err(HttpError::Build)?
                .no_proxy(no_proxy.as_deref().and_then(reqwest::NoProxy::from_string));
            builder = builder.proxy(proxy);
        }
    }

    builder.build().map_err(HttpError::Build)
}

/// Parses every certificate of a PEM bundle; a file without one is an error.
fn parse_ca_bundle(path: &Path, pem: &[u8]) -> Result<Vec<reqwest::Certificate>, HttpError> {
    let invalid = |reason: String| HttpError::InvalidCaRoot {
        path: path.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(pem).map_err(|_| invalid("not UTF-8 text".to_owned()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(invalid("no CERTIFICATE block found".to_owned()));
    }
    reqwest::Certificate::from_pem_bundle(pem).map_err(|err| invalid(err.to_string()))
}

/// The shortest deadline [`RetryPolicy::capped`] leaves: enough for a short burst of errors to
/// be retried within one check, even with a polling interval of a second.
pub const MIN_CAPPED_DEADLINE: Duration = Duration::from_secs(10);

/// Which answers are retried and how long to wait between attempts.
///
/// Delays follow exponential backoff with full jitter: before retry `n` (1-based) the client
/// sleeps a uniformly random time in `[0, min(max_delay, initial_delay * 2^(n-1))]`, unless the
/// answer carried `Retry-After` and `honour_retry_after` is set, in which case it sleeps exactly
/// that long. Retrying stops after `max_attempts` attempts, or when the next sleep would end past
/// `deadline` (measured from the first attempt); the last answer is then returned as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// HTTP statuses that are retried.
    pub retry_statuses: Vec<u16>,
    /// Whether every 5xx status is retried (in addition to `retry_statuses`).
    pub retry_server_errors: bool,
    /// Whether connection errors and timeouts are retried.
    pub retry_transport_errors: bool,
    /// The backoff ceiling before the first retry.
    pub initial_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
    /// Total attempts, the first one included (1 means no retry).
    pub max_attempts: u32,
    /// Overall time budget from the first attempt; `None` means only `max_attempts` bounds it.
    pub deadline: Option<Duration>,
    /// Whether a `Retry-After` (seconds or HTTP date) replaces the computed backoff.
    pub honour_retry_after: bool,
    /// Whether 429 answers are retried past `max_attempts`, until `deadline`: throttling says
    /// "later", not "never", and a client that gives up after a few quick tries never gets
    /// through a vault that a whole fleet is waiting on.
    pub retry_throttling_until_deadline: bool,
}

/// The longest full-jitter pause after a 429 (on top of `Retry-After`). Key Vault counts requests
/// over 10-second windows: a throttled client that waits longer than about one window only comes
/// back after the vault has freed up. With a ceiling growing past it (16 s, 32 s, ...), the last
/// machines of a fleet booting together arrived up to 16 s after the vault had room for them.
pub const THROTTLE_JITTER_MAX: Duration = Duration::from_secs(8);

impl RetryPolicy {
    /// This policy with no backoff pause longer than `cap`, and no deadline past `cap` or
    /// [`MIN_CAPPED_DEADLINE`], whichever is longer (a server's `Retry-After` is honoured as it
    /// is, past `cap`, only while it ends before that deadline; a longer one ends the check) (the agent passes its polling interval: a
    /// short interval, as with the local vault, also retries quickly, and one check does not
    /// retry long past the next cycle, which tries again anyway; until a check ends, its cycle's
    /// status and the other certificates' next checks wait on it).
    pub fn capped(mut self, cap: Duration) -> Self {
        self.max_delay = self.max_delay.min(cap);
        self.initial_delay = self.initial_delay.min(cap / 4);
        self.deadline = self
            .deadline
            .map(|deadline| deadline.min(cap.max(MIN_CAPPED_DEADLINE)));
        self
    }

    /// IMDS: 404 and 410 (the identity is not ready yet at boot), 429 and 5xx; up to 8 attempts
    /// within two minutes, 1 s doubling to 30 s.
    pub fn imds() -> Self {
        Self {
            retry_statuses: vec![404, 410, 429],
            retry_server_errors: true,
            retry_transport_errors: true,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_attempts: 8,
            deadline: Some(Duration::from_secs(120)),
            honour_retry_after: true,
            retry_throttling_until_deadline: false,
        }
    }

    /// Entra ID token endpoint: 429 and 5xx; up to 4 attempts within a minute.
    pub fn entra() -> Self {
        Self {
            retry_statuses: vec![429],
            retry_server_errors: true,
            retry_transport_errors: true,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(20),
            max_attempts: 4,
            deadline: Some(Duration::from_secs(60)),
            honour_retry_after: true,
            retry_throttling_until_deadline: false,
        }
    }

    /// Key Vault: 429 and 5xx; up to 6 attempts (429s: as many as fit) within five minutes, 1 s
    /// doubling to 60 s.
    pub fn key_vault() -> Self {
        Self {
            retry_statuses: vec![429],
            retry_server_errors: true,
            retry_transport_errors: true,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_attempts: 6,
            deadline: Some(Duration::from_secs(300)),
            honour_retry_after: true,
            retry_throttling_until_deadline: true,
        }
    }

    /// A policy that never retries.
    pub fn no_retry() -> Self {
        Self {
            retry_statuses: Vec::new(),
            retry_server_errors: false,
            retry_transport_errors: false,
            initial_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            max_attempts: 1,
            deadline: None,
            honour_retry_after: false,
            retry_throttling_until_deadline: false,
        }
    }

    /// Whether an answer with this status is retried.
    pub fn retries_status(&self, status: u16) -> bool {
        self.retry_statuses.contains(&status) || (self.retry_server_errors && status >= 500)
    }

    /// The backoff ceiling before retry `retry` (1-based): `min(max_delay, initial * 2^(retry-1))`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// A full-jitter backoff before retry `retry`: uniform in `[0, backoff_ceiling(retry)]`.
    pub fn jittered_backoff(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }

    /// The pause after a 429 when `streak` 429s came in a row from this server (1 for the first):
    /// its `Retry-After` (when honoured) plus a full-jitter backoff for the streak, so that the
    /// many clients told the same `Retry-After` do not all come back in the same second and each
    /// repeated 429 spreads them further; without `Retry-After`, the full-jitter backoff alone.
    /// The jitter's ceiling stops growing at [`THROTTLE_JITTER_MAX`].
    pub fn throttle_delay(
        &self,
        streak: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let ceiling = self.backoff_ceiling(streak.max(1)).min(THROTTLE_JITTER_MAX);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jitter = Duration::from_nanos(rng.random_range(0..=nanos));
        match retry_after {
            Some(wanted) if self.honour_retry_after => wanted.saturating_add(jitter),
            _ => jitter,
        }
    }

    /// Whether a 429 after attempt `attempt`, followed by a pause of `delay`, is retried.
    pub fn retries_throttling(&self, attempt: u32, delay: Duration, elapsed: Duration) -> bool {
        if attempt >= self.max_attempts && !self.retry_throttling_until_deadline {
            return false;
        }
        self.deadline
            .is_none_or(|deadline| elapsed.saturating_add(delay) <= deadline)
    }

    /// Decides what happens after attempt number `attempt` (1-based) got a retryable outcome:
    /// `Some(delay)` to sleep and retry, `None` to stop. `retry_after` is the server's wish,
    /// `elapsed` the time since the first attempt started.
    pub fn next_delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        elapsed: Duration,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let delay = match retry_after {
            Some(wanted) if self.honour_retry_after => wanted,
            _ => self.jittered_backoff(attempt, &mut rand::rng()),
        };
        if let Some(deadline) = self.deadline
            && elapsed.saturating_add(delay) > deadline
        {
            return None;
        }
        Some(delay)
    }
}

/// Reads `Retry-After` (delta seconds, or an HTTP date) and the `x-ms-retry-after-ms` /
/// `retry-after-ms` variants Azure services also send.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    for name in ["x-ms-retry-after-ms", "retry-after-ms"] {
        if let Some(ms) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// Parses one `Retry-After` value: delta seconds (`"120"`) or an HTTP date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, a date in the past meaning "now").
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Sends the request `build` makes, again and again as `policy` says, and returns the first
/// answer that is not retried (a success, a permanent error, or the last retryable one).
///
/// `build` is called once per attempt, so bodies are rebuilt. Each attempt is logged at debug
/// level in an `http_attempt` span with `attempt` and `status` fields; URLs are logged without
/// their query string.
pub async fn send_with_retry<F>(
    policy: &RetryPolicy,
    mut build: F,
) -> Result<reqwest::Response, HttpError>
where
    F: FnMut() -> reqwest::RequestBuilder,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let span = tracing::debug_span!("http_attempt", attempt, status = tracing::field::Empty);
        let outcome = build().send().instrument(span.clone()).await;
        let delay = match outcome {
            Ok(response) => {
                let status = response.status().as_u16();
                span.record("status", status);
                if !policy.retries_status(status) {
                    return Ok(response);
                }
                let wanted = retry_after(response.headers(), SystemTime::now());
                let Some(delay) = policy.next_delay(attempt, wanted, started.elapsed()) else {
                    return Ok(response);
                };
                tracing::debug!(
                    parent: &span,
                    url = %redact_url(response.url()),
                    status,
                    delay_ms = millis(delay),
                    "retrying after a retryable answer"
                );
                delay
            }
            Err(err) => {
                let retry = if policy.retry_transport_errors && is_transient(&err) {
                    policy.next_delay(attempt, None, started.elapsed())
                } else {
                    None
                };
                let Some(delay) = retry else {
                    return Err(HttpError::Send {
                        url: err.url().map(redact_url).unwrap_or_default(),
                        attempts: attempt,
                        source: err.without_url(),
                    });
                };
                tracing::debug!(
                    parent: &span,
                    error = %err.without_url(),
                    delay_ms = millis(delay),
                    "retrying after a transport error"
                );
                delay
            }
        };
        tokio::time::sleep(delay).await;
    }
}

/// A duration in whole milliseconds, for log fields.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a transport error is worth retrying (connect failures, timeouts, resets).
pub fn is_transient(err: &reqwest::Error) -> bool {
    err.is_connect() || err.is_timeout() || err.is_request() || err.is_body()
}

/// The URL without query string or fragment, for logs and error messages.
pub fn redact_url(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

#[cfg(test)]
mod tests;
