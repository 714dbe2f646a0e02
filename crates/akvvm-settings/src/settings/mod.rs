//! The extension's public settings: parsed from the documented JSON, converted once into
//! validated types that cannot hold a bad value.
//!
//! - [`Settings`] is what the agent uses. Get one with [`Settings::load`] (a plain settings file),
//!   [`Settings::from_json_value`], or [`parse`] (which also reports ARM expressions it could not
//!   check, for `akvvm validate`).
//! - [`Diagnostic`]s say what is wrong, where (a JSON path) and what to do; warnings are
//!   returned alongside valid settings.
//!
//! The validated types and their defaults are in `model.rs`, which imports none of the readers.
//! The parser is split by section: `parse.rs` (the settings object and the keys each object
//! accepts), `secrets.rs` (`secretsManagementSettings`), `authentication.rs`
//! (`authenticationSettings`), `logging.rs` (`loggingSettings`) and `own_options.rs` (akvvm's own
//! options beyond Microsoft's documented settings: the top-level and per-certificate `"akvvm"`
//! objects), all reading through `read.rs` (fields, basic types, and the diagnostic builder).
//! This module imports no other module of the crate but `identity_id` (the parsed
//! `msiClientId`) and `trusted` (reading the settings file): settings are the root of the
//! dependency graph.
//!
//! To add a setting: add the field (with its default as a named constant) to the validated type
//! in `model.rs`, read it in its section's file (add its key to the key tables in `parse.rs`),
//! and document it in `docs/configuration.md`.

mod authentication;
mod ctx;
mod diagnostic;
mod keys;
mod logging;
pub mod mode;
mod model;
mod own_options;
mod parse;
mod read;
mod secret_url;
mod secrets;
mod v4_rules;

use std::path::{Path, PathBuf};

pub use ctx::{ParseOptions, Unresolved, is_arm_expression};
pub use diagnostic::{Diagnostic, Severity, did_you_mean, join_index, join_key};
pub use keys::known_keys;
pub use logging::parse_endpoint as parse_log_endpoint;
pub use mode::{ExtensionMode, ExtensionVersion, ModeChoice, VersionOrigin};
pub use model::*;
pub use parse::{Report, parse, string_path};
pub use secret_url::{
    KNOWN_VAULT_SUFFIXES, SecretUrl, SecretUrlError, VaultHost, is_valid_secret_name,
};
pub use v4_rules::{V4_MAX_POLLING_INTERVAL, V4_MIN_POLLING_INTERVAL};

/// Why settings could not be loaded from a file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to read settings file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("settings file {} is not JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("settings file {} is not valid:\n{}", path.display(), render(diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    /// The file names hooks run as root: only root may be able to write it.
    #[error(transparent)]
    Untrusted(#[from] crate::trusted::Untrusted),
}

