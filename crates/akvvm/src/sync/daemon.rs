//! The polling loop of `akvvm run`: cycles, retries, the status file, systemd readiness.
//!
//! Phases: with `requireInitialSync`, the status is `transitioning` until every certificate is
//! installed, then `success`; after `initialSyncRetries` failed attempts it becomes `error` while
//! retrying goes on with a growing backoff. Without it, the status is `success` as soon as polling
//! has started. systemd hears `READY=1` after the initial sync (or once its retry budget is spent,
//! so that boot is not held forever), or at once without `requireInitialSync`, and a `STATUS=`
//! line after each cycle.
//!
//! In extension 4.x mode `requireInitialSync` is gone and the status always follows the
//! certificates (`Phase::AllInstalled`): `success` only while every certificate is installed,
//! `transitioning` while one is not (retried with a growing backoff), and `error` naming each
//! certificate not installed after `initialSyncRetries` (25) attempts, while retrying goes on.
//! systemd hears `READY=1` once every certificate is installed or one has spent its attempts.
//!
//! The loop waits on one [`CancellationToken`] (SIGTERM/SIGINT), one [`Notify`] (SIGHUP,
//! `akvvm sync --now`) and, when the webhook runs, the [`SyncRequests`] queue it fills; the
//! caller wires the signals to them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{CertReport, Engine, jittered_interval, startup_pause};
use crate::status::{Report, State, StatusFile, TRANSITIONING_REWRITE_INTERVAL};

/// The operation name reported in the status file.
pub const OPERATION: &str = "Enable";

/// Where the daemon reports, besides its logs.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// The VM extension status file, when running as an extension.
    pub status_file: Option<StatusFile>,
    /// Whether to talk to systemd (`NOTIFY_SOCKET`).
    pub notify_systemd: bool,
    /// Certificates to check at once, between cycles (the webhook's pushes).
    pub requests: Option<Arc<SyncRequests>>,
    /// The log forwarder (`loggingSettings`), whose line each status report ends with.
    pub log_shipping: Option<crate::logship::ForwardingStatus>,
}

/// Certificates asked to be checked now, between cycles (the webhook's pushes); the daemon
/// takes them.
#[derive(Debug, Default)]
pub struct SyncRequests {
    urls: Mutex<BTreeSet<String>>,
    notify: Notify,
}

impl SyncRequests {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Queues `urls` and wakes the daemon.
    pub fn request(&self, urls: impl IntoIterator<Item = String>) {
        self.urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(urls);
        self.notify.notify_one();
    }

    /// Waits until something is queued.
    pub async fn requested(&self) {
        self.notify.notified().await;
    }

    /// Everything queued so far, emptying the queue.
    pub fn take(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.urls.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Where the initial sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `requireInitialSync`, not every certificate installed yet, `attempts` cycles so far.
    Initial { attempts: u32 },
    /// Polling: either the initial sync completed or it was not required.
    Polling,
    /// Extension 4.x: the state follows whether every certificate is installed, always.
    AllInstalled,
}

struct Reporter {
    options: DaemonOptions,
    warn_days: u32,
    ready_sent: bool,
    last: Option<Report>,
    /// The observed URLs in the settings' order: the substatus order.
    order: Vec<String>,
    /// Each certificate's substatus line, rendered when its result came in: a push re-renders
    /// its own line, not the 10,000 others (a full cycle re-renders every line, so that expiry
    /// warnings follow the clock).
    lines: std::collections::HashMap<String, crate::status::Substatus>,
    /// 4.x: the checks of each certificate not installed yet, in a row (an installed one has
    /// none).
    attempts: std::collections::HashMap<String, u32>,
}

impl Reporter {
    fn write(&mut self, report: Report) {
        if let Some(file) = &self.options.status_file {
            let written = match &self.options.log_shipping {
                Some(shipping) => {
                    let mut report = report.clone();
                    report.substatus.push(shipping.substatus());
                    file.write(&report, OffsetDateTime::now_utc())
                }
                None => file.write(&report, OffsetDateTime::now_utc()),
            };
            if let Err(e) = written {
                tracing::error!(error = %e, code = e.code(), "failed to write the status file");
            }
        }
        self.notify(&[sd_notify::NotifyState::Status(&report.message)]);
        self.last = Some(report);
    }

