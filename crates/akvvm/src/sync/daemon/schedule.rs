//! When the daemon acts, as a value: [`Schedule::plan`] says which certificates a wake checks,
//! [`Schedule::record`] takes what the cycle found, [`Schedule::next_wake`] says when to wake
//! next. It reads no clock of its own (every instant is given), so its backoffs and deadlines are
//! tested under tokio's paused time.
//!
//! Every certificate is checked once per polling interval, failing or not; in between, the
//! failing ones are retried when their backoff ends (`retry_at`), and the ones a delivery names
//! at once, within [`DeliveryLimit`]'s burst and rate for each. A delivery never brings a
//! failing certificate's retry forward.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

/// The least time between two syncs of one certificate that deliveries trigger, once its
/// [`DELIVERY_BURST`] is spent.
pub const DELIVERY_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// How many syncs of one certificate deliveries may trigger back to back (rotations in quick
/// succession are served at once) before [`DELIVERY_MIN_INTERVAL`] applies.
pub const DELIVERY_BURST: u32 = 5;

/// The daemon's timetable: the next full cycle, the failing certificates' retry, the pushes
/// waiting for their delivery limit.
pub(super) struct Schedule {
    polling_interval: Duration,
    /// The polling interval as waited for ([`crate::sync::jittered_interval`] in the agent).
    jitter: fn(Duration) -> Duration,
    /// A full cycle is asked for: the first, or SIGHUP / `akvvm sync --now`.
    triggered: bool,
    /// Certificates the webhook named since the last plan.
    requested: BTreeSet<String>,
    next_full_at: Instant,
    /// When the failing certificates are retried; none while every one is installed.
    retry_at: Option<Instant>,
    /// Cycles in a row that left a certificate failing: the backoff's exponent.
    consecutive_failures: u32,
    limit: DeliveryLimit,
}

/// What one wake checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// Every certificate: the polling interval is up, or a full cycle was asked for.
    pub full: bool,
    /// The failing certificates' backoff is over (always on a full cycle): this cycle is an
    /// attempt of the initial sync.
    pub retry_due: bool,
    /// Installed certificates a delivery named that the delivery limit admits now.
    pub pushed: BTreeSet<String>,
}

impl Plan {
    /// Whether this wake checks `url`; `failing` says whether a certificate is failing (not
    /// installed, or its last check failed).
    pub fn includes(&self, url: &str, failing: impl Fn(&str) -> bool) -> bool {
        self.full
            || if failing(url) {
                self.retry_due
            } else {
                self.pushed.contains(url)
            }
    }
}

impl Schedule {
    /// A schedule whose first plan, at `now` or later, is a full cycle.
    pub fn new(polling_interval: Duration, jitter: fn(Duration) -> Duration, now: Instant) -> Self {
        Self {
            polling_interval,
            jitter,
            triggered: true,
            requested: BTreeSet::new(),
            next_full_at: now,
            retry_at: None,
            consecutive_failures: 0,
            limit: DeliveryLimit::new(DELIVERY_MIN_INTERVAL, DELIVERY_BURST),
        }
    }

    /// A full cycle at the next plan (SIGHUP, `akvvm sync --now`).
    pub fn trigger(&mut self) {
        self.triggered = true;
    }

    /// Certificates a delivery named, for the next plan.
    pub fn request(&mut self, urls: BTreeSet<String>) {
        self.requested.extend(urls);
    }

    /// What to check at `now`. A request for a failing certificate is dropped: its retry keeps
    /// its backoff.
    pub fn plan(&mut self, now: Instant, failing: impl Fn(&str) -> bool) -> Plan {
        let full = std::mem::take(&mut self.triggered) || now >= self.next_full_at;
        if full {
            self.next_full_at = now + (self.jitter)(self.polling_interval);
        }
        let retry_due = full || self.retry_at.is_some_and(|at| now >= at);
        let requested = std::mem::take(&mut self.requested);
        let pushed = if full {
            self.limit.clear_deferred();
            BTreeSet::new()
        } else {
            let requested = requested.into_iter().filter(|url| !failing(url)).collect();
            self.limit.admit(requested, now)
        };
        Plan {
            full,
            retry_due,
            pushed,
        }
    }

    /// What the cycle of `plan` found, at `now`: `complete` when every certificate is installed
    /// and none failing. Otherwise the failing ones are retried after `retry_delay` of the
    /// cycles in a row that left one failing (a growing backoff); a push that leaves one failing
    /// does not move its retry.
    pub fn record(
        &mut self,
        plan: &Plan,
        complete: bool,
        now: Instant,
        retry_delay: impl FnOnce(u32) -> Duration,
    ) {
        if complete {
            self.consecutive_failures = 0;
            self.retry_at = None;
        } else if plan.retry_due || self.retry_at.is_none() {
            self.consecutive_failures += 1;
            self.retry_at = Some(now + retry_delay(self.consecutive_failures));
        }
    }

