//! The engine's side of chain validation (4.x; [`super::EngineOptions::chain_validation`]):
//! the trust anchors (the system's CA bundle and `akvvm.caCertificates`, loaded once), the HTTP
//! client that fetches missing issuers from their caIssuers URL, and the verdict turned into
//! what the engine does: an error refuses the version (the installed one stays), a warning is
//! installed and recorded. The validation itself is
//! [`akvvm_cert::certificate::chain::validate_chain`].

use std::time::Duration;

use akvvm_cert::certificate::CertificateBundle;
use akvvm_cert::certificate::chain::{
    ChainVerdict, ChainWarning, FetchError, TrustAnchors, validate_chain,
};

use crate::settings::Settings;
use crate::sync::SyncError;

/// How long one caIssuers fetch may take; past it the fetch is a transient failure (fail-open).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes read from a caIssuers URL (a certificate is a few kilobytes).
pub const FETCH_MAX_BYTES: usize = 64 * 1024;

/// What chain validation needs, built once per engine.
pub(super) struct ChainCheck {
    anchors: std::sync::Arc<TrustAnchors>,
    client: Option<reqwest::Client>,
}

impl ChainCheck {
    pub(super) fn new(settings: &Settings) -> Self {
        let anchors = TrustAnchors::system_and(&settings.agent.ca_certificates);
        for problem in &anchors.problems {
            tracing::warn!(%problem, "a trust anchor file could not be read for chain validation");
        }
        let http = crate::http::HttpOptions::from_settings(&settings.agent);
        let client = match crate::http::build_client(&http) {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::warn!(%error, "no HTTP client for caIssuers fetches; missing issuers are not fetched");
                None
            }
        };
        tracing::debug!(anchors = anchors.len(), "chain validation is on");
        ChainCheck {
            anchors: std::sync::Arc::new(anchors),
            client,
        }
    }

    /// Validates `bundle`'s chain: `Ok(None)` when it is trusted or not a server certificate,
    /// `Ok(Some(warning))` to install with a warning, `Err` to refuse this version.
    pub(super) async fn check(
        &self,
        url: &str,
        bundle: &CertificateBundle,
    ) -> Result<Option<ChainWarning>, SyncError> {
        let leaf = bundle.leaf.clone();
        let delivered = bundle.chain.clone();
        let anchors = std::sync::Arc::clone(&self.anchors);
        let client = self.client.clone();
        let runtime = tokio::runtime::Handle::current();
        // Signature checks and the (blocking) fetcher: off the async workers.
        let verdict = tokio::task::spawn_blocking(move || {
            let fetch = |target: &str| fetch(&runtime, client.as_ref(), target);
            validate_chain(
                &leaf,
                &delivered,
                &anchors,
                time::OffsetDateTime::now_utc(),
                &fetch,
            )
        })
        .await
        .map_err(|e| SyncError::Task {
            url: url.to_owned(),
            detail: e.to_string(),
        })?;
        match verdict {
            ChainVerdict::NotServerAuth => Ok(None),
            ChainVerdict::Trusted { anchor } => {
                tracing::debug!(%anchor, "the chain is trusted");
                Ok(None)
            }
            ChainVerdict::Warning(warning) => {
                tracing::warn!(code = warning.code, warning = %warning.message, "installing with a chain-validation warning");
                Ok(Some(warning))
            }
            ChainVerdict::Invalid(source) => Err(SyncError::Chain {
                url: url.to_owned(),
                source,
            }),
        }
    }
}

/// One caIssuers fetch (http or https), from a blocking thread: timeouts, refused connections
/// and 5xx are transient (fail-open), other statuses are failures.
fn fetch(
    runtime: &tokio::runtime::Handle,
    client: Option<&reqwest::Client>,
    target: &str,
) -> Result<Vec<u8>, FetchError> {
    let Some(client) = client else {
        return Err(FetchError::Transient("no HTTP client".into()));
    };
    let url =
        reqwest::Url::parse(target).map_err(|e| FetchError::Failed(format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Failed(format!(
            "the {} scheme is not fetched",
            url.scheme()
        )));
    }
    runtime.block_on(async {
        let response = client
            .get(url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| FetchError::Transient(e.to_string()))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(FetchError::Transient(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Failed(format!("HTTP {status}")));
        }
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Transient(e.to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > FETCH_MAX_BYTES {
                return Err(FetchError::Failed(format!(
                    "the answer is longer than {FETCH_MAX_BYTES} bytes"
                )));
            }
        }
        Ok(body)
    })
}