    /// Rewrites the last report with a fresh timestamp.
    fn refresh(&mut self) {
        if let Some(report) = self.last.take() {
            self.write(report);
        }
    }

    fn ready(&mut self) {
        if !self.ready_sent {
            self.ready_sent = true;
            self.notify(&[sd_notify::NotifyState::Ready]);
        }
    }

    fn notify(&self, states: &[sd_notify::NotifyState<'_>]) {
        if self.options.notify_systemd
            && let Err(e) = sd_notify::notify(false, states)
        {
            tracing::debug!(error = %e, "cannot notify systemd");
        }
    }

    /// Renders the substatus line of `result` (as of `now`) for the next reports.
    fn note(&mut self, result: &CertReport, now: OffsetDateTime) {
        let line = result.substatus(now, self.warn_days);
        self.lines.insert(result.url.clone(), line);
    }

    /// 4.x: the certificates not installed after `retries` checks, in the settings' order.
    fn stuck(&self, retries: u32) -> Vec<&str> {
        self.order
            .iter()
            .filter(|url| {
                self.attempts
                    .get(*url)
                    .is_some_and(|&n| n >= retries.max(1))
            })
            .map(String::as_str)
            .collect()
    }

    /// 4.x: `success` only when every certificate is installed; `error` naming those not
    /// installed after `retries` attempts; else `transitioning`.
    fn all_installed_state(
        &self,
        retries: u32,
        installed: usize,
        failing: usize,
        total: usize,
    ) -> (State, String) {
        let stuck = self.stuck(retries);
        if installed == total {
            let message = if failing > 0 {
                format!(
                    "{installed} of {total} certificates installed, {failing} failing to refresh"
                )
            } else {
                format!("{installed} of {total} certificates installed")
            };
            (State::Success, message)
        } else if !stuck.is_empty() {
            let most = self.attempts.values().copied().max().unwrap_or(0);
            (
                State::Error,
                format!(
                    "{installed} of {total} certificates installed; not installed after {most} attempts: {}; still retrying",
                    stuck.join(", ")
                ),
            )
        } else {
            let most = self.attempts.values().copied().max().unwrap_or(0);
            (
                State::Transitioning,
                format!(
                    "installing (attempt {most}): {installed} of {total} certificates installed"
                ),
            )
        }
    }

    fn report(
        &self,
        phase: Phase,
        retries: u32,
        results: &BTreeMap<String, CertReport>,
        total: usize,
    ) -> Report {
        let installed = results.values().filter(|r| r.is_installed()).count();
        let failing = results.values().filter(|r| r.is_failed()).count();
        let (state, message) = match phase {
            Phase::AllInstalled => self.all_installed_state(retries, installed, failing, total),
            Phase::Initial { attempts } if attempts >= retries && attempts > 0 => (
                State::Error,
                format!(
                    "initial sync incomplete after {attempts} attempts: {installed} of {total} \
                     certificates installed; still retrying"
                ),
            ),
            Phase::Initial { attempts } => (
                State::Transitioning,
                format!(
                    "initial sync in progress (attempt {attempts}): {installed} of {total} certificates installed"
                ),
            ),
            Phase::Polling if failing > 0 => (
                State::Success,
                format!(
                    "polling: {installed} of {total} certificates installed, {failing} failing"
                ),
            ),
            Phase::Polling => (
                State::Success,
                format!("polling: {installed} of {total} certificates installed"),
            ),
        };
        let mut report = Report::new(OPERATION, state, message);
        report.substatus = self
            .order
            .iter()
            .filter(|url| results.contains_key(*url))
            .filter_map(|url| self.lines.get(url).cloned())
            .collect();
        report
    }
}

/// Runs cycles until `cancel` fires. `trigger` starts a cycle at once (SIGHUP, `sync --now`).
pub async fn run(
    engine: Arc<Engine>,
    options: DaemonOptions,
    cancel: CancellationToken,
    trigger: Arc<Notify>,
) {
    let settings = engine.settings();
    let total = settings.observed.len();
    let retries = settings.agent.initial_sync_retries;
    let mut reporter = Reporter {
        options,
        warn_days: settings.agent.expiry_warning_days,
        ready_sent: false,
        last: None,
        order: settings
            .observed
            .iter()
            .map(|c| c.url.to_string())
            .collect(),
        lines: std::collections::HashMap::new(),
        attempts: std::collections::HashMap::new(),
    };
    let v4 = settings.mode.mode == crate::settings::ExtensionMode::V4;
    let mut phase = if v4 {
        Phase::AllInstalled
    } else if settings.require_initial_sync {
        Phase::Initial { attempts: 0 }
    } else {
        Phase::Polling
    };
    let mut results: BTreeMap<String, CertReport> = BTreeMap::new();
    reporter.write(reporter.report(phase, retries, &results, total));
    if phase == Phase::Polling {
        reporter.ready();
    }
    tracing::info!(
        certificates = total,
        polling_interval_s = settings.polling_interval.as_secs(),
        require_initial_sync = settings.require_initial_sync,
        "polling started"
    );
    for report in engine.finish_interrupted_hooks(&cancel).await {
        reporter.note(&report, OffsetDateTime::now_utc());
        results.insert(report.url.clone(), report);
    }
    // Machines booting together spread their first requests (`startupJitterInS`); a sync asked
    // for meanwhile starts at once.
    let pause = startup_pause(
        settings
            .agent
            .startup_jitter
            .unwrap_or(crate::settings::DEFAULT_STARTUP_JITTER),
    );
    if !pause.is_zero() {
        tracing::info!(
            pause_ms = crate::http::millis(pause),
            "waiting before the first cycle (startupJitterInS)"
        );
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = trigger.notified() => {}
            () = cancel.cancelled() => {}
        }
    }

