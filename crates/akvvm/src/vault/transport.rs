//! The SDK's transport: akvvm's reqwest client under the official client, retrying 429, 5xx and
//! connection failures per [`RetryPolicy`] (the SDK's own retries are off), counting attempts,
//! and reading the tenant from Key Vault's challenge into the vault's [`TenantSlot`].
//!
//! A 429 pauses every request to the vault, not only the one that got it ([`ThrottleGate`]): the
//! agent's other requests in flight would only collect more 429s. The pause is `Retry-After`
//! plus a full-jitter backoff that grows with each 429 in a row
//! ([`RetryPolicy::throttle_delay`]), so a fleet told the same `Retry-After` spreads out instead
//! of coming back together, and 429s without `Retry-After` do not turn into a retry storm.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use azure_core::http::headers::{AUTHORIZATION, HeaderName, Headers, WWW_AUTHENTICATE};
use azure_core::http::{AsyncRawResponse, HttpClient, Request};
use tokio::time::Instant;
use tracing::Instrument;

use crate::http::{self, RetryPolicy};
use crate::identity::{Identity, TenantSlot};
use crate::metrics::Metrics;

use super::Challenge;
use akvvm_cert::locks::MutexExt;

/// The SDK's transport: akvvm's reqwest client, retrying per [`RetryPolicy`], reading the
/// tenant from challenges.
#[derive(Debug)]
pub struct VaultTransport {
    pub(super) client: reqwest::Client,
    pub(super) retry: RetryPolicy,
    pub(super) tenant: Arc<TenantSlot>,
    pub(super) identity: Identity,
    /// The vault's host, the label of its request counts.
    pub(super) host: String,
    pub(super) metrics: Option<Arc<Metrics>>,
    /// The vault's throttling pause, shared by its requests.
    pub(super) gate: ThrottleGate,
    /// Tokens on the first requests, when the vault's cloud is known ([`super::preauth`]).
    pub(super) preauth: Option<super::preauth::PreAuth>,
}

/// When a throttled vault may be asked again, shared by every request of one vault client.
///
/// After a 429 every request waits out the pause; then one request alone probes the vault, and
/// the others follow only once an answer that is not a 429 has come back. An agent with several
/// requests in flight therefore sends one request per pause while it is throttled, not one per
/// request in flight.
#[derive(Debug, Default)]
pub struct ThrottleGate {
    state: Mutex<GateState>,
    changed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct GateState {
    /// No request before this.
    until: Option<Instant>,
    /// 429s in a row (reset by any other answer).
    streak: u32,
    /// A request is probing the throttled vault.
    probing: bool,
}

/// What [`ThrottleGate::wait`] let through. A probe that ends without an answer (an error, or a
/// request dropped) hands the probe to the next request.
#[derive(Debug)]
pub struct Pass<'a> {
    gate: &'a ThrottleGate,
    probe: bool,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.gate.state.lock_or_recover().probing = false;
            self.gate.changed.notify_waiters();
        }
    }
}

