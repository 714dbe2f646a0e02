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
//!
//! Each turn of the loop plans, cycles, records and sleeps: what a wake checks and when the next
//! one is (the polling interval, the failing certificates' growing backoff, the deliveries'
//! limit) is the `schedule` module's `Schedule`, a value tested under tokio's paused time; how
//! a cycle moves the initial sync along is `Phase::after`.

mod schedule;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{CertReport, Engine, jittered_interval, startup_pause};
use crate::status::{Report, State, StatusFile, TRANSITIONING_REWRITE_INTERVAL};
use akvvm_cert::locks::MutexExt;
use schedule::Schedule;
pub use schedule::{DELIVERY_BURST, DELIVERY_MIN_INTERVAL};

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
        self.urls.lock_or_recover().extend(urls);
        self.notify.notify_one();
    }

    /// Waits until something is queued.
    pub async fn requested(&self) {
        self.notify.notified().await;
    }

    /// Everything queued so far, emptying the queue.
    pub fn take(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.urls.lock_or_recover())
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

impl Phase {
    /// The phase after a cycle: `all_installed` when every certificate is installed, `attempt`
    /// when the cycle retried the failing ones (`Plan::retry_due`), which counts
    /// towards `initialSyncRetries`.
    fn after(self, all_installed: bool, attempt: bool, retries: u32) -> Phase {
        match self {
            Phase::Initial { .. } if all_installed => {
                tracing::info!("initial sync complete: every certificate is installed");
                Phase::Polling
            }
            Phase::Initial { attempts } if attempt => {
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
        }
    }
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

    let mut schedule = Schedule::new(
        settings.polling_interval,
        jittered_interval,
        tokio::time::Instant::now(),
    );
    let requests = reporter.options.requests.clone();
    loop {
        // A lookup per question rather than a set of every failing URL built on each wake: a
        // full cycle never asks, and a push at N = 10,000 would build it for one certificate.
        let failing = |url: &str| {
            results
                .get(url)
                .is_none_or(|r| !r.is_installed() || r.is_failed())
        };
        let plan = schedule.plan(tokio::time::Instant::now(), failing);
        let report = engine
            .cycle(|url| plan.includes(url, failing), &cancel)
            .await;
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
        let all_installed =
            results.len() == total && results.values().all(CertReport::is_installed);
        let complete = all_installed && results.values().all(|r| !r.is_failed());
        schedule.record(&plan, complete, tokio::time::Instant::now(), |failures| {
            engine.options().retry_delay(failures)
        });
        phase = phase.after(all_installed, plan.retry_due, retries);
        reporter.write(reporter.report(phase, retries, &results, total));
        match phase {
            Phase::Polling => reporter.ready(),
            Phase::Initial { attempts } if attempts >= retries => reporter.ready(),
            Phase::Initial { .. } => {}
            Phase::AllInstalled => {
                if all_installed || !reporter.stuck(retries).is_empty() {
                    reporter.ready();
                }
            }
        }

        let delay = schedule
            .next_wake()
            .saturating_duration_since(tokio::time::Instant::now());
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
        match waited {
            Wake::Cancelled => break,
            Wake::Triggered => schedule.trigger(),
            Wake::Requested => {
                if let Some(requests) = requests.as_deref() {
                    schedule.request(requests.take());
                }
            }
            Wake::Elapsed => {}
        }
    }
    tracing::info!("stopped");
    reporter.notify(&[sd_notify::NotifyState::Stopping]);
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

    #[tokio::test(start_paused = true)]
    async fn the_initial_sync_is_transitioning_then_error_after_its_retries_then_success() {
        use tokio::time::Instant;
        let dir = tempfile::tempdir().unwrap();
        let reporter = reporter(&StatusFile::new(dir.path(), 0));
        let results = BTreeMap::new();
        let retries = 3;
        let mut schedule = Schedule::new(Duration::from_secs(3600), |d| d, Instant::now());
        let mut phase = Phase::Initial { attempts: 0 };
        let mut states = Vec::new();
        for _ in 0..5 {
            let plan = schedule.plan(Instant::now(), |_| true);
            schedule.record(&plan, false, Instant::now(), |failures| {
                Duration::from_secs(u64::from(failures))
            });
            phase = phase.after(false, plan.retry_due, retries);
            states.push(reporter.report(phase, retries, &results, 1).state);
            tokio::time::sleep_until(schedule.next_wake()).await;
        }
        assert_eq!(phase, Phase::Initial { attempts: 5 });
        assert_eq!(
            states,
            [
                State::Transitioning,
                State::Transitioning,
                State::Error,
                State::Error,
                State::Error
            ]
        );
        // A cycle that retried nothing (a push) is no attempt.
        assert_eq!(phase.after(false, false, retries), phase);

        let plan = schedule.plan(Instant::now(), |_| true);
        schedule.record(&plan, true, Instant::now(), |_| Duration::ZERO);
        phase = phase.after(true, plan.retry_due, retries);
        assert_eq!(phase, Phase::Polling);
        assert_eq!(
            reporter.report(phase, retries, &results, 1).state,
            State::Success
        );
        assert_eq!(Phase::Polling.after(false, true, retries), Phase::Polling);
        assert_eq!(
            Phase::AllInstalled.after(true, true, retries),
            Phase::AllInstalled
        );
    }
}
