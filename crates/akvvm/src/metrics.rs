//! Prometheus metrics: what `GET /metrics` answers while `akvvm run` runs with
//! `akvvm.metricsAddress` set.
//!
//! Two kinds of figures. Per certificate, read from the state the engine keeps when scraped:
//! whether a version is installed, its expiry, when it was installed, the last check and the
//! last successful one, and whether it is expiring (closer to expiry than `expiryWarningDays`,
//! or expired). Counters, kept in [`Metrics`] since the process started: failures by code,
//! installs and reload hook runs per certificate, Key Vault requests by vault and status, cycles;
//! and, with `loggingSettings`, the log records forwarded and dropped ([`LogForwarding`]).
//!
//! The text follows the Prometheus exposition format 0.0.4. Label values are escaped; nothing
//! secret is ever a label (URLs, versions, thumbprints and error codes only, never messages).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akvvm_cert::locks::MutexExt;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What `GET /metrics` answers: the sync engine implements it (the per-certificate figures come
/// from the state it keeps, the counters from its [`Metrics`]); this module needs nothing else of
/// it.
pub trait MetricsSource: Send + Sync {
    /// The Prometheus exposition text at `now`.
    fn metrics_text(&self, now: OffsetDateTime) -> String;
}

/// Counters since the process started, shared by the engine and the vault transports.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
    /// The log forwarder's figures, rendered with the others once the agent is given them
    /// ([`Metrics::show_log_forwarding`]).
    log_forwarding: Mutex<Option<Arc<LogForwarding>>>,
}

#[derive(Debug, Default)]
struct Counters {
    /// (vault host, HTTP status or `error`) -> attempts.
    requests: BTreeMap<(String, String), u64>,
    /// (URL, error code) -> failed checks.
    failures: BTreeMap<(String, String), u64>,
    /// URL -> versions installed.
    installs: BTreeMap<String, u64>,
    /// (URL, `success` | `failure`) -> reload hook runs (each after its retries).
    hooks: BTreeMap<(String, &'static str), u64>,
    /// URL -> last successful check.
    last_success: BTreeMap<String, OffsetDateTime>,
    /// Webhook requests by outcome (`validation`, `syncing`, `ignored`, `unauthorised`,
    /// `invalid`).
    webhook: BTreeMap<&'static str, u64>,
    cycles: u64,
    /// When the last cycle ended, and how long it took.
    last_cycle: Option<(OffsetDateTime, Duration)>,
}

/// One observed certificate as the scrape sees it.
#[derive(Debug, Clone, Default)]
pub struct CertificateView {
    pub url: String,
    pub vault: String,
    pub name: String,
    pub version: Option<String>,
    pub thumbprint: Option<String>,
    pub not_after: Option<OffsetDateTime>,
    pub installed_at: Option<OffsetDateTime>,
    pub last_check: Option<OffsetDateTime>,
    /// The code of the installed version's chain-validation warning, if it has one.
    pub chain_warning: Option<String>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock_or_recover()
    }

    /// Renders the log forwarder's `figures` with the other metrics from now on.
    pub fn show_log_forwarding(&self, figures: Arc<LogForwarding>) {
        *self.log_forwarding.lock_or_recover() = Some(figures);
    }

    /// One HTTP attempt to a vault: its status, or `None` when no answer came.
    pub fn record_request(&self, vault: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        *self
            .counters()
            .requests
            .entry((vault.to_string(), status))
            .or_default() += 1;
    }

    /// A check that reached Key Vault and found the installed version current, or installed a
    /// new one.
    pub fn record_success(&self, url: &str, at: OffsetDateTime, installed: bool) {
        let mut counters = self.counters();
        counters.last_success.insert(url.to_string(), at);
        if installed {
            *counters.installs.entry(url.to_string()).or_default() += 1;
        }
    }

    /// A failed check, by its stable error code.
    pub fn record_failure(&self, url: &str, code: &str) {
        *self
            .counters()
            .failures
            .entry((url.to_string(), code.to_string()))
            .or_default() += 1;
    }

