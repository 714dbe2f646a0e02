//! Reload hooks: a command run after a certificate gets a new version.
//!
//! Each run is a process group of its own: the hook is done when its process exits (a daemon it
//! starts may go on), a timeout kills the whole group, and only the tail of its output is kept.
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
use akvvm_cert::locks::MutexExt;

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

    pub(super) fn delay_before_retry(&self, retry: u32) -> Duration {
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
    /// The hook's program (an absolute path) could be replaced by someone but root.
    #[error("reload hook not run: {0}")]
    Untrusted(#[from] crate::trusted::Untrusted),
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
    passes through {
        HookError::Untrusted(e) => e,
    }
}

/// Refuses a hook whose program, named by an absolute path, is not root's or is writable by
/// group or others: whoever could rewrite it would have it run as root. (A bare name is found
/// in the service's `PATH`, which only root writes.)
fn check_program(program: &str) -> Result<(), HookError> {
    let path = Path::new(program);
    if !path.is_absolute() {
        return Ok(());
    }
    // A missing program is reported by the spawn, with its own code.
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    crate::trusted::check("reload hook program", path, &meta)?;
    // Whoever can write a directory on the way could put their own program (or a link to
    // another) in its place.
    Ok(crate::trusted::check_directories(
        "directory of a reload hook program",
        path,
    )?)
}

/// The most output kept from a hook while it runs (its tail): a chatty hook cannot fill memory.
pub const OUTPUT_KEPT_BYTES: usize = 64 * 1024;
/// How long output is still collected once the hook has exited (a daemon it started may hold
/// its stdout open for ever; what the hook itself wrote is in the pipe already).
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// The last [`OUTPUT_KEPT_BYTES`] bytes of a hook's stdout and stderr.
#[derive(Debug, Default)]
struct Tail {
    bytes: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(OUTPUT_KEPT_BYTES);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.dropped += excess as u64;
        }
    }
}

/// Reads `stream` into `tail` until it closes.
async fn collect(
    stream: Option<impl tokio::io::AsyncRead + Unpin>,
    tail: std::sync::Arc<std::sync::Mutex<Tail>>,
) {
    let Some(mut stream) = stream else { return };
    let mut buf = [0u8; 8192];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.lock_or_recover().push(&buf[..n]);
    }
}

/// Sends SIGKILL to every process of the group `pid` leads.
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) else {
        return;
    };
    if let Err(error) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
        tracing::debug!(%error, "the hook's process group is gone already");
    }
}

/// Runs `hook` once, in a process group of its own. It has finished when its process exits
/// (not when its stdout and stderr close: a daemon it starts may keep them); on timeout or
/// shutdown the whole group is killed. At most [`OUTPUT_KEPT_BYTES`] of output are kept.
pub async fn run_once(
    hook: &ReloadHook,
    context: &HookContext,
    cancel: &CancellationToken,
) -> Result<(), HookError> {
    run_with_environment(hook, context.environment().to_vec(), cancel).await
}

