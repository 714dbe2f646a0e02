//! What a cycle found: one [`CertReport`] per certificate checked ([`CertOutcome`]: installed,
//! unchanged or failed, with what stays in place), gathered in a [`CycleReport`], and each
//! certificate's line in the status file ([`CertReport::substatus`]).

use std::path::PathBuf;

use time::OffsetDateTime;

use crate::status::{CODE_FAILED, CODE_OK, State, Substatus};

/// What one check of one certificate found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertOutcome {
    /// A new version was installed by this check.
    Installed(InstalledInfo),
    /// The installed version is current; nothing was parsed or written.
    Unchanged(InstalledInfo),
    /// The check failed; `installed` is what stays in place, if anything.
    Failed {
        code: String,
        message: String,
        installed: Option<InstalledInfo>,
    },
}

/// A version in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledInfo {
    pub version: String,
    pub thumbprint: Option<String>,
    pub not_after: Option<OffsetDateTime>,
    pub file: Option<PathBuf>,
    /// `[code] message` when this version was installed with a chain-validation warning
    /// (`cert.chain_untrusted`, `cert.chain_unverified`): the status line is a warning.
    pub chain_warning: Option<String>,
}

/// What became of a certificate's reload hook in one check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HookOutcome {
    /// No hook ran: none is configured, or nothing new was installed.
    #[default]
    NotRun,
    /// The hook ran and succeeded.
    Succeeded,
    /// The hook ran and failed after its retries (or was interrupted), or it failed earlier for
    /// the version still in place.
    Failed { message: String },
}

impl HookOutcome {
    /// The failure's message, when the hook failed.
    pub fn failure(&self) -> Option<&str> {
        match self {
            HookOutcome::Failed { message } => Some(message),
            HookOutcome::NotRun | HookOutcome::Succeeded => None,
        }
    }

    /// Whether the hook ran (and succeeded or failed).
    pub fn ran(&self) -> bool {
        !matches!(self, HookOutcome::NotRun)
    }
}

/// The outcome of one certificate's check, with its reload hook's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertReport {
    pub url: String,
    pub outcome: CertOutcome,
    pub hook: HookOutcome,
}

impl CertReport {
    /// Whether a version of this certificate is in place.
    pub fn is_installed(&self) -> bool {
        match &self.outcome {
            CertOutcome::Installed(_) | CertOutcome::Unchanged(_) => true,
            CertOutcome::Failed { installed, .. } => installed.is_some(),
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.outcome, CertOutcome::Failed { .. })
    }

    /// This certificate's line in the status file; expiry within `warn_days` is a warning.
    pub fn substatus(&self, now: OffsetDateTime, warn_days: u32) -> Substatus {
        let describe = |info: &InstalledInfo| {
            let mut text = format!("version {}", info.version);
            if let Some(t) = &info.thumbprint {
                text.push_str(&format!(", thumbprint {t}"));
            }
            if let Some(e) = info.not_after {
                text.push_str(&format!(", expires {}", crate::status::format_timestamp(e)));
            }
            if let Some(f) = &info.file {
                text.push_str(&format!(", file {}", f.display()));
            }
            text
        };
        let (mut state, mut code, mut message) = match &self.outcome {
            CertOutcome::Installed(info) => (
                State::Success,
                CODE_OK,
                format!("installed {}", describe(info)),
            ),
            CertOutcome::Unchanged(info) => (
                State::Success,
                CODE_OK,
                format!("current: {}", describe(info)),
            ),
            CertOutcome::Failed {
                code,
                message,
                installed: Some(info),
            } => (
                State::Warning,
                CODE_FAILED,
                format!("[{code}] {message} (still installed: {})", describe(info)),
            ),
            CertOutcome::Failed {
                code,
                message,
                installed: None,
            } => (State::Error, CODE_FAILED, format!("[{code}] {message}")),
        };
        let not_after = match &self.outcome {
            CertOutcome::Installed(i) | CertOutcome::Unchanged(i) => i.not_after,
            CertOutcome::Failed { installed, .. } => installed.as_ref().and_then(|i| i.not_after),
        };
        if let Some(not_after) = not_after {
            let left = not_after - now;
            if left.is_negative() {
                message = format!(
                    "EXPIRED on {}: {message}",
                    crate::status::format_timestamp(not_after)
                );
                if state == State::Success {
                    state = State::Warning;
                }
            } else if left.whole_days() < i64::from(warn_days) {
                message = format!("expires in {} days: {message}", left.whole_days());
                if state == State::Success {
                    state = State::Warning;
                }
            }
        }
        let installed = match &self.outcome {
            CertOutcome::Installed(i) | CertOutcome::Unchanged(i) => Some(i),
            CertOutcome::Failed { installed, .. } => installed.as_ref(),
        };
        if let Some(warning) = installed.and_then(|i| i.chain_warning.as_ref()) {
            message = format!("{message}; {warning}");
            if state == State::Success {
                state = State::Warning;
            }
        }
        if let Some(hook) = self.hook.failure() {
            message = format!("{message}; reload hook failed: {hook}");
            if state == State::Success {
                state = State::Warning;
                code = CODE_FAILED;
            }
        }
        Substatus {
            name: self.url.clone(),
            state,
            code,
            message,
        }
    }
}

/// The outcome of one cycle, one report per certificate checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CycleReport {
    pub certificates: Vec<CertReport>,
}