    let mut consecutive_failures = 0u32;
    // Every certificate is checked once per polling interval, failing or not; in between, the
    // failing ones are retried when their backoff ends (`retry_at`), and the ones a delivery
    // names at once, within DeliveryLimit's burst and rate for each. A delivery never brings a
    // failing certificate's retry forward.
    let mut triggered = true;
    let mut requested: BTreeSet<String> = BTreeSet::new();
    let mut next_full_at = tokio::time::Instant::now();
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut limit = DeliveryLimit::new(DELIVERY_MIN_INTERVAL, DELIVERY_BURST);
    let requests = reporter.options.requests.clone();
    loop {
        let now = tokio::time::Instant::now();
        let full_cycle = triggered || now >= next_full_at;
        if full_cycle {
            next_full_at = now + jittered_interval(settings.polling_interval);
        }
        let retry_due = full_cycle || retry_at.is_some_and(|at| now >= at);
        // A lookup per question rather than a set of every failing URL built on each wake: a
        // full cycle never asks, and a push at N = 10,000 would build it for one certificate.
        let failing = |url: &str| {
            results
                .get(url)
                .is_none_or(|r| !r.is_installed() || r.is_failed())
        };
        requested.retain(|url| !failing(url));
        let pushed = if full_cycle {
            limit.clear_deferred();
            BTreeSet::new()
        } else {
            limit.admit(std::mem::take(&mut requested), now)
        };
        let report = if full_cycle {
            engine.cycle(|_| true, &cancel).await
        } else {
            engine
                .cycle(
                    |url| {
                        if failing(url) {
                            retry_due
                        } else {
                            pushed.contains(url)
                        }
                    },
                    &cancel,
                )
                .await
        };
        if cancel.is_cancelled() {
            break;
        }
        let now = OffsetDateTime::now_utc();
        for cert in report.certificates {
            if cert.is_installed() {
                reporter.attempts.remove(&cert.url);
            } else {
                *reporter.attempts.entry(cert.url.clone()).or_insert(0) += 1;
            }
            reporter.note(&cert, now);
            results.insert(cert.url.clone(), cert);
        }
        let complete =
            results.len() == total && results.values().all(|r| r.is_installed() && !r.is_failed());
        if complete {
            consecutive_failures = 0;
            retry_at = None;
        } else if retry_due || retry_at.is_none() {
            consecutive_failures += 1;
            retry_at = Some(
                tokio::time::Instant::now() + engine.options().retry_delay(consecutive_failures),
            );
        }
        phase = match phase {
            Phase::Initial { .. }
                if results.len() == total && results.values().all(CertReport::is_installed) =>
            {
                tracing::info!("initial sync complete: every certificate is installed");
                Phase::Polling
            }
            Phase::Initial { attempts } if retry_due => {
                let attempts = attempts + 1;
                if attempts == retries {
                    tracing::error!(
                        attempts,
                        "initial sync failed after the configured attempts; retrying in the background"
                    );
                }
                Phase::Initial { attempts }
            }
            other => other,
        };
        reporter.write(reporter.report(phase, retries, &results, total));
        match phase {
            Phase::Polling => reporter.ready(),
            Phase::Initial { attempts } if attempts >= retries => reporter.ready(),
            Phase::Initial { .. } => {}
            Phase::AllInstalled => {
                let all = results.len() == total && results.values().all(CertReport::is_installed);
                if all || !reporter.stuck(retries).is_empty() {
                    reporter.ready();
                }
            }
        }

        let until = [Some(next_full_at), retry_at, limit.next_due()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_full_at);
        let delay = until.saturating_duration_since(tokio::time::Instant::now());
        tracing::debug!(?delay, "next cycle");
        let waited = wait(
            delay,
            TRANSITIONING_REWRITE_INTERVAL,
            &cancel,
            &trigger,
            requests.as_deref(),
            &mut reporter,
        )
        .await;
        triggered = false;
        requested.clear();
        match waited {
            Wake::Cancelled => break,
            Wake::Triggered => triggered = true,
            Wake::Requested => {
                requested = requests
                    .as_deref()
                    .map(SyncRequests::take)
                    .unwrap_or_default();
            }
            Wake::Elapsed => {}
        }
    }
    tracing::info!("stopped");
    reporter.notify(&[sd_notify::NotifyState::Stopping]);
}

/// The least time between two syncs of one certificate that deliveries trigger, once its
/// [`DELIVERY_BURST`] is spent.
pub const DELIVERY_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// How many syncs of one certificate deliveries may trigger back to back (rotations in quick
/// succession are served at once) before [`DELIVERY_MIN_INTERVAL`] applies.
pub const DELIVERY_BURST: u32 = 5;

/// The per-certificate limit on the syncs deliveries trigger: `burst` at once, then one per
/// `interval`, so that whoever can reach the webhook cannot make the agent hammer Key Vault.
/// A request over the limit is kept and served when the limit allows: a new version is never
/// lost, only delayed. Each certificate holds one instant, the time its allowance is spent up to
/// (`spent_until`, the generic cell rate algorithm's "theoretical arrival time").
struct DeliveryLimit {
    interval: Duration,
    /// How far ahead of now `spent_until` may be for a sync to be admitted: `burst - 1`
    /// intervals.
    tolerance: Duration,
    spent_until: BTreeMap<String, tokio::time::Instant>,
    deferred: BTreeSet<String>,
}

impl DeliveryLimit {
    fn new(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            tolerance: interval * burst.saturating_sub(1),
            spent_until: BTreeMap::new(),
            deferred: BTreeSet::new(),
        }
    }