    /// A reload hook that ran to its end (after its retries).
    pub fn record_hook(&self, url: &str, succeeded: bool) {
        let result = if succeeded { "success" } else { "failure" };
        *self
            .counters()
            .hooks
            .entry((url.to_string(), result))
            .or_default() += 1;
    }

    /// A webhook request and what came of it.
    pub fn record_webhook(&self, outcome: &'static str) {
        *self.counters().webhook.entry(outcome).or_default() += 1;
    }

    /// A cycle that ended at `at` after `took`.
    pub fn record_cycle(&self, at: OffsetDateTime, took: Duration) {
        let mut counters = self.counters();
        counters.cycles += 1;
        counters.last_cycle = Some((at, took));
    }

    /// The exposition text for `certificates` at `now`; `warn_days` is `expiryWarningDays`.
    pub fn render(
        &self,
        certificates: &[CertificateView],
        warn_days: u32,
        now: OffsetDateTime,
    ) -> String {
        let counters = self.counters();
        let mut out = Exposition::default();
        let labels = |c: &CertificateView| {
            vec![
                ("url", c.url.clone()),
                ("vault", c.vault.clone()),
                ("name", c.name.clone()),
            ]
        };

        out.family(
            "akvvm_certificate_installed",
            "gauge",
            "1 when a version of the observed certificate is installed, else 0.",
        );
        for c in certificates {
            out.sample(
                "akvvm_certificate_installed",
                &labels(c),
                f64::from(u8::from(c.version.is_some())),
            );
        }
        out.family(
            "akvvm_certificate_info",
            "gauge",
            "The installed version and thumbprint of each installed certificate (always 1).",
        );
        for c in certificates {
            if let Some(version) = &c.version {
                let mut l = labels(c);
                l.push(("version", version.clone()));
                l.push(("thumbprint", c.thumbprint.clone().unwrap_or_default()));
                out.sample("akvvm_certificate_info", &l, 1.0);
            }
        }
        out.family(
            "akvvm_certificate_chain_warning",
            "gauge",
            "1 when the installed version was installed with a chain-validation warning (4.x: \
             cert.chain_untrusted, an untrusted root or a self-signed certificate; \
             cert.chain_unverified, an incomplete chain), by code.",
        );
        for c in certificates {
            if let Some(code) = &c.chain_warning {
                let mut l = labels(c);
                l.push(("code", code.clone()));
                out.sample("akvvm_certificate_chain_warning", &l, 1.0);
            }
        }
        let timestamps: [(&str, &str, TimestampOf); 3] = [
            (
                "akvvm_certificate_not_after_timestamp_seconds",
                "When the installed certificate expires (Unix time).",
                |c| c.not_after,
            ),
            (
                "akvvm_certificate_installed_timestamp_seconds",
                "When the installed version was installed (Unix time).",
                |c| c.installed_at,
            ),
            (
                "akvvm_certificate_last_check_timestamp_seconds",
                "When Key Vault was last asked about the certificate, successfully or not (Unix time).",
                |c| c.last_check,
            ),
        ];
        for (name, help, get) in timestamps {
            out.family(name, "gauge", help);
            for c in certificates {
                if let Some(at) = get(c) {
                    out.sample(name, &labels(c), unix_seconds(at));
                }
            }
        }
        out.family(
            "akvvm_certificate_installed_version_age_seconds",
            "gauge",
            "How long the installed version has been in place.",
        );
        for c in certificates {
            if let Some(at) = c.installed_at {
                out.sample(
                    "akvvm_certificate_installed_version_age_seconds",
                    &labels(c),
                    (now - at).as_seconds_f64().max(0.0),
                );
            }
        }
        out.family(
            "akvvm_certificate_last_success_timestamp_seconds",
            "gauge",
            "When a check of the certificate last succeeded in this process (Unix time).",
        );
        for c in certificates {
            if let Some(at) = counters.last_success.get(&c.url) {
                out.sample(
                    "akvvm_certificate_last_success_timestamp_seconds",
                    &labels(c),
                    unix_seconds(*at),
                );
            }
        }
        out.family(
            "akvvm_certificate_expiring",
            "gauge",
            "1 when the installed certificate is expired or expires within expiryWarningDays, else 0.",
        );
        let threshold = time::Duration::days(i64::from(warn_days));
        for c in certificates {
            if let Some(not_after) = c.not_after {
                let expiring = not_after - now <= threshold;
                out.sample(
                    "akvvm_certificate_expiring",
                    &labels(c),
                    f64::from(u8::from(expiring)),
                );
            }
        }

        let by_url: BTreeMap<&str, &CertificateView> =
            certificates.iter().map(|c| (c.url.as_str(), c)).collect();
        let cert_labels = |url: &str| {
            by_url
                .get(url)
                .map_or_else(|| vec![("url", url.to_string())], |c| labels(c))
        };
        out.counter(
            "akvvm_certificate_failures_total",
            "Failed checks of the certificate, by error code (see docs/errors.md).",
            counters.failures.iter().map(|((url, code), count)| {
                let mut l = cert_labels(url);
                l.push(("code", code.clone()));
                (l, *count)
            }),
        );
        out.counter(
            "akvvm_certificate_installs_total",
            "New versions of the certificate installed by this process.",
            counters
                .installs
                .iter()
                .map(|(url, count)| (cert_labels(url), *count)),
        );
        out.counter(
            "akvvm_reload_hook_runs_total",
            "Reload hook runs after a new version, by result (a run includes its retries).",
            counters.hooks.iter().map(|((url, result), count)| {
                let mut l = cert_labels(url);
                l.push(("result", (*result).to_string()));
                (l, *count)
            }),
        );
        out.counter(
            "akvvm_vault_requests_total",
            "HTTP attempts to Key Vault, by vault host and status (\"error\": no answer).",
            counters.requests.iter().map(|((vault, status), count)| {
                (
                    vec![("vault", vault.clone()), ("status", status.clone())],
                    *count,
                )
            }),
        );
        out.counter(
            "akvvm_webhook_requests_total",
            "Event Grid webhook requests by outcome: validation, syncing (named an observed \
             certificate), ignored, unauthorised (no or a wrong secret), invalid (not events).",
            counters
                .webhook
                .iter()
                .map(|(outcome, count)| (vec![("outcome", (*outcome).to_string())], *count)),
        );
        out.family(
            "akvvm_sync_cycles_total",
            "counter",
            "Sync cycles completed.",
        );
        out.sample("akvvm_sync_cycles_total", &[], counters.cycles as f64);
        if let Some((at, took)) = counters.last_cycle {
            out.family(
                "akvvm_sync_last_cycle_timestamp_seconds",
                "gauge",
                "When the last sync cycle ended (Unix time).",
            );
            out.sample(
                "akvvm_sync_last_cycle_timestamp_seconds",
                &[],
                unix_seconds(at),
            );
            out.family(
                "akvvm_sync_last_cycle_duration_seconds",
                "gauge",
                "How long the last sync cycle took.",
            );
            out.sample(
                "akvvm_sync_last_cycle_duration_seconds",
                &[],
                took.as_secs_f64(),
            );
        }
        drop(counters);
        let forwarding = self.log_forwarding.lock_or_recover().clone();
        if let Some(forwarding) = forwarding {
            forwarding.render(&mut out);
        }
        out.text
    }
}

