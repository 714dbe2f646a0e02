//! Faults and counters: what the emulator does to requests before they reach their service
//! (latency, dropped connections, injected statuses, throttling), per scope (a vault name,
//! `imds` or `entra`), and what it counts (requests per scope, method, path and status, and the
//! requests in flight). Memory only: nothing here is persisted.
//!
//! The listeners apply them ([`crate::server`]); the admin API sets and reads them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akvvm_cert::locks::MutexExt;
use serde::{Deserialize, Serialize};

/// Throttling: at most `limit` requests per `window_ms` (a sliding window) pass; the rest get
/// 429. In JSON either `{"limit", "windowMs", "retryAfterS"?}` or a preset,
/// `{"preset": "keyVaultSecrets", "retryAfterS"?}` ([`Throttle::key_vault_secrets`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "ThrottleIn")]
pub struct Throttle {
    pub limit: u32,
    pub window_ms: u64,
    /// `Retry-After` seconds on 429 answers; none when absent (Key Vault often sends none).
    #[serde(default)]
    pub retry_after_s: Option<u64>,
}

/// Key Vault's service limit for secrets: 4,000 transactions per 10 seconds per vault and
/// region ("Secrets, managed storage account keys, and vault transactions", all transaction
/// types, in Microsoft's "Azure Key Vault service limits").
pub const KEY_VAULT_SECRETS_LIMIT: u32 = 4_000;
/// The window of [`KEY_VAULT_SECRETS_LIMIT`]: 10 seconds.
pub const KEY_VAULT_SECRETS_WINDOW_MS: u64 = 10_000;

/// The named throttles of `{"throttle": {"preset": ...}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ThrottlePreset {
    /// [`Throttle::key_vault_secrets`].
    KeyVaultSecrets,
}

/// A throttle as written in JSON: a preset, or a limit and a window.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThrottleIn {
    #[serde(default)]
    preset: Option<ThrottlePreset>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    window_ms: Option<u64>,
    #[serde(default)]
    retry_after_s: Option<u64>,
}

impl TryFrom<ThrottleIn> for Throttle {
    type Error = String;

    fn try_from(t: ThrottleIn) -> Result<Self, Self::Error> {
        match (t.preset, t.limit, t.window_ms) {
            (Some(ThrottlePreset::KeyVaultSecrets), None, None) => {
                Ok(Throttle::key_vault_secrets(t.retry_after_s))
            }
            (Some(_), _, _) => Err(
                "a throttle preset takes no limit or windowMs: give either \"preset\" or both \"limit\" and \"windowMs\"".into(),
            ),
            (None, Some(limit), Some(window_ms)) if window_ms > 0 => Ok(Throttle {
                limit,
                window_ms,
                retry_after_s: t.retry_after_s,
            }),
            (None, Some(_), Some(_)) => Err("a throttle's windowMs must be above 0".into()),
            (None, _, _) => Err(
                "a throttle needs \"limit\" and \"windowMs\", or a \"preset\" (\"keyVaultSecrets\")".into(),
            ),
        }
    }
}

impl Throttle {
    /// Key Vault's service limit for secrets on one vault: [`KEY_VAULT_SECRETS_LIMIT`]
    /// requests per [`KEY_VAULT_SECRETS_WINDOW_MS`]; every request to the vault counts (Key
    /// Vault counts all transaction types together). `retry_after_s`: the `Retry-After` of the
    /// 429 answers, or none (Key Vault's 429s have been seen both with and without it).
    pub fn key_vault_secrets(retry_after_s: Option<u64>) -> Self {
        Throttle {
            limit: KEY_VAULT_SECRETS_LIMIT,
            window_ms: KEY_VAULT_SECRETS_WINDOW_MS,
            retry_after_s,
        }
    }
}

/// Short list pages, as Key Vault can serve them: every list answer of the vault holds at most
/// `page_size` items, and `empty_pages` empty pages (each with a `nextLink`) come before each of
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListPaging {
    pub page_size: u32,
    #[serde(default)]
    pub empty_pages: u32,
}

/// IMDS while its host boots or updates: the next `not_found` token requests get 404 ("IMDS
/// endpoint is updating"), then the next `gone` get 410 ("IMDS is going through updates").
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Booting {
    #[serde(default)]
    pub not_found: u32,
    #[serde(default)]
    pub gone: u32,
}

/// A vault's network rules refusing every authenticated request with Key Vault's 403, whatever
/// the caller's roles: the variant is the `innererror.code` of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkDenial {
    /// The vault's firewall does not admit the client's address ("Client address is not
    /// authorized and caller is not a trusted service.").
    ForbiddenByFirewall,
    /// Public network access is disabled and the request did not come through a private link
    /// ("Public network access is disabled and request is not from a trusted service nor via an
    /// approved private link.").
    ForbiddenByConnection,
}

