//! The list check: one paged `GET /secrets` per vault (25 secrets a page, no values) shows each
//! secret's current version's `attributes.updated`; an observed certificate whose `updated` is
//! the one recorded when its installed version was fetched has no new version, and is not
//! fetched. Only the others get their `GET /secrets/{name}`.
//!
//! Why nothing can be missed (`docs/agent.md`, "The list check", says it for users): a list
//! item's `id` is versionless and its attributes are the current version's; creating a version
//! makes it current with `created` = `updated` = the time of creation, and changing a version's
//! attributes (disabling it, say) sets its `updated`. Key Vault's clock counts whole seconds, so a
//! version created in the same second as the one installed would show the same `updated`: an
//! `updated` is therefore only recorded once Key Vault's own clock (the `Date` of the GET's
//! answer) was [`SETTLE_MARGIN`] past it, and a certificate without a recorded `updated` is always
//! fetched. A certificate not fetched for `fullCheckIntervalInS` is fetched anyway (the safety
//! net), and a pinned URL is never listed (its version never changes).
//!
//! Listing costs one request per 25 secrets of the vault, fetching one per certificate: per vault
//! and cycle the list is read only when it can be cheaper, that is with at most `candidates - 1`
//! pages; it stops there otherwise, and the vault is not listed again until it has more
//! candidates than that (see `page_budget`). An identity without the `list` right gets one GET
//! per certificate, as without the list.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::state::StateEntry;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::vault::{SecretBundle, SecretList, VaultClient};
use akvvm_cert::locks::MutexExt;

/// How far past a version's `updated` Key Vault's clock must be for that `updated` to identify
/// the current version (whole seconds, and the `Date` header is written after the read).
pub const SETTLE_MARGIN: time::Duration = time::Duration::seconds(2);

/// What the lists of one vault cost so far, in this process.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct ListCost {
    /// Pages read by the last list.
    pub(super) pages: Option<u32>,
    /// Whether the last list was read to its end.
    pub(super) complete: bool,
    /// The identity may not list this vault's secrets.
    pub(super) refused: bool,
}

/// The most pages worth reading for `candidates` certificates that a list may confirm, or
/// `None` when one GET per certificate is cheaper: a list of `candidates - 1` pages or fewer,
/// unless the last one showed the vault to be longer.
pub(super) fn page_budget(cost: &ListCost, candidates: u32) -> Option<u32> {
    if cost.refused || candidates < 2 {
        return None;
    }
    let budget = candidates - 1;
    match cost.pages {
        Some(pages) if cost.complete && pages > budget => None,
        Some(pages) if !cost.complete && pages >= budget => None,
        _ => Some(budget),
    }
}

/// How much earlier than `fullCheckIntervalInS` a certificate's full check may come, as a share
/// of it: certificates installed together (and machines started together) then come due over a
/// quarter of the interval instead of all in one cycle.
pub const FULL_CHECK_SPREAD: f64 = 0.25;

/// The full-check interval of `url` in this process: `interval` shortened by up to
/// [`FULL_CHECK_SPREAD`] of it, by an amount drawn from the URL and `salt` (random per process).
pub(super) fn full_check_interval_for(interval: Duration, url: &str, salt: u64) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    salt.hash(&mut hasher);
    url.hash(&mut hasher);
    // 53 random bits as a fraction in [0, 1).
    let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64;
    interval.mul_f64(1.0 - FULL_CHECK_SPREAD * unit)
}

/// Whether a list may stand for a GET of the certificate `entry` describes at `now`: it has an
/// installed version, the `updated` of that version is recorded, and a GET confirmed it less than
/// `full_check_interval` ago.
pub(super) fn listable(
    entry: &StateEntry,
    now: OffsetDateTime,
    full_check_interval: Duration,
) -> bool {
    if full_check_interval.is_zero() || entry.installed_version.is_none() {
        return false;
    }
    let (Some(_), Some(verified_at)) = (entry.version_updated, entry.verified_at) else {
        return false;
    };
    now - verified_at < full_check_interval
}

/// The `updated` to record for the version a GET returned: its `attributes.updated` when Key
/// Vault's clock was [`SETTLE_MARGIN`] past it, else none (the next cycle fetches it again).
pub fn settled_updated(bundle: &SecretBundle) -> Option<OffsetDateTime> {
    let updated = bundle.updated?;
    let answered = bundle.answered_at?;
    (answered >= updated + SETTLE_MARGIN).then_some(updated)
}