akvvm_cert::error_codes! {
    LoadError {
        LoadError::Read { .. } => "settings.unreadable",
        LoadError::Json { .. } => "settings.not_json",
        LoadError::Invalid { .. } => "settings.invalid",
    }
    passes through {
        LoadError::Untrusted(inner) => inner,
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Settings {
    /// Validates settings JSON (the object holding `secretsManagementSettings`). Returns the
    /// settings and their warnings, or every diagnostic (errors and warnings) when invalid.
    /// Paths in diagnostics start at `settings`.
    pub fn from_json_value(
        value: &serde_json::Value,
    ) -> Result<(Settings, Vec<Diagnostic>), Vec<Diagnostic>> {
        Settings::from_json_value_for(value, None)
    }

    /// Like [`Self::from_json_value`], for the extension version the guest agent runs (which
    /// chooses the mode, [`mode`]).
    pub fn from_json_value_for(
        value: &serde_json::Value,
        extension_version: Option<ExtensionVersion>,
    ) -> Result<(Settings, Vec<Diagnostic>), Vec<Diagnostic>> {
        let options = ParseOptions {
            extension_version,
            ..ParseOptions::default()
        };
        let report = parse(value, &options);
        match report.settings {
            Some(settings) if !report.has_errors() => Ok((settings, report.diagnostics)),
            _ => Err(report.diagnostics),
        }
    }

    /// Reads and validates a plain settings file. Warnings are logged.
    pub fn load(path: &Path) -> Result<Settings, LoadError> {
        let text = crate::trusted::read_to_string("settings file", path).map_err(|e| match e {
            crate::trusted::Read::Io(source) => LoadError::Read {
                path: path.to_path_buf(),
                source,
            },
            crate::trusted::Read::Untrusted(e) => LoadError::Untrusted(e),
        })?;
        let value: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|source| LoadError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        match Settings::from_json_value(&value) {
            Ok((settings, warnings)) => {
                for warning in warnings {
                    tracing::warn!(path = %warning.path, code = warning.code, "{}", warning.message);
                }
                Ok(settings)
            }
            Err(diagnostics) => Err(LoadError::Invalid {
                path: path.to_path_buf(),
                diagnostics,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use url::Url;

    use super::*;
    use crate::identity_id::ManagedIdentityId;
    use serde_json::json;

    #[test]
    fn design_example_is_valid_v3() {
        let value = json!({
          "secretsManagementSettings": {
            "pollingIntervalInS": "3600",
            "certificateStoreName": "MY",
            "certificateStoreLocation": "/var/lib/waagent/Microsoft.Azure.KeyVault.Store",
            "requireInitialSync": true,
            "aclEnabled": true,
            "observedCertificates": [
              "https://myvault.vault.azure.net/secrets/mycert",
              { "url": "https://myvault.vault.azure.net/secrets/other/0123456789abcdef0123456789abcdef",
                "certificateStoreLocation": "/etc/ssl/kv", "customSymbolicLinkName": "web",
                "acls": [ { "user": "www-data" }, { "group": "ssl-cert" } ] }
            ]
          },
          "authenticationSettings": {
            "msiEndpoint": "http://169.254.169.254/metadata/identity/oauth2/token",
            "msiClientId": "c7373ae5-91c2-4165-8ab6-7381d6e75619"
          }
        });
        let (settings, warnings) = Settings::from_json_value(&value).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(settings.shape, Shape::V3);
        assert_eq!(settings.polling_interval, Duration::from_secs(3600));
        assert!(settings.require_initial_sync);
        assert_eq!(settings.observed.len(), 2);
        let other = &settings.observed[1];
        assert_eq!(other.store_dir, PathBuf::from("/etc/ssl/kv"));
        assert_eq!(other.link_name.as_deref(), Some("web"));
        assert_eq!(
            other.acls,
            vec![
                AclEntry::User("www-data".into()),
                AclEntry::Group("ssl-cert".into())
            ]
        );
        assert!(other.url.is_pinned());
        let endpoint =
            MsiEndpoint::new(&Url::parse("http://169.254.169.254/metadata/identity").unwrap());
        assert_eq!(
            settings.authentication,
            Authentication::ManagedIdentity {
                endpoint: endpoint.clone(),
                client_id: Some(ManagedIdentityId::ClientId(
                    "c7373ae5-91c2-4165-8ab6-7381d6e75619".into()
                )),
            }
        );
        assert_eq!(
            endpoint.token_url().as_str(),
            "http://169.254.169.254/metadata/identity/oauth2/token"
        );
        assert_eq!(settings.agent, AgentOptions::default());
    }

    #[test]
    fn load_error_codes_follow_the_scheme() {
        assert_eq!(
            LoadError::CODES,
            &[
                "settings.unreadable",
                "settings.not_json",
                "settings.invalid"
            ]
        );
        assert!(
            LoadError::CODES
                .iter()
                .all(|c| akvvm_cert::codes::is_well_formed(c))
        );
    }

    #[test]
    fn msi_endpoint_accepts_both_documented_forms() {
        for endpoint in [
            "http://169.254.169.254/metadata/identity",
            "http://169.254.169.254/metadata/identity/",
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "http://169.254.169.254/metadata/identity/oauth2/token?x=y",
        ] {
            let endpoint = MsiEndpoint::new(&Url::parse(endpoint).unwrap());
            assert_eq!(
                endpoint.url().as_str(),
                "http://169.254.169.254/metadata/identity",
                "{endpoint}"
            );
            assert_eq!(
                endpoint.token_url().as_str(),
                "http://169.254.169.254/metadata/identity/oauth2/token",
                "{endpoint}"
            );
            assert!(!endpoint.is_arc());
        }
        assert_eq!(MsiEndpoint::default().url().as_str(), DEFAULT_MSI_ENDPOINT);
    }

    #[test]
    fn msi_endpoint_knows_azure_arc() {
        for arc in [
            "http://localhost:40342/metadata/identity",
            "http://127.0.0.1:40342/metadata/identity/oauth2/token",
        ] {
            assert!(
                MsiEndpoint::new(&Url::parse(arc).unwrap()).is_arc(),
                "{arc}"
            );
        }
        for not_arc in [
            "http://localhost:40343/metadata/identity",
            "http://169.254.169.254:40342/metadata/identity",
        ] {
            assert!(
                !MsiEndpoint::new(&Url::parse(not_arc).unwrap()).is_arc(),
                "{not_arc}"
            );
        }
    }
}