/// The figures of log forwarding (`loggingSettings`), kept by the sender in `logship` and
/// rendered with the other metrics once the agent is given them
/// ([`Metrics::show_log_forwarding`]).
#[derive(Debug, Default)]
pub struct LogForwarding {
    /// Records the collector acknowledged.
    pub records_sent: AtomicU64,
    /// Records dropped: the queue or the buffer was full, or they were still buffered at exit.
    pub records_dropped: AtomicU64,
    /// Records waiting in the buffer for the collector.
    pub records_buffered: AtomicU64,
    /// Whether a connection to the collector is open.
    pub connected: AtomicBool,
}

impl LogForwarding {
    fn render(&self, out: &mut Exposition) {
        let figures: [(&str, &str, &str, f64); 4] = [
            (
                "akvvm_log_records_forwarded_total",
                "counter",
                "Log records the Fluentd collector acknowledged (loggingSettings).",
                self.records_sent.load(Ordering::Relaxed) as f64,
            ),
            (
                "akvvm_log_records_dropped_total",
                "counter",
                "Log records dropped instead of forwarded: the queue or the buffer was full while \
                 the collector was unreachable or slow, or they were unsent at exit.",
                self.records_dropped.load(Ordering::Relaxed) as f64,
            ),
            (
                "akvvm_log_records_buffered",
                "gauge",
                "Log records waiting to be forwarded.",
                self.records_buffered.load(Ordering::Relaxed) as f64,
            ),
            (
                "akvvm_log_collector_connected",
                "gauge",
                "1 while a connection to the Fluentd collector is open, else 0.",
                f64::from(u8::from(self.connected.load(Ordering::Relaxed))),
            ),
        ];
        for (name, kind, help, value) in figures {
            out.family(name, kind, help);
            out.sample(name, &[], value);
        }
    }
}

