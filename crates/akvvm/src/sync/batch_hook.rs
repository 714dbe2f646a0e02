//! `akvvm.batchReload`: the hook run once per cycle after all of that cycle's installs (when
//! there was at least one), besides the per-certificate hooks, told what was installed through
//! its environment ([`BatchContext`]).

use tokio_util::sync::CancellationToken;

use super::hook::{self, HookContext, HookRetry};
use super::{CertOutcome, CertReport};
use crate::settings::{ReloadHook, Settings};

/// `akvvm.batchReload`: once, after all of this cycle's installs, when there was one.
pub(super) async fn run(settings: &Settings, reports: &[CertReport], cancel: &CancellationToken) {
    let Some(hook) = &settings.agent.batch_reload else {
        return;
    };
    let installed: Vec<HookContext> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            CertOutcome::Installed(info) => Some((r, info)),
            _ => None,
        })
        .map(|(r, info)| HookContext {
            cert_path: info.file.clone().unwrap_or_default(),
            link_path: settings
                .observed
                .iter()
                .find(|c| c.url.to_string() == r.url)
                .map(|c| c.stable_link_in(settings.mode.mode))
                .unwrap_or_default(),
            thumbprint: info.thumbprint.clone().unwrap_or_default(),
            version: info.version.clone(),
            url: r.url.clone(),
        })
        .collect();
    if installed.is_empty() {
        return;
    }
    let count = installed.len();
    let retry = HookRetry::capped(settings.polling_interval);
    match run_batch(hook, &BatchContext { installed }, &retry, cancel).await {
        Ok(attempts) => {
            tracing::info!(program = %hook.command[0], attempts, installed = count, "batch reload hook succeeded");
        }
        Err(err) => {
            tracing::error!(code = err.code(), error = %err, installed = count, "batch reload hook failed");
        }
    }
}

/// What the batch hook (`akvvm.batchReload`) is told: every certificate the cycle installed a
/// new version of, one per line in each variable, in the same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchContext {
    pub installed: Vec<HookContext>,
}

impl BatchContext {
    fn environment(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let lines = |f: &dyn Fn(&HookContext) -> std::ffi::OsString| {
            let mut out = std::ffi::OsString::new();
            for (i, c) in self.installed.iter().enumerate() {
                if i > 0 {
                    out.push("\n");
                }
                out.push(f(c));
            }
            out
        };
        vec![
            (
                "AKVVM_INSTALLED_COUNT",
                self.installed.len().to_string().into(),
            ),
            ("AKVVM_INSTALLED_URLS", lines(&|c| c.url.clone().into())),
            (
                "AKVVM_INSTALLED_VERSIONS",
                lines(&|c| c.version.clone().into()),
            ),
            (
                "AKVVM_INSTALLED_CERT_PATHS",
                lines(&|c| c.cert_path.clone().into_os_string()),
            ),
            (
                "AKVVM_INSTALLED_LINK_PATHS",
                lines(&|c| c.link_path.clone().into_os_string()),
            ),
            (
                "AKVVM_INSTALLED_THUMBPRINTS",
                lines(&|c| c.thumbprint.clone().into()),
            ),
        ]
    }
}

/// Runs the batch hook once per cycle that installed something, retrying failures as `retry`
/// says (the same runner as the per-certificate hooks: own process group, timeout, output tail).
pub async fn run_batch(
    hook: &ReloadHook,
    context: &BatchContext,
    retry: &HookRetry,
    cancel: &CancellationToken,
) -> Result<u32, hook::HookError> {
    let mut attempt = 1;
    loop {
        match hook::run_with_environment(hook, context.environment(), cancel).await {
            Ok(()) => return Ok(attempt),
            Err(err @ (hook::HookError::Cancelled { .. } | hook::HookError::Untrusted(_))) => {
                return Err(err);
            }
            Err(err) if attempt >= retry.attempts.max(1) => return Err(err),
            Err(err) => {
                let delay = retry.delay_before_retry(attempt);
                tracing::warn!(attempt, error = %err, ?delay, "batch reload hook failed, retrying");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = cancel.cancelled() => return Err(err),
                }
                attempt += 1;
            }
        }
    }
}