/// Lists the secrets of the vault `host` (`candidates` certificates, at most `budget` pages)
/// while holding one of its `permits`, and records what it cost in `cost`. `Some` only for a list
/// read to its end; a list cut short, refused or failed leaves the certificates to their GETs.
pub(super) async fn list_vault(
    client: &VaultClient,
    permits: &Semaphore,
    cost: &Mutex<ListCost>,
    (host, candidates, budget): (&str, u32, u32),
    cancel: &CancellationToken,
) -> Option<SecretList> {
    let request = async {
        let _permit = permits.acquire().await;
        client.list_secrets(budget).await
    };
    let result = tokio::select! {
        result = request => result,
        () = cancel.cancelled() => return None,
    };
    let mut cost = cost.lock_or_recover();
    match result {
        Ok(list) => {
            cost.pages = Some(list.pages);
            cost.complete = list.complete;
            if !list.complete {
                tracing::info!(
                    vault = host,
                    pages = list.pages,
                    candidates,
                    "the vault holds too many secrets for its list to be cheaper than a GET per certificate"
                );
                return None;
            }
            tracing::debug!(
                vault = host,
                pages = list.pages,
                secrets = list.secrets.len(),
                "listed the vault's secrets"
            );
            Some(list)
        }
        Err(error) => {
            if error.code() == "vault.forbidden" {
                cost.refused = true;
                tracing::info!(vault = host, %error, "the identity may not list the vault's secrets; each certificate is fetched");
            } else {
                tracing::warn!(vault = host, code = error.code(), %error, "cannot list the vault's secrets; each certificate is fetched");
            }
            None
        }
    }
}

/// The complete lists read this cycle, by vault host and identity ([`super::connect::VaultKey`]):
/// a list read with one identity confirms only the certificates fetched with that identity, so
/// that a certificate is never skipped on the word of an identity that may not read it.
#[derive(Debug, Default)]
pub(super) struct Listed {
    pub(super) by_vault: HashMap<super::connect::VaultKey, SecretList>,
}

impl Listed {
    /// Whether the list of `vault` shows secret `name` (any case) with the `updated` recorded in
    /// `entry` for `installed` (the version in place), so that it has no new version.
    pub(super) fn confirms(
        &self,
        vault: &super::connect::VaultKey,
        name: &str,
        entry: &StateEntry,
        installed: &str,
    ) -> bool {
        let Some(list) = self.by_vault.get(vault) else {
            return false;
        };
        let Some(item) = list.secrets.get(&name.to_ascii_lowercase()) else {
            return false;
        };
        entry.installed_version.as_deref() == Some(installed)
            && entry.version_updated.is_some()
            && item.updated == entry.version_updated
    }
}

/// Whether the change from `before` to `after` must be saved: anything but `lastCheck`, and
/// `verifiedAt` only once it moved by half the full-check interval (so that a cycle of GETs that
/// found nothing new writes nothing, while the full check's schedule still survives restarts).
pub(super) fn significant_change(
    before: &StateEntry,
    after: &StateEntry,
    full_check_interval: Duration,
) -> bool {
    let verified_moved = match (before.verified_at, after.verified_at) {
        (Some(old), Some(new)) => {
            !full_check_interval.is_zero() && (new - old).abs() >= full_check_interval / 2
        }
        (None, None) => false,
        _ => !full_check_interval.is_zero(),
    };
    let mut quiet = before.clone();
    quiet.last_check = after.last_check;
    quiet.verified_at = after.verified_at;
    verified_moved || quiet != *after
}

#[cfg(test)]
mod tests {
    use super::super::connect::VaultKey;
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_list_is_read_only_when_it_can_be_cheaper() {
        let fresh = ListCost::default();
        assert_eq!(page_budget(&fresh, 1), None);
        assert_eq!(page_budget(&fresh, 2), Some(1));
        assert_eq!(page_budget(&fresh, 400), Some(399));
        // 3 certificates in a vault of 5,000 secrets: the probe stopped after 2 pages.
        let long = ListCost {
            pages: Some(2),
            complete: false,
            refused: false,
        };
        assert_eq!(page_budget(&long, 3), None);
        assert_eq!(page_budget(&long, 4), Some(3));
        let short = ListCost {
            pages: Some(3),
            complete: true,
            refused: false,
        };
        assert_eq!(page_budget(&short, 3), None);
        assert_eq!(page_budget(&short, 4), Some(3));
        let refused = ListCost {
            refused: true,
            ..ListCost::default()
        };
        assert_eq!(page_budget(&refused, 1000), None);
    }

    fn entry() -> StateEntry {
        StateEntry {
            installed_version: Some("v1".into()),
            version_updated: Some(datetime!(2026-11-22 10:00 UTC)),
            verified_at: Some(datetime!(2026-11-22 10:00:05 UTC)),
            ..StateEntry::default()
        }
    }