/// Reads one timestamp of a certificate.
type TimestampOf = fn(&CertificateView) -> Option<OffsetDateTime>;

fn unix_seconds(at: OffsetDateTime) -> f64 {
    (at - OffsetDateTime::UNIX_EPOCH).as_seconds_f64()
}

/// Builds exposition text.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// A counter family and its samples, one per label set.
    fn counter<'a>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Vec<(&'a str, String)>, u64)>,
    ) {
        self.family(name, "counter", help);
        for (labels, count) in samples {
            self.sample(name, &labels, count as f64);
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, String)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the exposition format wants it: `\`, `"` and newlines escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Serves `GET /metrics` on `listener` until `cancel`; any other path is a 404.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn MetricsSource>,
    cancel: CancellationToken,
) {
    use axum::http::{StatusCode, header};
    use axum::routing::get;

    let router = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let source = source.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, CONTENT_TYPE)],
                        source.metrics_text(OffsetDateTime::now_utc()),
                    )
                }
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "akvvm serves Prometheus metrics at /metrics\n",
            )
        });
    crate::listener::serve_router("metrics", listener, None, router, cancel).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-22 12:00 UTC);

    #[test]
    fn log_forwarding_figures_are_rendered() {
        let figures = LogForwarding::default();
        figures.records_sent.store(7, Ordering::Relaxed);
        figures.records_dropped.store(3, Ordering::Relaxed);
        figures.records_buffered.store(2, Ordering::Relaxed);
        let mut out = Exposition::default();
        figures.render(&mut out);
        for line in [
            "# TYPE akvvm_log_records_forwarded_total counter\nakvvm_log_records_forwarded_total 7\n",
            "# TYPE akvvm_log_records_dropped_total counter\nakvvm_log_records_dropped_total 3\n",
            "# TYPE akvvm_log_records_buffered gauge\nakvvm_log_records_buffered 2\n",
            "# TYPE akvvm_log_collector_connected gauge\nakvvm_log_collector_connected 0\n",
        ] {
            assert!(out.text.contains(line), "{line}\n{}", out.text);
        }
    }

    fn view(url: &str, not_after: Option<OffsetDateTime>) -> CertificateView {
        CertificateView {
            url: url.to_string(),
            vault: "contoso".into(),
            name: url.rsplit('/').next().unwrap().to_string(),
            version: not_after.map(|_| "0123abcd".to_string()),
            thumbprint: not_after.map(|_| "9F1C".to_string()),
            not_after,
            installed_at: not_after.map(|_| NOW - time::Duration::hours(2)),
            last_check: Some(NOW - time::Duration::minutes(1)),
            chain_warning: None,
        }
    }

    fn value_of<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn certificates_are_reported_with_expiry_and_age() {
        let metrics = Metrics::new();
        let web = "https://contoso.vault.azure.net/secrets/web";
        let old = "https://contoso.vault.azure.net/secrets/old";
        let missing = "https://contoso.vault.azure.net/secrets/missing";
        let views = [
            view(web, Some(NOW + time::Duration::days(90))),
            view(old, Some(NOW + time::Duration::days(10))),
            view(missing, None),
        ];
        metrics.record_success(web, NOW, true);
        metrics.record_failure(missing, "vault.secret_not_found");
        metrics.record_failure(missing, "vault.secret_not_found");
        metrics.record_request("contoso.vault.azure.net", Some(200));
        metrics.record_request("contoso.vault.azure.net", None);
        metrics.record_hook(web, false);
        metrics.record_cycle(NOW, Duration::from_millis(1500));
        let text = metrics.render(&views, 30, NOW);

        let labels = |url: &str| {
            format!(
                "{{url=\"{url}\",vault=\"contoso\",name=\"{}\"}}",
                url.rsplit('/').next().unwrap()
            )
        };
        let get = |metric: &str, url: &str| value_of(&text, &format!("{metric}{}", labels(url)));
        assert_eq!(get("akvvm_certificate_installed", web), Some("1"));
        assert_eq!(get("akvvm_certificate_installed", missing), Some("0"));
        assert_eq!(get("akvvm_certificate_expiring", web), Some("0"));
        assert_eq!(get("akvvm_certificate_expiring", old), Some("1"));
        assert_eq!(get("akvvm_certificate_expiring", missing), None);
        assert_eq!(
            get("akvvm_certificate_installed_version_age_seconds", web),
            Some("7200")
        );
        assert_eq!(
            get("akvvm_certificate_not_after_timestamp_seconds", web),
            Some(
                unix_seconds(NOW + time::Duration::days(90))
                    .to_string()
                    .as_str()
            )
        );
        assert_eq!(
            get("akvvm_certificate_last_success_timestamp_seconds", web),
            Some(unix_seconds(NOW).to_string().as_str())
        );
        assert_eq!(
            get("akvvm_certificate_last_success_timestamp_seconds", missing),
            None
        );
        assert_eq!(
            value_of(
                &text,
                &format!(
                    "akvvm_certificate_failures_total{{url=\"{missing}\",vault=\"contoso\",name=\"missing\",code=\"vault.secret_not_found\"}}"
                )
            ),
            Some("2")
        );
        assert_eq!(
            value_of(
                &text,
                &format!(
                    "akvvm_certificate_info{{url=\"{web}\",vault=\"contoso\",name=\"web\",version=\"0123abcd\",thumbprint=\"9F1C\"}}"
                )
            ),
            Some("1")
        );
        assert_eq!(
            value_of(
                &text,
                "akvvm_vault_requests_total{vault=\"contoso.vault.azure.net\",status=\"error\"}"
            ),
            Some("1")
        );
        assert_eq!(
            value_of(
                &text,
                &format!(
                    "akvvm_reload_hook_runs_total{{url=\"{web}\",vault=\"contoso\",name=\"web\",result=\"failure\"}}"
                )
            ),
            Some("1")
        );
        assert_eq!(value_of(&text, "akvvm_sync_cycles_total"), Some("1"));
        assert_eq!(
            value_of(&text, "akvvm_sync_last_cycle_duration_seconds"),
            Some("1.5")
        );
    }

    #[test]
    fn every_family_has_help_and_type_once() {
        let metrics = Metrics::new();
        metrics.record_cycle(NOW, Duration::from_secs(1));
        let text = metrics.render(
            &[view("https://v.vault.azure.net/secrets/c", Some(NOW))],
            30,
            NOW,
        );
        let mut types = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!types.contains(&name), "{name} declared twice");
                types.push(name);
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(
                    types.contains(&name),
                    "{name} sampled before its TYPE: {text}"
                );
            }
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