/// Faults for one scope (a vault name, `imds` or `entra`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    #[serde(default)]
    pub throttle: Option<Throttle>,
    /// Answer the next requests with these statuses, in order (one entry per request).
    #[serde(default)]
    pub statuses: VecDeque<u16>,
    /// Added before every answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Close the connection without answering the next this many requests.
    #[serde(default)]
    pub drop_next: u32,
    /// Cut the answers to the next this many requests short: status, headers (announcing the
    /// whole length) and half the body, then the connection closes.
    #[serde(default)]
    pub cut_next: u32,
    /// Vaults only: TLS handshakes for the vault's host name present a self-signed certificate
    /// that the local vault's CA did not issue (applied by [`crate::tls`]).
    #[serde(default)]
    pub untrusted_certificate: bool,
    /// Vaults only: list answers in short or empty pages that still carry a `nextLink`.
    #[serde(default)]
    pub list_paging: Option<ListPaging>,
    /// `imds` only: answer as IMDS does while booting (404s, then 410s).
    #[serde(default)]
    pub booting: Option<Booting>,
    /// Vaults only: refuse every authenticated request with this 403 until cleared.
    #[serde(default)]
    pub network_denial: Option<NetworkDenial>,
    /// Vaults only: how many `GET .../pending` polls of a new certificate operation read
    /// `inProgress` before it reads `completed` (0: the first poll does).
    #[serde(default)]
    pub pending_polls: u32,
    /// Vaults only: soft deletes and recoveries complete this many milliseconds after they are
    /// asked for, as Key Vault's do (0: at once).
    #[serde(default)]
    pub deletion_delay_ms: u64,
}

/// What to do to a request before it reaches its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    Pass,
    Drop,
    /// Answer, but close the connection after half the body.
    Cut,
    Status(u16),
    /// IMDS booting: 404 or 410.
    Booting(u16),
    Throttled {
        retry_after_s: Option<u64>,
    },
}

#[derive(Default)]
struct Runtime {
    faults: BTreeMap<String, Faults>,
    throttle_log: BTreeMap<String, VecDeque<Instant>>,
    counters: BTreeMap<(String, String, String, u16), u64>,
    /// Authenticated Key Vault requests per (vault, path, caller's object id).
    callers: BTreeMap<(String, String, String), u64>,
    /// Per scope: requests being handled now, and the most there have been at once.
    in_flight: BTreeMap<String, InFlight>,
}

#[derive(Debug, Default, Clone, Copy)]
struct InFlight {
    now: u32,
    peak: u32,
}

/// Counts a request as in flight for its scope until dropped (see [`Traffic::enter`]).
pub struct InFlightGuard {
    runtime: Arc<Mutex<Runtime>>,
    scope: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut rt = self.runtime.lock_or_recover();
        if let Some(gauge) = rt.in_flight.get_mut(&self.scope) {
            gauge.now = gauge.now.saturating_sub(1);
        }
    }
}

/// One row of the request counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCount {
    pub scope: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub count: u64,
}

/// Who made a vault's requests: authenticated Key Vault requests per vault, path and caller
/// (the object id in the token, which tells identities apart), whatever the answer was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallerCount {
    pub vault: String,
    pub path: String,
    /// The caller's object id (`oid` of its token).
    pub object_id: String,
    pub count: u64,
}

/// The request counters summed: every request since the counters were last reset, in total,
/// per status and per scope (a vault name, `imds` or `entra`). Status 0: a dropped connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestStats {
    pub total: u64,
    pub by_status: BTreeMap<u16, u64>,
    pub by_scope: BTreeMap<String, ScopeStats>,
}

/// One scope's part of [`RequestStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeStats {
    pub total: u64,
    pub by_status: BTreeMap<u16, u64>,
    /// The most requests of the scope handled at once.
    pub peak_in_flight: u32,
}

/// The faults of every scope and the request counters, shared by the listeners and the admin API.
#[derive(Default)]
pub struct Traffic {
    runtime: Arc<Mutex<Runtime>>,
}

impl Traffic {
    pub fn set_faults(&self, scope: &str, faults: Faults) {
        let scope = scope.to_ascii_lowercase();
        let mut rt = self.runtime.lock_or_recover();
        rt.throttle_log.remove(&scope);
        if faults == Faults::default() {
            rt.faults.remove(&scope);
        } else {
            rt.faults.insert(scope, faults);
        }
    }

    pub fn update_faults(&self, scope: &str, f: impl FnOnce(&mut Faults)) {
        let mut rt = self.runtime.lock_or_recover();
        let entry = rt.faults.entry(scope.to_ascii_lowercase()).or_default();
        f(entry);
    }