    /// Of `requested` and the requests deferred earlier, the certificates that may sync at `now`;
    /// the others are deferred.
    fn admit(
        &mut self,
        requested: BTreeSet<String>,
        now: tokio::time::Instant,
    ) -> BTreeSet<String> {
        let mut admitted = BTreeSet::new();
        let deferred = std::mem::take(&mut self.deferred);
        for url in requested.into_iter().chain(deferred) {
            let spent = self.spent_until.get(&url).map_or(now, |t| (*t).max(now));
            if spent <= now + self.tolerance {
                self.spent_until.insert(url.clone(), spent + self.interval);
                admitted.insert(url);
            } else {
                self.deferred.insert(url);
            }
        }
        admitted
    }

    /// A full cycle checks everything: nothing deferred is left to do.
    fn clear_deferred(&mut self) {
        self.deferred.clear();
    }

    /// When the first deferred request may sync.
    fn next_due(&self) -> Option<tokio::time::Instant> {
        self.deferred
            .iter()
            .filter_map(|url| self.spent_until.get(url))
            .map(|t| t.checked_sub(self.tolerance).unwrap_or(*t))
            .min()
    }
}

enum Wake {
    Elapsed,
    /// A full cycle was asked for (SIGHUP, `akvvm sync --now`).
    Triggered,
    /// Some certificates were asked for ([`SyncRequests`]).
    Requested,
    Cancelled,
}