pub(super) async fn run_with_environment(
    hook: &ReloadHook,
    environment: Vec<(&'static str, std::ffi::OsString)>,
    cancel: &CancellationToken,
) -> Result<(), HookError> {
    let program = hook.command.first().cloned().unwrap_or_default();
    check_program(&program)?;
    let mut child = tokio::process::Command::new(&program)
        .args(&hook.command[1..])
        .envs(environment)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HookError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pid = child.id();
    let tail = std::sync::Arc::new(std::sync::Mutex::new(Tail::default()));
    let readers = tokio::spawn({
        let (stdout, stderr, tail) = (child.stdout.take(), child.stderr.take(), tail.clone());
        async move {
            tokio::join!(collect(stdout, tail.clone()), collect(stderr, tail));
        }
    });
    let status = tokio::select! {
        result = tokio::time::timeout(hook.timeout, child.wait()) => match result {
            Ok(status) => status,
            Err(_) => {
                kill_group(pid);
                let _ = child.wait().await;
                readers.abort();
                return Err(HookError::Timeout { program, timeout: hook.timeout });
            }
        },
        () = cancel.cancelled() => {
            kill_group(pid);
            let _ = child.wait().await;
            readers.abort();
            return Err(HookError::Cancelled { program });
        }
    };
    let status = status.map_err(|source| HookError::Spawn {
        program: program.clone(),
        source,
    })?;
    let mut readers = readers;
    if tokio::time::timeout(OUTPUT_GRACE, &mut readers)
        .await
        .is_err()
    {
        readers.abort();
    }
    let output: Vec<u8> = tail.lock_or_recover().bytes.iter().copied().collect();
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
            Err(err @ (HookError::Cancelled { .. } | HookError::Untrusted(_))) => return Err(err),
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

impl HookRecord {
    /// The record of a hook about to run for `version`.
    pub fn pending(version: &str) -> Self {
        HookRecord {
            version: version.to_owned(),
            state: HookState::Pending,
            at: OffsetDateTime::now_utc(),
            error: None,
        }
    }
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
        // Read as the settings are (non-blocking, a regular file only root could have written):
        // a `Pending` record makes a restart run the hook, and a FIFO must not hang the start.
        let records = match crate::trusted::read_to_string("hook journal", &path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable hook journal");
                BTreeMap::new()
            }),
            Err(crate::trusted::Read::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                BTreeMap::new()
            }
            Err(crate::trusted::Read::Io(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable hook journal");
                BTreeMap::new()
            }
            Err(crate::trusted::Read::Untrusted(e)) => {
                tracing::warn!(error = %e, "ignoring the hook journal");
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
        akvvm_cert::store::write_atomic(&self.path, &bytes, 0o600, None)
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

    /// Whether `pid` is a process that has not exited (a zombie has).
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat.rsplit(") ").next().unwrap_or("").chars().next();
                !matches!(state, Some('Z' | 'X'))
            }
            Err(_) => false,
        }
    }

    async fn pid_in(path: &Path) -> i32 {
        for _ in 0..600 {
            if let Ok(text) = std::fs::read_to_string(path)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no pid in {}", path.display());
    }

    #[tokio::test]
    async fn a_hook_that_starts_a_daemon_is_done_when_it_exits() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("daemon.pid");
        // The daemon inherits stdout and stderr and keeps them open: the hook must count as
        // finished all the same (the generous timeout only ends the test if it does not).
        let script = format!(
            "sleep 1000 & echo $! > '{}'; echo restarted",
            pid_file.display()
        );
        let result = run_once(
            &hook(&script, Duration::from_secs(60)),
            &context(dir.path()),
            &CancellationToken::new(),
        )
        .await;
        let daemon = pid_in(&pid_file).await;
        let still_running = alive(daemon);
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(daemon).unwrap(),
            rustix::process::Signal::KILL,
        );
        result.expect("the hook exited successfully");
        assert!(still_running, "the daemon the hook started is left running");
    }

    #[tokio::test]
    async fn a_timed_out_hook_is_killed_with_its_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let script = format!("sleep 1000 & echo $! > '{}'; wait", pid_file.display());
        let err = run_once(
            &hook(&script, Duration::from_millis(500)),
            &context(dir.path()),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "hook.timeout");
        let child = pid_in(&pid_file).await;
        let mut gone = false;
        for _ in 0..600 {
            if !alive(child) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !gone {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(child).unwrap(),
                rustix::process::Signal::KILL,
            );
        }
        assert!(gone, "the hook's own child survived the timeout");
    }

    #[test]
    fn only_the_tail_of_the_output_is_kept() {
        let mut tail = Tail::default();
        let chunk = vec![b'x'; 8192];
        for _ in 0..1280 {
            tail.push(&chunk);
        }
        tail.push(b"the end");
        assert_eq!(tail.bytes.len(), OUTPUT_KEPT_BYTES);
        assert_eq!(tail.dropped, 1280 * 8192 + 7 - OUTPUT_KEPT_BYTES as u64);
        let kept: Vec<u8> = tail.bytes.iter().copied().collect();
        assert!(kept.ends_with(b"the end"));
    }

    #[tokio::test]
    async fn a_chatty_failing_hook_reports_the_tail_of_its_output() {
        let dir = tempfile::tempdir().unwrap();
        // One stream: the order of what arrives on two pipes read at once is not defined.
        let script =
            "{ head -c 4000000 /dev/zero | tr '\\0' 'x'; echo; echo last words; } >&2; exit 3";
        let err = run_once(
            &hook(script, Duration::from_secs(60)),
            &context(dir.path()),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.ends_with("last words"),
            "{}",
            &message[message.len().saturating_sub(80)..]
        );
        assert!(message.len() < 1024, "{} bytes", message.len());
    }

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
        // It holds hook output (in errors): root's alone.
        let mode = std::fs::metadata(dir.path().join(HOOK_JOURNAL_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        std::fs::write(dir.path().join(HOOK_JOURNAL_FILE), "{broken").unwrap();
        assert_eq!(HookJournal::load(dir.path()).get("u"), None);
    }

    #[tokio::test]
    async fn a_program_others_can_rewrite_is_not_run() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let script = dir.path().join("reload.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o777)).unwrap();
        let hook = ReloadHook {
            command: vec![script.display().to_string()],
            timeout: Duration::from_secs(60),
        };
        let err = run_once(&hook, &context(dir.path()), &CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "file.writable_by_others");
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        assert!(!marker.exists(), "the hook ran");

        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        run_once(&hook, &context(dir.path()), &CancellationToken::new())
            .await
            .unwrap();
        assert!(marker.exists());
    }

    #[tokio::test]
    async fn a_program_in_a_directory_others_can_write_is_not_run() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        let script = open.join("reload.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A link to it from a safe directory does not help: the program is where it leads.
        let link = dir.path().join("reload");
        std::os::unix::fs::symlink(&script, &link).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        for program in [&script, &link] {
            let hook = ReloadHook {
                command: vec![program.display().to_string()],
                timeout: Duration::from_secs(60),
            };
            let err = run_once(&hook, &context(dir.path()), &CancellationToken::new())
                .await
                .unwrap_err();
            assert_eq!(err.code(), "file.writable_by_others", "{err}");
            assert!(
                err.to_string().contains(&open.display().to_string()),
                "{err}"
            );
            assert!(!marker.exists(), "the hook ran");
        }

        // Sticky, as /tmp is: others cannot replace what is not theirs.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let hook = ReloadHook {
            command: vec![link.display().to_string()],
            timeout: Duration::from_secs(60),
        };
        run_once(&hook, &context(dir.path()), &CancellationToken::new())
            .await
            .unwrap();
        assert!(marker.exists());
    }
}