impl ThrottleGate {
    /// Waits until this request may be sent.
    pub async fn wait(&self) -> Pass<'_> {
        loop {
            let changed = self.changed.notified();
            let sleep_until = {
                let mut state = self.state.lock_or_recover();
                match state.until {
                    Some(until) if until > Instant::now() => Some(until),
                    _ if state.streak == 0 => {
                        return Pass {
                            gate: self,
                            probe: false,
                        };
                    }
                    _ if !state.probing => {
                        state.probing = true;
                        return Pass {
                            gate: self,
                            probe: true,
                        };
                    }
                    _ => None,
                }
            };
            match sleep_until {
                Some(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Records a 429 and returns how long from now the vault is paused.
    pub fn throttled(&self, policy: &RetryPolicy, retry_after: Option<Duration>) -> Duration {
        let mut state = self.state.lock_or_recover();
        state.streak = state.streak.saturating_add(1);
        let delay = policy.throttle_delay(state.streak, retry_after, &mut rand::rng());
        let now = Instant::now();
        let until = state
            .until
            .filter(|u| *u > now + delay)
            .unwrap_or(now + delay);
        state.until = Some(until);
        drop(state);
        self.changed.notify_waiters();
        until - now
    }

    /// Records an answer that was not a 429: the vault is open again.
    pub fn answered(&self) {
        let mut state = self.state.lock_or_recover();
        if state.streak == 0 {
            return;
        }
        state.streak = 0;
        drop(state);
        self.changed.notify_waiters();
    }
}

impl VaultTransport {
    fn note_challenge(&self, request: &Request, headers: &Headers) {
        let Some(value) = headers.get_optional_str(&WWW_AUTHENTICATE) else {
            return;
        };
        let Some(challenge) = Challenge::parse(value) else {
            return;
        };
        if !challenge.covers(request.url()) {
            tracing::warn!(
                url = %http::redact_url(request.url()),
                resource = challenge.resource.as_deref().unwrap_or(""),
                "ignoring a Key Vault challenge whose resource does not cover the vault host"
            );
            return;
        }
        if let Some(tenant) = challenge.tenant() {
            tracing::debug!(tenant = %tenant, "tenant learned from the Key Vault challenge");
            self.tenant.set(&tenant);
        }
    }
}

/// `response`, whose body the SDK reads only up to [`http::MAX_BODY_BYTES`].
fn capped(response: AsyncRawResponse) -> AsyncRawResponse {
    let (status, headers, body) = response.deconstruct();
    let body = http::capped_stream(body, http::MAX_BODY_BYTES, |limit| {
        // Not `Io`: the vault was reached and answered, with something unusable (the error is
        // `vault.response_invalid`, not `vault.unreachable`).
        azure_core::Error::with_message(
            azure_core::error::ErrorKind::DataConversion,
            format!("the answer is larger than {limit} bytes"),
        )
    });
    AsyncRawResponse::new(status, headers, Box::pin(body))
}

fn retry_after(headers: &Headers) -> Option<Duration> {
    let mut map = reqwest::header::HeaderMap::new();
    for name in ["retry-after", "retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(value) = headers.get_optional_str(&HeaderName::from_static(name))
            && let Ok(value) = reqwest::header::HeaderValue::from_str(value)
        {
            map.insert(name, value);
        }
    }
    http::retry_after(&map, SystemTime::now())
}

#[async_trait::async_trait]
impl HttpClient for VaultTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let started = Instant::now();
        let preauthorized = match &self.preauth {
            Some(preauth) => preauth.authorize(request).await,
            None => None,
        };
        let request = preauthorized.as_ref().unwrap_or(request);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Held until the answer is in: a probe hands over when it ends (see `Pass`).
            let _pass = self.gate.wait().await;
            let span = tracing::debug_span!(
                "http_attempt",
                attempt,
                status = tracing::field::Empty,
                url = %http::redact_url(request.url()),
            );
            let outcome = self
                .client
                .execute_request(request)
                .instrument(span.clone())
                .await;
            if let Some(metrics) = &self.metrics {
                let status = outcome.as_ref().ok().map(|r| u16::from(r.status()));
                metrics.record_request(&self.host, status);
            }
            let refused_token = matches!(&outcome, Ok(response) if u16::from(response.status()) == 401)
                && request.headers().get_optional_str(&AUTHORIZATION).is_some();
            if refused_token
                && preauthorized.is_some()
                && let Some(preauth) = &self.preauth
            {
                // The official client sent this request without a token: it meets the 401
                // challenge as usual, and the next requests follow the challenge.
                preauth.refused();
            }
            if refused_token {
                // The token itself was refused: the next request fetches a new one.
                tracing::debug!(parent: &span, "key vault refused the token");
                self.identity.forget_tokens().await;
            }
            let delay = match &outcome {
                Ok(response) => {
                    let status = u16::from(response.status());
                    span.record("status", status);
                    if status == 401 {
                        self.note_challenge(request, response.headers());
                    }
                    if status == 429 && self.retry.retries_status(429) {
                        // The gate holds every request of this vault, this one included.
                        let pause = self
                            .gate
                            .throttled(&self.retry, retry_after(response.headers()));
                        if !self
                            .retry
                            .retries_throttling(attempt, pause, started.elapsed())
                        {
                            return outcome;
                        }
                        tracing::debug!(
                            parent: &span,
                            pause_ms = http::millis(pause),
                            "key vault throttled the request; pausing the vault's requests"
                        );
                        continue;
                    }
                    self.gate.answered();
                    if !self.retry.retries_status(status) {
                        return outcome.map(capped);
                    }
                    self.retry.next_delay(
                        attempt,
                        retry_after(response.headers()),
                        started.elapsed(),
                    )
                }
                Err(err) => {
                    let transient = matches!(
                        err.kind(),
                        azure_core::error::ErrorKind::Io | azure_core::error::ErrorKind::Connection
                    );
                    if self.retry.retry_transport_errors && transient {
                        self.retry.next_delay(attempt, None, started.elapsed())
                    } else {
                        None
                    }
                }
            };
            let Some(delay) = delay else {
                return outcome.map(capped);
            };
            tracing::debug!(
                parent: &span,
                delay_ms = http::millis(delay),
                "retrying the key vault request"
            );
            tokio::time::sleep(delay).await;
        }
    }
}