    pub fn faults(&self, scope: &str) -> Faults {
        self.runtime
            .lock_or_recover()
            .faults
            .get(&scope.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// Decides the fault for one request in `scope` and its added latency.
    pub fn take_fault(&self, scope: &str) -> (FaultAction, Duration) {
        let mut guard = self.runtime.lock_or_recover();
        let rt = &mut *guard;
        let Some(faults) = rt.faults.get_mut(scope) else {
            return (FaultAction::Pass, Duration::ZERO);
        };
        let latency = Duration::from_millis(faults.latency_ms);
        if faults.drop_next > 0 {
            faults.drop_next -= 1;
            return (FaultAction::Drop, latency);
        }
        if faults.cut_next > 0 {
            faults.cut_next -= 1;
            return (FaultAction::Cut, latency);
        }
        if let Some(booting) = &mut faults.booting {
            if booting.not_found > 0 {
                booting.not_found -= 1;
                return (FaultAction::Booting(404), latency);
            }
            if booting.gone > 0 {
                booting.gone -= 1;
                return (FaultAction::Booting(410), latency);
            }
        }
        if let Some(status) = faults.statuses.pop_front() {
            return (FaultAction::Status(status), latency);
        }
        if let Some(throttle) = &faults.throttle {
            let now = Instant::now();
            let window = Duration::from_millis(throttle.window_ms);
            let log = rt.throttle_log.entry(scope.to_owned()).or_default();
            while log
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                log.pop_front();
            }
            if log.len() >= throttle.limit as usize {
                return (
                    FaultAction::Throttled {
                        retry_after_s: throttle.retry_after_s,
                    },
                    latency,
                );
            }
            log.push_back(now);
        }
        (FaultAction::Pass, latency)
    }

    pub fn count(&self, scope: &str, method: &str, path: &str, status: u16) {
        let mut rt = self.runtime.lock_or_recover();
        *rt.counters
            .entry((scope.to_owned(), method.to_owned(), path.to_owned(), status))
            .or_default() += 1;
    }

    /// Counts an authenticated request of `vault` for `path` (without its trailing `/`: the
    /// SDK asks for the latest version as `/secrets/{name}/`) by the caller `object_id`.
    pub fn record_caller(&self, vault: &str, path: &str, object_id: &str) {
        let path = match path.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        let mut rt = self.runtime.lock_or_recover();
        *rt.callers
            .entry((vault.to_owned(), path.to_owned(), object_id.to_owned()))
            .or_default() += 1;
    }

    /// The authenticated requests per vault, path and caller ([`CallerCount`]).
    pub fn callers(&self) -> Vec<CallerCount> {
        self.runtime
            .lock_or_recover()
            .callers
            .iter()
            .map(|((vault, path, object_id), count)| CallerCount {
                vault: vault.clone(),
                path: path.clone(),
                object_id: object_id.clone(),
                count: *count,
            })
            .collect()
    }

    pub fn counters(&self) -> Vec<RequestCount> {
        self.runtime
            .lock_or_recover()
            .counters
            .iter()
            .map(|((scope, method, path, status), count)| RequestCount {
                scope: scope.clone(),
                method: method.clone(),
                path: path.clone(),
                status: *status,
                count: *count,
            })
            .collect()
    }

    /// The request counters summed per scope and per status ([`RequestStats`]).
    pub fn stats(&self) -> RequestStats {
        let rt = self.runtime.lock_or_recover();
        let mut stats = RequestStats::default();
        for ((scope, _, _, status), count) in &rt.counters {
            stats.total += count;
            *stats.by_status.entry(*status).or_default() += count;
            let scope_stats = stats.by_scope.entry(scope.clone()).or_default();
            scope_stats.total += count;
            *scope_stats.by_status.entry(*status).or_default() += count;
        }
        for (scope, gauge) in &rt.in_flight {
            if let Some(scope_stats) = stats.by_scope.get_mut(scope) {
                scope_stats.peak_in_flight = gauge.peak;
            }
        }
        stats
    }

    pub fn reset_counters(&self) {
        let mut rt = self.runtime.lock_or_recover();
        rt.counters.clear();
        rt.callers.clear();
        for gauge in rt.in_flight.values_mut() {
            gauge.peak = gauge.now;
        }
    }

    /// Marks a request of `scope` as in flight until the guard is dropped, keeping the peak.
    pub fn enter(&self, scope: &str) -> InFlightGuard {
        let mut rt = self.runtime.lock_or_recover();
        let gauge = rt.in_flight.entry(scope.to_owned()).or_default();
        gauge.now += 1;
        gauge.peak = gauge.peak.max(gauge.now);
        InFlightGuard {
            runtime: Arc::clone(&self.runtime),
            scope: scope.to_owned(),
        }
    }

    /// The most requests of `scope` handled at the same time since the counters were reset.
    pub fn peak_in_flight(&self, scope: &str) -> u32 {
        self.runtime
            .lock_or_recover()
            .in_flight
            .get(scope)
            .map_or(0, |gauge| gauge.peak)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_limit_requests_through_per_window() {
        let s = Traffic::default();
        s.set_faults(
            "v",
            Faults {
                throttle: Some(Throttle {
                    limit: 2,
                    window_ms: 60_000,
                    retry_after_s: Some(3),
                }),
                ..Faults::default()
            },
        );
        assert_eq!(s.take_fault("v").0, FaultAction::Pass);
        assert_eq!(s.take_fault("v").0, FaultAction::Pass);
        assert_eq!(
            s.take_fault("v").0,
            FaultAction::Throttled {
                retry_after_s: Some(3)
            }
        );
        assert_eq!(s.take_fault("other").0, FaultAction::Pass);
    }

    #[test]
    fn the_key_vault_preset_passes_4000_requests_per_window() {
        let s = Traffic::default();
        let faults: Faults =
            serde_json::from_str(r#"{"throttle": {"preset": "keyVaultSecrets"}}"#).unwrap();
        assert_eq!(faults.throttle, Some(Throttle::key_vault_secrets(None)));
        s.set_faults("v", faults);
        let passed = (0..4_100)
            .filter(|_| s.take_fault("v").0 == FaultAction::Pass)
            .count();
        assert_eq!(passed, 4_000);
        assert_eq!(
            s.take_fault("v").0,
            FaultAction::Throttled {
                retry_after_s: None
            }
        );
        s.update_faults("v", |f| {
            f.throttle = Some(Throttle::key_vault_secrets(Some(10)))
        });
        assert_eq!(
            s.take_fault("v").0,
            FaultAction::Throttled {
                retry_after_s: Some(10)
            }
        );
    }

    #[test]
    fn stats_sum_the_counters_per_scope_and_status() {
        let s = Traffic::default();
        s.count("kv", "GET", "/secrets/a", 200);
        s.count("kv", "GET", "/secrets/b", 200);
        s.count("kv", "GET", "/secrets/a", 429);
        s.count("imds", "GET", "/metadata/identity/oauth2/token", 200);
        let stats = s.stats();
        assert_eq!(stats.total, 4);
        assert_eq!(stats.by_status, BTreeMap::from([(200, 3), (429, 1)]));
        assert_eq!(stats.by_scope["kv"].total, 3);
        assert_eq!(
            stats.by_scope["kv"].by_status,
            BTreeMap::from([(200, 2), (429, 1)])
        );
        assert_eq!(stats.by_scope["imds"].total, 1);
        s.reset_counters();
        assert_eq!(s.stats(), RequestStats::default());
    }

    #[test]
    fn statuses_and_drops_apply_to_the_next_requests_only() {
        let s = Traffic::default();
        s.set_faults(
            "v",
            Faults {
                statuses: [503, 500].into(),
                drop_next: 1,
                ..Faults::default()
            },
        );
        assert_eq!(s.take_fault("v").0, FaultAction::Drop);
        s.update_faults("v", |f| f.cut_next = 1);
        assert_eq!(s.take_fault("v").0, FaultAction::Cut);
        assert_eq!(s.take_fault("v").0, FaultAction::Status(503));
        assert_eq!(s.take_fault("v").0, FaultAction::Status(500));
        assert_eq!(s.take_fault("v").0, FaultAction::Pass);
    }

    #[test]
    fn booting_answers_404s_then_410s() {
        let s = Traffic::default();
        s.set_faults(
            "imds",
            Faults {
                booting: Some(Booting {
                    not_found: 2,
                    gone: 1,
                }),
                ..Faults::default()
            },
        );
        assert_eq!(s.take_fault("imds").0, FaultAction::Booting(404));
        assert_eq!(s.take_fault("imds").0, FaultAction::Booting(404));
        assert_eq!(s.take_fault("imds").0, FaultAction::Booting(410));
        assert_eq!(s.take_fault("imds").0, FaultAction::Pass);
    }

    #[test]
    fn callers_are_counted_per_vault_path_and_object_id_until_reset() {
        let s = Traffic::default();
        s.record_caller("kv", "/secrets/web/", "oid-a");
        s.record_caller("kv", "/secrets/web", "oid-a");
        s.record_caller("kv", "/secrets/web", "oid-b");
        s.record_caller("kv", "/", "oid-b");
        let rows = s.callers();
        let row = |path: &str, oid: &str| {
            rows.iter()
                .find(|c| c.vault == "kv" && c.path == path && c.object_id == oid)
                .map(|c| c.count)
        };
        assert_eq!(row("/secrets/web", "oid-a"), Some(2));
        assert_eq!(row("/secrets/web", "oid-b"), Some(1));
        assert_eq!(row("/", "oid-b"), Some(1));
        s.reset_counters();
        assert!(s.callers().is_empty());
    }
}
