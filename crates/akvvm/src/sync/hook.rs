//! Reload hooks: a command run after a certificate gets a new version.
//!
//! The command is an argument list (never a shell string built from names), run with the
//! certificate's paths, thumbprint and version in environment variables ([`HookContext`]), within
//! its timeout. A failure is retried a few times with a growing pause ([`HookRetry`]) and then
//! reported; it is never retried in a loop.
//!
//! [`HookJournal`] (`<state dir>/hooks.json`) records, per observed URL, the version whose hook
//! ran (or is about to run). A restart re-runs only a hook that was interrupted before it
//! finished, never one whose version has not changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::settings::ReloadHook;

/// The most output kept from a failing hook for its error message.
const OUTPUT_TAIL_BYTES: usize = 512;

/// What a hook is told about the new version, as environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookContext {
    /// `AKVVM_CERT_PATH`: the version file.
    pub cert_path: PathBuf,
    /// `AKVVM_LINK_PATH`: the stable link.
    pub link_path: PathBuf,
    /// `AKVVM_THUMBPRINT`: SHA-1 of the leaf, upper-case hex.
    pub thumbprint: String,
    /// `AKVVM_VERSION`: the Key Vault version.
    pub version: String,
    /// `AKVVM_URL`: the observed certificate URL.
    pub url: String,
}

impl HookContext {
    fn environment(&self) -> [(&'static str, std::ffi::OsString); 5] {
        [
            ("AKVVM_CERT_PATH", self.cert_path.clone().into_os_string()),
            ("AKVVM_LINK_PATH", self.link_path.clone().into_os_string()),
            ("AKVVM_THUMBPRINT", self.thumbprint.clone().into()),
            ("AKVVM_VERSION", self.version.clone().into()),
            ("AKVVM_URL", self.url.clone().into()),
        ]
    }
}

/// How failed hooks are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookRetry {
    /// Runs in all, the first one included.
    pub attempts: u32,
    /// The pause before the first retry; doubled before each next one, up to `max_delay`.
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

/// Runs of a failing hook, the first included.
pub const DEFAULT_HOOK_ATTEMPTS: u32 = 3;
/// The pause before a failing hook's first retry.
pub const DEFAULT_HOOK_RETRY_DELAY: Duration = Duration::from_secs(5);

impl HookRetry {
    /// The default policy, with no pause longer than `cap` (the polling interval).
    pub fn capped(cap: Duration) -> Self {
        HookRetry {
            attempts: DEFAULT_HOOK_ATTEMPTS,
            initial_delay: DEFAULT_HOOK_RETRY_DELAY.min(cap),
            max_delay: (DEFAULT_HOOK_RETRY_DELAY * 4).min(cap),
        }
    }

    fn delay_before_retry(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("reload hook `{program}` could not be started: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reload hook `{program}` failed ({status}){}", tail_suffix(output))]
    Failed {
        program: String,
        status: String,
        output: String,
    },
    #[error("reload hook `{program}` did not finish within {timeout:?} and was killed")]
    Timeout { program: String, timeout: Duration },
    #[error("reload hook `{program}` was interrupted by shutdown")]
    Cancelled { program: String },
}

fn tail_suffix(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!(": {output}")
    }
}

akvvm_cert::error_codes! {
    HookError {
        HookError::Spawn { .. } => "hook.spawn",
        HookError::Failed { .. } => "hook.failed",
        HookError::Timeout { .. } => "hook.timeout",
        HookError::Cancelled { .. } => "hook.cancelled",
    }
}

/// Runs `hook` once.
pub async fn run_once(
    hook: &ReloadHook,
    context: &HookContext,
    cancel: &CancellationToken,
) -> Result<(), HookError> {
    let program = hook.command.first().cloned().unwrap_or_default();
    let mut child = tokio::process::Command::new(&program)
        .args(&hook.command[1..])
        .envs(context.environment())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HookError::Spawn {
            program: program.clone(),
            source,
        })?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let read_output = async move {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        out.extend_from_slice(&err);
        out
    };
    let run = async { tokio::join!(child.wait(), read_output) };
    let (status, output) = tokio::select! {
        result = tokio::time::timeout(hook.timeout, run) => match result {
            Ok((status, output)) => (status, output),
            Err(_) => return Err(HookError::Timeout { program, timeout: hook.timeout }),
        },
        () = cancel.cancelled() => return Err(HookError::Cancelled { program }),
    };
    let status = status.map_err(|source| HookError::Spawn {
        program: program.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&output);
    if status.success() {
        if !text.trim().is_empty() {
            tracing::debug!(program, output = %text.trim(), "reload hook output");
        }
        Ok(())
    } else {
        let trimmed = text.trim();
        let start = trimmed.len().saturating_sub(OUTPUT_TAIL_BYTES);
        let start = (start..=trimmed.len())
            .find(|i| trimmed.is_char_boundary(*i))
            .unwrap_or(0);
        Err(HookError::Failed {
            program,
            status: status.to_string(),
            output: trimmed[start..].replace('\n', " | "),
        })
    }
}

/// Runs `hook`, retrying failures as `retry` says; returns the last error after the last attempt.
pub async fn run_with_retries(
    hook: &ReloadHook,
    context: &HookContext,
    retry: &HookRetry,
    cancel: &CancellationToken,
) -> Result<u32, HookError> {
    let mut attempt = 1;
    loop {
        match run_once(hook, context, cancel).await {
            Ok(()) => return Ok(attempt),
            Err(err @ HookError::Cancelled { .. }) => return Err(err),
            Err(err) if attempt >= retry.attempts.max(1) => return Err(err),
            Err(err) => {
                let delay = retry.delay_before_retry(attempt);
                tracing::warn!(url = %context.url, attempt, error = %err, ?delay, "reload hook failed, retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = cancel.cancelled() => return Err(err),
                }
                attempt += 1;
            }
        }
    }
}