/// Sleeps `delay`, rewriting a `transitioning` status at least every
/// `rewrite_every` ([`TRANSITIONING_REWRITE_INTERVAL`]).
async fn wait(
    delay: Duration,
    rewrite_every: Duration,
    cancel: &CancellationToken,
    trigger: &Notify,
    requests: Option<&SyncRequests>,
    reporter: &mut Reporter,
) -> Wake {
    let deadline = tokio::time::Instant::now() + delay;
    loop {
        let transitioning = reporter
            .last
            .as_ref()
            .is_some_and(|r| r.state == State::Transitioning);
        let until = if transitioning {
            deadline.min(tokio::time::Instant::now() + rewrite_every)
        } else {
            deadline
        };
        tokio::select! {
            () = cancel.cancelled() => return Wake::Cancelled,
            () = trigger.notified() => {
                tracing::info!("sync requested");
                return Wake::Triggered;
            }
            () = async {
                match requests {
                    Some(requests) => requests.requested().await,
                    None => std::future::pending().await,
                }
            } => return Wake::Requested,
            () = tokio::time::sleep_until(until) => {
                if until >= deadline {
                    return Wake::Elapsed;
                }
                reporter.refresh();
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_delivery_limit_defers_and_never_drops() {
        let t0 = tokio::time::Instant::now();
        let second = Duration::from_secs(1);
        let mut limit = DeliveryLimit::new(Duration::from_secs(60), 3);
        let urls = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        // A burst of three is served at once.
        assert_eq!(limit.admit(urls(&["a", "b"]), t0), urls(&["a", "b"]));
        assert_eq!(limit.admit(urls(&["a"]), t0), urls(&["a"]));
        assert_eq!(limit.admit(urls(&["a"]), t0 + second), urls(&["a"]));
        assert_eq!(limit.next_due(), None);
        // Then: deferred, not synced, not forgotten, until an interval has passed.
        assert_eq!(limit.admit(urls(&["a"]), t0 + 2 * second), urls(&[]));
        assert_eq!(
            limit.admit(urls(&["a", "c"]), t0 + 3 * second),
            urls(&["c"])
        );
        assert_eq!(limit.next_due(), Some(t0 + Duration::from_secs(60)));
        assert_eq!(limit.admit(urls(&[]), t0 + 59 * second), urls(&[]));
        assert_eq!(limit.admit(urls(&[]), t0 + 60 * second), urls(&["a"]));
        assert_eq!(limit.next_due(), None);
        // The allowance is spent again: one more waits a whole interval.
        assert_eq!(limit.admit(urls(&["a"]), t0 + 61 * second), urls(&[]));
        assert_eq!(limit.next_due(), Some(t0 + Duration::from_secs(120)));
        // A full cycle does what was deferred.
        limit.clear_deferred();
        assert_eq!(limit.next_due(), None);
        // An unused allowance builds up again, to the burst and no further.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(limit.admit(urls(&["a"]), later), urls(&["a"]));
        assert_eq!(limit.admit(urls(&["a"]), later), urls(&["a"]));
        assert_eq!(limit.admit(urls(&["a"]), later), urls(&["a"]));
        assert_eq!(limit.admit(urls(&["a"]), later), urls(&[]));
    }

    use super::*;

    /// How long `wait` sleeps and how often it rewrites a transitioning status.
    const AN_HOUR: (Duration, Duration) = (Duration::from_secs(3600), Duration::from_secs(120));
    const BRIEFLY: (Duration, Duration) = (Duration::from_millis(300), Duration::from_millis(50));

    async fn wait_with(
        (delay, rewrite_every): (Duration, Duration),
        cancel: &CancellationToken,
        trigger: &Notify,
        requests: Option<&SyncRequests>,
        reporter: &mut Reporter,
    ) -> Wake {
        wait(delay, rewrite_every, cancel, trigger, requests, reporter).await
    }

    fn reporter(file: &StatusFile) -> Reporter {
        Reporter {
            options: DaemonOptions {
                status_file: Some(file.clone()),
                notify_systemd: false,
                requests: None,
                log_shipping: None,
            },
            warn_days: 30,
            ready_sent: false,
            last: None,
            order: Vec::new(),
            lines: std::collections::HashMap::new(),
            attempts: std::collections::HashMap::new(),
        }
    }

    #[test]
    fn in_4x_success_needs_every_certificate_and_error_names_the_ones_out_of_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let mut reporter = reporter(&StatusFile::new(dir.path(), 0));
        reporter.order = vec!["https://a/secrets/x".into(), "https://a/secrets/y".into()];
        reporter.attempts.insert("https://a/secrets/y".into(), 24);
        let (state, message) = reporter.all_installed_state(25, 1, 1, 2);
        assert_eq!(state, State::Transitioning, "{message}");
        assert!(message.contains("attempt 24"), "{message}");
        reporter.attempts.insert("https://a/secrets/y".into(), 25);
        let (state, message) = reporter.all_installed_state(25, 1, 1, 2);
        assert_eq!(state, State::Error, "{message}");
        assert!(
            message.contains("after 25 attempts: https://a/secrets/y; still retrying"),
            "{message}"
        );
        reporter.attempts.clear();
        let (state, message) = reporter.all_installed_state(25, 2, 0, 2);
        assert_eq!(state, State::Success, "{message}");
        assert_eq!(message, "2 of 2 certificates installed");
    }

    #[tokio::test]
    async fn a_transitioning_status_is_rewritten_while_waiting_and_others_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = StatusFile::new(dir.path(), 0);
        let mut reporter = reporter(&file);
        let (cancel, trigger) = (CancellationToken::new(), Notify::new());

        reporter.write(Report::new(
            OPERATION,
            State::Transitioning,
            "initial sync in progress",
        ));
        std::fs::remove_file(file.path()).unwrap();
        let wake = wait_with(BRIEFLY, &cancel, &trigger, None, &mut reporter).await;
        assert!(matches!(wake, Wake::Elapsed));
        assert!(file.path().exists(), "rewritten during the wait");

        reporter.write(Report::new(OPERATION, State::Success, "polling"));
        std::fs::remove_file(file.path()).unwrap();
        wait_with(BRIEFLY, &cancel, &trigger, None, &mut reporter).await;
        assert!(!file.path().exists(), "a settled status is not rewritten");
    }

    #[tokio::test]
    async fn the_trigger_and_cancellation_end_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut reporter = reporter(&StatusFile::new(dir.path(), 0));
        let (cancel, trigger) = (CancellationToken::new(), Notify::new());
        trigger.notify_one();
        let wake = wait_with(AN_HOUR, &cancel, &trigger, None, &mut reporter).await;
        assert!(matches!(wake, Wake::Triggered));
        cancel.cancel();
        let wake = wait_with(AN_HOUR, &cancel, &trigger, None, &mut reporter).await;
        assert!(matches!(wake, Wake::Cancelled));
    }

    #[tokio::test]
    async fn requested_certificates_end_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut reporter = reporter(&StatusFile::new(dir.path(), 0));
        let (cancel, trigger) = (CancellationToken::new(), Notify::new());
        let requests = SyncRequests::new();
        requests.request(["https://v.vault.azure.net/secrets/c".to_string()]);
        let wake = wait_with(AN_HOUR, &cancel, &trigger, Some(&requests), &mut reporter).await;
        assert!(matches!(wake, Wake::Requested));
        assert_eq!(requests.take().len(), 1);
        assert!(requests.take().is_empty());
    }

    #[test]
    fn phases_map_to_the_documented_states() {
        let dir = tempfile::tempdir().unwrap();
        let reporter = reporter(&StatusFile::new(dir.path(), 0));
        let results = BTreeMap::new();
        let state = |phase| reporter.report(phase, 25, &results, 2).state;
        assert_eq!(state(Phase::Initial { attempts: 0 }), State::Transitioning);
        assert_eq!(state(Phase::Initial { attempts: 24 }), State::Transitioning);
        assert_eq!(state(Phase::Initial { attempts: 25 }), State::Error);
        assert_eq!(state(Phase::Initial { attempts: 30 }), State::Error);
        assert_eq!(state(Phase::Polling), State::Success);
        let error = reporter.report(Phase::Initial { attempts: 25 }, 25, &results, 2);
        assert_eq!(error.code, crate::status::CODE_FAILED);
        assert_eq!(
            error.message,
            "initial sync incomplete after 25 attempts: 0 of 2 certificates installed; still retrying"
        );
    }
}
