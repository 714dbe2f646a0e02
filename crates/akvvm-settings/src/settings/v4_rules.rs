//! The settings rules of extension 4.x ([`ExtensionMode::V4`]), called from `secrets.rs` where a
//! section is read: the polling interval clamped to 300-3600 seconds, the removed keys
//! (`requireInitialSync`, `aclEnabled`, `customSymbolicLinkName`) reported as having no effect,
//! and the refused shapes (a URL string instead of a `{"url": ...}` object, a versioned URL),
//! each with what to write instead. 3.x never reaches this file.

use std::time::Duration;

use serde_json::Value;

use super::ctx::Ctx;
use super::mode::ExtensionMode;
use super::read::{Fields, Got};
use super::secret_url::SecretUrl;

/// The shortest polling interval 4.x accepts; a shorter one is raised to it.
pub const V4_MIN_POLLING_INTERVAL: Duration = Duration::from_secs(300);

/// The longest polling interval 4.x accepts (and its default); a longer one is lowered to it.
pub const V4_MAX_POLLING_INTERVAL: Duration = Duration::from_secs(3600);

impl Ctx<'_> {
    /// Whether the settings are read as 4.x.
    pub(super) fn is_v4(&self) -> bool {
        self.mode.mode == ExtensionMode::V4
    }

    /// `pollingIntervalInS` in 4.x: parsed as in 3.x, then clamped to 300-3600 with a warning
    /// naming the value used; absent (or unusable) gives 3600.
    pub(super) fn v4_polling_interval(&mut self, v: Option<&Value>, path: &str) -> Duration {
        let zero = match v {
            Some(Value::String(s)) => s.trim().parse::<u64>().ok() == Some(0),
            Some(Value::Number(n)) => n.as_u64() == Some(0),
            _ => false,
        };
        let got = if zero {
            Got::Value(Duration::ZERO)
        } else {
            self.polling_interval(v, path)
        };
        let Got::Value(given) = got else {
            return V4_MAX_POLLING_INTERVAL;
        };
        let used = given.clamp(V4_MIN_POLLING_INTERVAL, V4_MAX_POLLING_INTERVAL);
        if used != given {
            let side = if given < V4_MIN_POLLING_INTERVAL {
                "raised"
            } else {
                "lowered"
            };
            self.warn(
                "polling-interval-clamped",
                path,
                format!(
                    "pollingIntervalInS is {} seconds, but extension 4.x polls every {} to {} seconds: akvvm {side} it to {} seconds",
                    given.as_secs(),
                    V4_MIN_POLLING_INTERVAL.as_secs(),
                    V4_MAX_POLLING_INTERVAL.as_secs(),
                    used.as_secs()
                ),
            )
            .help(format!(
                "write \"{}\" (4.x accepts \"300\" to \"3600\"; the default is \"3600\")",
                used.as_secs()
            ));
        }
        used
    }

    /// The `secretsManagementSettings` keys 4.x removed: a warning for each one present.
    pub(super) fn v4_removed_secrets_keys(&mut self, fields: &Fields<'_>) {
        if let Some(v) = fields.get("requireInitialSync") {
            self.warn(
                "removed-in-4x",
                &fields.path("requireInitialSync"),
                format!(
                    "requireInitialSync ({}) has no effect in extension 4.x: the status is success only once every certificate is installed, and error after 25 failed attempts of one (retrying goes on)",
                    super::read::compact(v)
                ),
            )
            .help("remove requireInitialSync");
        }
        if let Some(v) = fields.get("aclEnabled") {
            self.warn(
                "removed-in-4x",
                &fields.path("aclEnabled"),
                format!(
                    "aclEnabled ({}) has no effect in extension 4.x: the acls of every certificate are always applied",
                    super::read::compact(v)
                ),
            )
            .help("remove aclEnabled; to grant nobody else access, leave out a certificate's acls");
        }
    }

    /// A certificate's `customSymbolicLinkName` in 4.x: a warning; no link is made.
    pub(super) fn v4_link_name(&mut self, v: Option<&Value>, path: &str) {
        if let Some(v) = v {
            self.warn(
                "removed-in-4x",
                path,
                format!(
                    "customSymbolicLinkName ({}) has no effect in extension 4.x: no extra link is made",
                    super::read::compact(v)
                ),
            )
            .help("point the application at the stable links <vault>.<certificate>.pem and .keyid, and remove customSymbolicLinkName");
        }
    }

    /// A URL string where 4.x wants a certificate object: an error showing the object.
    pub(super) fn v4_string_certificate(&mut self, url: &str, path: &str) {
        self.error(
            "string-certificate-in-4x",
            path,
            format!(
                "extension 4.x takes observedCertificates as objects with a url, not URL strings (found {})",
                Value::from(url)
            ),
        )
        .help(format!(
            "write {}",
            serde_json::json!({ "url": url.trim() })
        ));
    }

    /// `observedCertificates` given as one string in 4.x.
    pub(super) fn v4_string_list(&mut self, url: &str, path: &str) {
        self.error(
            "string-certificate-in-4x",
            path,
            format!(
                "observedCertificates must be a list of certificate objects in extension 4.x, found a single string {}",
                Value::from(url)
            ),
        )
        .help(format!(
            "write [{}]",
            serde_json::json!({ "url": url.trim() })
        ));
    }

    /// A versioned URL in 4.x: an error saying to drop the version. Returns whether it was one.
    pub(super) fn v4_versioned_url(&mut self, url: &SecretUrl, path: &str) -> bool {
        let Some(version) = &url.version else {
            return false;
        };
        self.error(
            "versioned-url-in-4x",
            path,
            format!(
                "extension 4.x observes the latest version of a certificate: the URL must not name a version (found version {version})"
            ),
        )
        .help(format!("write \"{}\"", url.latest_url()));
        true
    }
}
