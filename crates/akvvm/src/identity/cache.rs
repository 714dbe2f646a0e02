//! The token cache shared by akvvm's credentials.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::AccessToken;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use super::IdentityError;

/// How long before expiry a cached token is refreshed. Tokens living less than twice this are
/// refreshed at half their lifetime instead.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Entry {
    token: AccessToken,
    refresh_at: OffsetDateTime,
}

type Slot = Arc<Mutex<Option<Entry>>>;

/// Tokens by key (scope, or tenant + scope), each refreshed by one caller at a time: concurrent
/// callers of an expiring key wait for the one refresh and share its token.
#[derive(Debug, Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<String, Slot>>,
}

impl TokenCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached token for `key`, or a fresh one from `fetch` when there is none or it is due
    /// for refresh. When a refresh fails but the cached token has not expired yet, the cached
    /// token is returned (and the failure logged), so a brief outage of the token endpoint does
    /// not become an outage of akvvm.
    pub async fn get_or_refresh<F, Fut>(
        &self,
        key: &str,
        fetch: F,
    ) -> Result<AccessToken, IdentityError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, IdentityError>>,
    {
        let slot = {
            let mut slots = self.slots.lock().await;
            slots.entry(key.to_owned()).or_default().clone()
        };
        let mut entry = slot.lock().await;
        let now = OffsetDateTime::now_utc();
        if let Some(cached) = entry.as_ref()
            && now < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        match fetch().await {
            Ok(token) => {
                let refresh_at = refresh_time(now, token.expires_on);
                *entry = Some(Entry {
                    token: token.clone(),
                    refresh_at,
                });
                Ok(token)
            }
            Err(err) => match entry.as_ref() {
                Some(cached) if now < cached.token.expires_on => {
                    tracing::warn!(
                        error = %err,
                        "token refresh failed; using the cached token until it expires"
                    );
                    Ok(cached.token.clone())
                }
                _ => Err(err),
            },
        }
    }

    /// Forgets every cached token (after a credential change).
    pub async fn clear(&self) {
        self.slots.lock().await.clear();
    }
}

/// When a token obtained at `now` and expiring at `expires_on` is refreshed.
fn refresh_time(now: OffsetDateTime, expires_on: OffsetDateTime) -> OffsetDateTime {
    let lifetime = expires_on - now;
    let margin = time::Duration::try_from(REFRESH_MARGIN).unwrap_or(time::Duration::ZERO);
    if lifetime >= margin * 2 {
        expires_on - margin
    } else {
        now + lifetime / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::credentials::Secret;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn token(value: &str, lifetime: time::Duration) -> AccessToken {
        AccessToken::new(
            Secret::new(value.to_owned()),
            OffsetDateTime::now_utc() + lifetime,
        )
    }

    #[test]
    fn refresh_time_uses_margin_or_half_life() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let hour = now + time::Duration::hours(1);
        assert_eq!(refresh_time(now, hour), hour - time::Duration::minutes(5));
        let short = now + time::Duration::minutes(4);
        assert_eq!(refresh_time(now, short), now + time::Duration::minutes(2));
    }

    #[tokio::test]
    async fn fresh_token_is_cached_and_expiring_one_refreshed() {
        let cache = TokenCache::new();
        let calls = AtomicUsize::new(0);
        for _ in 0..3 {
            let t = cache
                .get_or_refresh("k", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(token("a", time::Duration::hours(1)))
                })
                .await
                .unwrap();
            assert!(
                t.token.secret() == "a",
                "not the expected token (not shown)"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // A token already past its refresh time is fetched again on every call.
        for expected in 1..=2 {
            cache
                .get_or_refresh("short", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(token("b", time::Duration::ZERO))
                })
                .await
                .unwrap();
            assert_eq!(calls.load(Ordering::SeqCst), 1 + expected);
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let cache = Arc::new(TokenCache::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let cache = cache.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_refresh("k", || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(token("shared", time::Duration::hours(1)))
                    })
                    .await
                    .unwrap()
            }));
        }
        for task in tasks {
            assert!(
                task.await.unwrap().token.secret() == "shared",
                "not the expected token (not shown)"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failed_refresh_falls_back_to_unexpired_token() {
        let cache = TokenCache::new();
        // A 2-second token is due for refresh after 1 s but valid for 2 s.
        cache
            .get_or_refresh("k", || async {
                Ok(token("old", time::Duration::seconds(2)))
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let t = cache
            .get_or_refresh("k", || async {
                Err(IdentityError::UnsupportedScope("down".into()))
            })
            .await
            .unwrap();
        assert!(
            t.token.secret() == "old",
            "not the expected token (not shown)"
        );
        let err = cache
            .get_or_refresh("other", || async {
                Err(IdentityError::UnsupportedScope("down".into()))
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), "identity.scope_unsupported");
    }
}