impl CycleReport {
    /// Every certificate checked is installed and none failed.
    pub fn complete(&self) -> bool {
        self.certificates
            .iter()
            .all(|c| c.is_installed() && !c.is_failed())
    }

    pub fn installed_count(&self) -> usize {
        self.certificates
            .iter()
            .filter(|c| c.is_installed())
            .count()
    }
}

impl From<Vec<CertReport>> for CycleReport {
    fn from(certificates: Vec<CertReport>) -> Self {
        CycleReport { certificates }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn info(not_after: OffsetDateTime) -> InstalledInfo {
        InstalledInfo {
            version: "v2".into(),
            thumbprint: Some("ABCD".into()),
            not_after: Some(not_after),
            file: Some("/s/v.c.v2".into()),
            chain_warning: None,
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-11-22 10:00:00 UTC);

    #[test]
    fn substatus_describes_an_install() {
        let report = CertReport {
            url: "https://v.vault.azure.net/secrets/c".into(),
            outcome: CertOutcome::Installed(info(datetime!(2027-11-22 10:00:00 UTC))),
            hook: HookOutcome::NotRun,
        };
        assert_eq!(
            report.substatus(NOW, 30),
            Substatus {
                name: "https://v.vault.azure.net/secrets/c".into(),
                state: State::Success,
                code: CODE_OK,
                message: "installed version v2, thumbprint ABCD, expires 2027-11-22T10:00:00Z, file /s/v.c.v2".into(),
            }
        );
    }

    #[test]
    fn failures_are_warnings_while_a_version_stays_and_errors_otherwise() {
        let kept = CertReport {
            url: "u".into(),
            outcome: CertOutcome::Failed {
                code: "vault.forbidden".into(),
                message: "403".into(),
                installed: Some(info(datetime!(2027-11-22 10:00:00 UTC))),
            },
            hook: HookOutcome::NotRun,
        };
        let sub = kept.substatus(NOW, 30);
        assert_eq!(sub.state, State::Warning);
        assert!(
            sub.message
                .starts_with("[vault.forbidden] 403 (still installed: version v2"),
            "{}",
            sub.message
        );
        let none = CertReport {
            url: "u".into(),
            outcome: CertOutcome::Failed {
                code: "x".into(),
                message: "m".into(),
                installed: None,
            },
            hook: HookOutcome::NotRun,
        };
        assert_eq!(none.substatus(NOW, 30).state, State::Error);
        assert_eq!(none.substatus(NOW, 30).code, CODE_FAILED);
        assert!(!none.is_installed());
        assert!(kept.is_installed());
        assert!(
            !CycleReport {
                certificates: vec![kept]
            }
            .complete()
        );
    }

    #[test]
    fn expiring_and_expired_certificates_are_warnings() {
        let soon = CertReport {
            url: "u".into(),
            outcome: CertOutcome::Unchanged(info(datetime!(2026-12-01 10:00:00 UTC))),
            hook: HookOutcome::NotRun,
        };
        let sub = soon.substatus(NOW, 30);
        assert_eq!(sub.state, State::Warning);
        assert!(
            sub.message
                .starts_with("expires in 9 days: current: version v2"),
            "{}",
            sub.message
        );
        let expired = CertReport {
            url: "u".into(),
            outcome: CertOutcome::Unchanged(info(datetime!(2026-11-01 10:00:00 UTC))),
            hook: HookOutcome::NotRun,
        };
        assert!(
            expired
                .substatus(NOW, 30)
                .message
                .starts_with("EXPIRED on 2026-11-01T10:00:00Z")
        );
    }

    #[test]
    fn a_chain_warning_is_a_warning_for_as_long_as_the_version_stays() {
        let mut i = info(datetime!(2027-11-22 10:00:00 UTC));
        i.chain_warning = Some("[cert.chain_untrusted] \"CN=web\" is self-signed".into());
        for outcome in [CertOutcome::Installed(i.clone()), CertOutcome::Unchanged(i)] {
            let sub = CertReport {
                url: "u".into(),
                outcome,
                hook: HookOutcome::NotRun,
            }
            .substatus(NOW, 30);
            assert_eq!(sub.state, State::Warning);
            assert_eq!(sub.code, CODE_OK);
            assert!(
                sub.message
                    .ends_with("; [cert.chain_untrusted] \"CN=web\" is self-signed"),
                "{}",
                sub.message
            );
        }
    }

    #[test]
    fn only_a_failed_hook_has_a_failure_and_only_a_hook_not_run_did_not_run() {
        let failed = HookOutcome::Failed {
            message: "exit status 1".into(),
        };
        assert_eq!(HookOutcome::default(), HookOutcome::NotRun);
        assert_eq!(
            [&HookOutcome::NotRun, &HookOutcome::Succeeded, &failed].map(HookOutcome::failure),
            [None, None, Some("exit status 1")]
        );
        assert_eq!(
            [&HookOutcome::NotRun, &HookOutcome::Succeeded, &failed].map(HookOutcome::ran),
            [false, true, true]
        );
    }

    #[test]
    fn a_failed_hook_is_a_warning() {
        let report = CertReport {
            url: "u".into(),
            outcome: CertOutcome::Installed(info(datetime!(2027-11-22 10:00:00 UTC))),
            hook: HookOutcome::Failed {
                message: "reload hook `nginx` failed".into(),
            },
        };
        let sub = report.substatus(NOW, 30);
        assert_eq!(sub.state, State::Warning);
        assert!(
            sub.message
                .ends_with("; reload hook failed: reload hook `nginx` failed")
        );
    }
}