/// Where a hook stands for one observed URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookState {
    /// The version is installed and its hook has not finished yet.
    Pending,
    Succeeded,
    /// Every attempt failed; reported, not retried until the next version.
    Failed,
}

/// One URL's hook record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRecord {
    pub version: String,
    pub state: HookState,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `<state dir>/hooks.json`: which version's hook ran, per observed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookJournal {
    path: PathBuf,
    records: BTreeMap<String, HookRecord>,
}

/// The journal's file name in the state directory.
pub const HOOK_JOURNAL_FILE: &str = "hooks.json";

impl HookJournal {
    /// Loads the journal; a missing or unreadable one is empty (an unreadable one is logged).
    pub fn load(state_directory: &Path) -> Self {
        let path = state_directory.join(HOOK_JOURNAL_FILE);
        let records = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable hook journal");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable hook journal");
                BTreeMap::new()
            }
        };
        HookJournal { path, records }
    }

    pub fn get(&self, url: &str) -> Option<&HookRecord> {
        self.records.get(url)
    }

    /// Records `record` for `url` and saves the journal.
    pub fn record(
        &mut self,
        url: &str,
        record: HookRecord,
    ) -> Result<(), akvvm_cert::store::StoreError> {
        self.records.insert(url.to_string(), record);
        let bytes = serde_json::to_vec_pretty(&self.records).unwrap_or_default();
        akvvm_cert::store::write_atomic(&self.path, &bytes, 0o644, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(dir: &Path) -> HookContext {
        HookContext {
            cert_path: dir.join("v.c.1"),
            link_path: dir.join("v.c"),
            thumbprint: "AB12".into(),
            version: "1".into(),
            url: "https://v.vault.azure.net/secrets/c".into(),
        }
    }

    fn hook(script: &str, timeout: Duration) -> ReloadHook {
        ReloadHook {
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
            timeout,
        }
    }

    const FAST: HookRetry = HookRetry {
        attempts: 3,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
    };

    #[tokio::test]
    async fn the_hook_sees_the_certificate_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env.txt");
        let script = format!(
            "echo \"$AKVVM_CERT_PATH $AKVVM_LINK_PATH $AKVVM_THUMBPRINT $AKVVM_VERSION $AKVVM_URL\" > '{}'",
            out.display()
        );
        run_once(
            &hook(&script, Duration::from_secs(10)),
            &context(dir.path()),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        let text = std::fs::read_to_string(out).unwrap();
        assert_eq!(
            text.trim(),
            format!(
                "{} {} AB12 1 https://v.vault.azure.net/secrets/c",
                dir.path().join("v.c.1").display(),
                dir.path().join("v.c").display()
            )
        );
    }

    #[tokio::test]
    async fn a_failing_hook_is_retried_then_reported_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let script = format!(
            "echo x >> '{}'; echo 'nginx: bad config' >&2; exit 3",
            count.display()
        );
        let err = run_with_retries(
            &hook(&script, Duration::from_secs(10)),
            &context(dir.path()),
            &FAST,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "hook.failed");
        assert!(err.to_string().contains("nginx: bad config"), "{err}");
        assert!(err.to_string().contains("exit status: 3"), "{err}");
        assert_eq!(std::fs::read_to_string(count).unwrap().lines().count(), 3);
    }

    #[tokio::test]
    async fn a_hook_that_fails_once_succeeds_on_retry() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("marker");
        let script = format!(
            "if [ -e '{0}' ]; then exit 0; fi; touch '{0}'; exit 1",
            marker.display()
        );
        let attempts = run_with_retries(
            &hook(&script, Duration::from_secs(10)),
            &context(dir.path()),
            &FAST,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(attempts, 2);
    }

    #[tokio::test]
    async fn a_slow_hook_is_killed_at_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let err = run_once(
            &hook("sleep 30", Duration::from_millis(200)),
            &context(dir.path()),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "hook.timeout");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = ReloadHook {
            command: vec![dir.path().join("no-such-program").display().to_string()],
            timeout: Duration::from_secs(1),
        };
        let err = run_with_retries(
            &missing,
            &context(dir.path()),
            &FAST,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "hook.spawn");
        assert!(err.to_string().contains("no-such-program"), "{err}");
    }

    #[test]
    fn retry_delays_grow_and_are_capped() {
        let retry = HookRetry::capped(Duration::from_secs(3600));
        assert_eq!(retry.delay_before_retry(1), Duration::from_secs(5));
        assert_eq!(retry.delay_before_retry(2), Duration::from_secs(10));
        assert_eq!(retry.delay_before_retry(5), Duration::from_secs(20));
        let short = HookRetry::capped(Duration::from_secs(1));
        assert_eq!(short.delay_before_retry(3), Duration::from_secs(1));
    }

    #[test]
    fn the_journal_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = HookJournal::load(dir.path());
        assert_eq!(journal.get("u"), None);
        let record = HookRecord {
            version: "v1".into(),
            state: HookState::Pending,
            at: OffsetDateTime::UNIX_EPOCH,
            error: None,
        };
        journal.record("u", record.clone()).unwrap();
        assert_eq!(HookJournal::load(dir.path()).get("u"), Some(&record));
        std::fs::write(dir.path().join(HOOK_JOURNAL_FILE), "{broken").unwrap();
        assert_eq!(HookJournal::load(dir.path()).get("u"), None);
    }
}
