//! One observed certificate's record in the state file ([`StateEntry`]) and its last error.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use akvvm_cert::store::Installed;

/// What akvvm knows about one observed certificate URL.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateEntry {
    /// The Key Vault version installed (the last segment of the secret's `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<String>,
    /// SHA-1 of the DER leaf certificate, upper-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    /// The leaf certificate's expiry.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_after: Option<OffsetDateTime>,
    /// The version file, `<store>/<vault>.<cert>.<version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The stable link, `<store>/<vault>.<cert>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<PathBuf>,
    /// The `customSymbolicLinkName` link, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_link: Option<PathBuf>,
    /// The link to the certbot-style directory, when that output is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_link: Option<PathBuf>,
    /// When this version was installed.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub installed_at: Option<OffsetDateTime>,
    /// When Key Vault was last asked about this URL, successfully or not.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_check: Option<OffsetDateTime>,
    /// The last failure, cleared by the next success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Key Vault's `attributes.updated` of the installed version, recorded when a GET returned it
    /// and Key Vault's clock was already past it: a list of the vault's secrets that shows this
    /// `updated` shows no new version.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub version_updated: Option<OffsetDateTime>,
    /// When a GET of this URL last returned the installed version (or installed it); a list
    /// stands for a GET for `fullCheckIntervalInS` after it.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub verified_at: Option<OffsetDateTime>,
    /// Why the installed version was installed with a chain-validation warning (4.x: an
    /// untrusted root or an incomplete chain, `cert.chain_*`), kept until the next install so
    /// that the status and metrics keep saying it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_warning: Option<LastError>,
}

/// A failure recorded in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// The error's stable machine code (e.g. [`StoreError::code`](akvvm_cert::store::StoreError::code)).
    pub code: String,
    /// The error's message, as reported.
    pub message: String,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl StateEntry {
    /// Records a successful install (and clears the last error).
    pub fn record_install(&mut self, installed: &Installed, at: OffsetDateTime) {
        self.installed_version = Some(installed.version.clone());
        self.thumbprint = Some(installed.thumbprint.clone());
        self.not_after = Some(installed.not_after);
        self.file = Some(installed.file.clone());
        self.link = Some(installed.link.clone());
        self.custom_link = installed.custom_link.clone();
        self.live_link = installed.live_link.clone();
        self.installed_at = Some(at);
        self.last_check = Some(at);
        self.last_error = None;
        self.chain_warning = None;
    }

    /// Records a check that found nothing new (and clears the last error).
    pub fn record_check(&mut self, at: OffsetDateTime) {
        self.last_check = Some(at);
        self.last_error = None;
    }

    /// Records a failed check or install; what was installed stays recorded.
    pub fn record_error(&mut self, code: &str, message: &str, at: OffsetDateTime) {
        self.last_check = Some(at);
        self.last_error = Some(LastError {
            code: code.to_owned(),
            message: message.to_owned(),
            at,
        });
    }
}