    /// When to wake for the next plan: the next full cycle, retry or deferred push.
    pub fn next_wake(&self) -> Instant {
        [
            Some(self.next_full_at),
            self.retry_at,
            self.limit.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_full_at)
    }
}

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
    spent_until: BTreeMap<String, Instant>,
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

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    /// The engine's backoff without its randomness: 1 s, doubled per failure, at most 8 s.
    fn backoff(failures: u32) -> Duration {
        Duration::from_secs(1 << (failures - 1).min(3))
    }

    fn urls(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn failing_certificates_are_retried_with_a_growing_backoff_until_installed() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(HOUR, |d| d, t0);
        let mut waits = Vec::new();
        for cycle in 0..6 {
            let plan = schedule.plan(Instant::now(), |_| true);
            assert_eq!(plan.full, cycle == 0, "only the first is a full cycle");
            assert!(plan.retry_due, "each wake is a retry");
            schedule.record(&plan, false, Instant::now(), backoff);
            let wake = schedule.next_wake();
            waits.push(wake - Instant::now());
            tokio::time::sleep_until(wake).await;
        }
        let secs = |s: &[u64]| {
            s.iter()
                .map(|&s| Duration::from_secs(s))
                .collect::<Vec<_>>()
        };
        assert_eq!(waits, secs(&[1, 2, 4, 8, 8, 8]));

        // Installed at last: no retry pending, the next wake is the next full cycle.
        let plan = schedule.plan(Instant::now(), |_| true);
        schedule.record(&plan, true, Instant::now(), backoff);
        assert_eq!(schedule.next_wake(), t0 + HOUR);
        // A later failure starts the backoff over.
        tokio::time::sleep_until(t0 + HOUR).await;
        let plan = schedule.plan(Instant::now(), |_| true);
        assert!(plan.full, "the polling interval is up");
        schedule.record(&plan, false, Instant::now(), backoff);
        assert_eq!(schedule.next_wake(), t0 + HOUR + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn every_certificate_is_checked_each_polling_interval_and_on_a_trigger() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(HOUR, |d| d, t0);
        let plan = schedule.plan(t0, |_| false);
        assert!(plan.full);
        schedule.record(&plan, true, t0, backoff);
        assert_eq!(schedule.next_wake(), t0 + HOUR);

        tokio::time::advance(Duration::from_secs(60)).await;
        schedule.trigger();
        let plan = schedule.plan(Instant::now(), |_| false);
        assert!(plan.full, "SIGHUP asks for a full cycle");
        schedule.record(&plan, true, Instant::now(), backoff);
        assert_eq!(schedule.next_wake(), t0 + Duration::from_secs(60) + HOUR);
        let plan = schedule.plan(Instant::now(), |_| false);
        assert!(!plan.full, "a trigger asks for one full cycle");
        assert!(!plan.includes("https://v/secrets/a", |_| false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_push_checks_only_the_named_installed_certificates_and_never_moves_a_retry() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(HOUR, |d| d, t0);
        let failing = |url: &str| url == "bad";
        let plan = schedule.plan(t0, failing);
        schedule.record(&plan, false, t0, |_| Duration::from_secs(600));
        assert_eq!(schedule.next_wake(), t0 + Duration::from_secs(600));

        tokio::time::advance(Duration::from_secs(10)).await;
        schedule.request(urls(&["web", "bad"]));
        let plan = schedule.plan(Instant::now(), failing);
        assert_eq!(
            plan,
            Plan {
                full: false,
                retry_due: false,
                pushed: urls(&["web"]),
            }
        );
        assert!(plan.includes("web", failing));
        assert!(!plan.includes("bad", failing), "its backoff is not over");
        assert!(!plan.includes("api", failing), "not named");
        schedule.record(&plan, false, Instant::now(), |_| Duration::from_secs(1));
        assert_eq!(
            schedule.next_wake(),
            t0 + Duration::from_secs(600),
            "the push left the retry where it was"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pushes_over_the_burst_wake_the_daemon_when_the_limit_allows() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(HOUR, |d| d, t0);
        let plan = schedule.plan(t0, |_| false);
        schedule.record(&plan, true, t0, backoff);
        for _ in 0..DELIVERY_BURST {
            schedule.request(urls(&["web"]));
            let plan = schedule.plan(Instant::now(), |_| false);
            assert_eq!(plan.pushed, urls(&["web"]));
            schedule.record(&plan, true, Instant::now(), backoff);
        }
        schedule.request(urls(&["web"]));
        let plan = schedule.plan(Instant::now(), |_| false);
        assert!(plan.pushed.is_empty(), "deferred");
        schedule.record(&plan, true, Instant::now(), backoff);
        assert_eq!(schedule.next_wake(), t0 + DELIVERY_MIN_INTERVAL);
        tokio::time::sleep_until(schedule.next_wake()).await;
        let plan = schedule.plan(Instant::now(), |_| false);
        assert_eq!(plan.pushed, urls(&["web"]), "served, not dropped");
    }
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
}