    #[test]
    fn full_checks_come_due_over_the_last_quarter_of_the_interval() {
        let day = Duration::from_secs(86_400);
        let intervals: Vec<Duration> = (0..200)
            .map(|i| full_check_interval_for(day, &format!("https://v/secrets/c{i}"), 7))
            .collect();
        assert!(
            intervals
                .iter()
                .all(|d| *d > day.mul_f64(0.75) && *d <= day)
        );
        let distinct: std::collections::BTreeSet<_> = intervals.iter().collect();
        assert!(distinct.len() > 150);
        assert_eq!(
            full_check_interval_for(day, "https://v/secrets/c1", 7),
            full_check_interval_for(day, "https://v/secrets/c1", 7)
        );
        assert_eq!(
            full_check_interval_for(Duration::ZERO, "u", 7),
            Duration::ZERO
        );
    }

    #[test]
    fn an_entry_is_listable_until_its_full_check_is_due() {
        let day = Duration::from_secs(86_400);
        let now = datetime!(2026-11-22 12:00 UTC);
        assert!(listable(&entry(), now, day));
        assert!(!listable(&entry(), datetime!(2026-11-23 10:00:06 UTC), day));
        assert!(!listable(&entry(), now, Duration::ZERO));
        let unsettled = StateEntry {
            version_updated: None,
            ..entry()
        };
        assert!(!listable(&unsettled, now, day));
        let nothing = StateEntry {
            installed_version: None,
            ..entry()
        };
        assert!(!listable(&nothing, now, day));
    }

    #[test]
    fn an_updated_is_recorded_only_once_key_vault_s_clock_passed_it() {
        let bundle = |updated, answered| SecretBundle {
            name: "n".into(),
            version: "v".into(),
            id: "i".into(),
            value: zeroize::Zeroizing::new(String::new()),
            content_type: None,
            enabled: Some(true),
            managed: None,
            key_id: None,
            not_before: None,
            expires: None,
            created: None,
            updated,
            tags: HashMap::new(),
            answered_at: answered,
        };
        let t = datetime!(2026-11-22 10:00 UTC);
        assert_eq!(settled_updated(&bundle(Some(t), Some(t))), None);
        assert_eq!(
            settled_updated(&bundle(Some(t), Some(t + time::Duration::seconds(1)))),
            None
        );
        assert_eq!(
            settled_updated(&bundle(Some(t), Some(t + time::Duration::seconds(2)))),
            Some(t)
        );
        assert_eq!(settled_updated(&bundle(Some(t), None)), None);
        assert_eq!(settled_updated(&bundle(None, Some(t))), None);
    }

    #[test]
    fn only_a_real_change_is_saved() {
        let day = Duration::from_secs(86_400);
        let before = entry();
        let mut after = before.clone();
        after.last_check = Some(datetime!(2026-11-22 11:00 UTC));
        after.verified_at = Some(datetime!(2026-11-22 11:00 UTC));
        assert!(!significant_change(&before, &after, day));
        after.verified_at = Some(datetime!(2026-11-22 23:00 UTC));
        assert!(significant_change(&before, &after, day));
        assert!(!significant_change(&before, &after, Duration::ZERO));
        let mut rotated = before.clone();
        rotated.installed_version = Some("v2".into());
        assert!(significant_change(&before, &rotated, day));
        let mut failed = before.clone();
        failed.record_error("vault.forbidden", "403", datetime!(2026-11-22 11:00 UTC));
        assert!(significant_change(&before, &failed, day));
    }

    #[test]
    fn a_list_confirms_only_the_recorded_updated_of_the_installed_version() {
        let mut listed = Listed::default();
        let mut list = SecretList::default();
        list.secrets.insert(
            "web".into(),
            crate::vault::ListedSecret {
                updated: Some(datetime!(2026-11-22 10:00 UTC)),
                enabled: Some(true),
            },
        );
        let v = VaultKey {
            host: "v.vault.azure.net".to_owned(),
            identity: None,
        };
        listed.by_vault.insert(v.clone(), list);
        let e = entry();
        assert!(listed.confirms(&v, "Web", &e, "v1"));
        assert!(!listed.confirms(&v, "web", &e, "v0"));
        assert!(!listed.confirms(&v, "api", &e, "v1"));
        let w = VaultKey {
            host: "w.vault.azure.net".to_owned(),
            identity: None,
        };
        assert!(!listed.confirms(&w, "web", &e, "v1"));
        // Another identity's list says nothing about this identity's certificates.
        let other = VaultKey {
            host: "v.vault.azure.net".to_owned(),
            identity: Some(crate::identity::ManagedIdentityId::ClientId(
                "c7373ae5-91c2-4165-8ab6-7381d6e75619".into(),
            )),
        };
        assert!(!listed.confirms(&other, "web", &e, "v1"));
        let newer = StateEntry {
            version_updated: Some(datetime!(2026-11-22 09:00 UTC)),
            ..entry()
        };
        assert!(!listed.confirms(&v, "web", &newer, "v1"));
    }
}
