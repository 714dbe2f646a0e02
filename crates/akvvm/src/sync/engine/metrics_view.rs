//! The engine as a [`MetricsSource`]: every observed certificate's view, from the state file,
//! rendered with the counters.

use time::OffsetDateTime;

use crate::metrics::{CertificateView, MetricsSource};

use super::Engine;
use akvvm_cert::locks::MutexExt;

impl MetricsSource for Engine {
    /// The Prometheus exposition of every observed certificate (from the state) and of the
    /// counters, at `now`.
    fn metrics_text(&self, now: OffsetDateTime) -> String {
        let views: Vec<CertificateView> = {
            let state = self.state.lock_or_recover();
            self.settings
                .observed
                .iter()
                .map(|cert| {
                    let url = cert.url.to_string();
                    let entry = state.entry(&url);
                    let installed = entry.filter(|e| e.installed_version.is_some());
                    CertificateView {
                        vault: cert.url.vault_name.clone(),
                        name: cert.url.name.clone(),
                        version: installed.and_then(|e| e.installed_version.clone()),
                        thumbprint: installed.and_then(|e| e.thumbprint.clone()),
                        not_after: installed.and_then(|e| e.not_after),
                        installed_at: installed.and_then(|e| e.installed_at),
                        last_check: entry.and_then(|e| e.last_check),
                        chain_warning: installed
                            .and_then(|e| e.chain_warning.as_ref())
                            .filter(|_| self.chain.is_some())
                            .map(|w| w.code.clone()),
                        url,
                    }
                })
                .collect()
        };
        self.metrics
            .render(&views, self.settings.agent.expiry_warning_days, now)
    }
}
