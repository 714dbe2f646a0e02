//! The documented settings JSON, field by field, with the documented types. Tools and tests build
//! settings with these types and turn them into JSON ([`RawSettings::to_value`]); the agent reads
//! JSON through `parse`, which accepts the documented leniencies and reports problems by path.

use serde::{Deserialize, Serialize};

/// The settings object: `{"secretsManagementSettings": .., "authenticationSettings": .., ..}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSettings {
    pub secrets_management_settings: RawSecretsManagement,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_settings: Option<RawAuthentication>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging_settings: Option<serde_json::Value>,
    /// akvvm's agent-wide options, as JSON (see docs/configuration.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub akvvm: Option<serde_json::Value>,
}

/// `secretsManagementSettings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSecretsManagement {
    /// Seconds, as a string (`"3600"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polling_interval_in_s: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_store_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_store_location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_on_renewal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_initial_sync: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_enabled: Option<bool>,
    pub observed_certificates: Vec<RawObservedEntry>,
}

/// An `observedCertificates` entry: a URL (v1) or an object (v3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawObservedEntry {
    Url(String),
    Object(RawObservedCertificate),
}

/// A v3 `observedCertificates` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawObservedCertificate {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_store_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_store_location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_symbolic_link_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub acls: Vec<RawAcl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_exportable: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub accounts: Vec<String>,
    /// akvvm's per-certificate options, as JSON (see docs/configuration.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub akvvm: Option<serde_json::Value>,
}

/// An `acls` entry: `{"user": ".."}` or `{"group": ".."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RawAcl {
    User(String),
    Group(String),
}

/// `authenticationSettings`: managed identity, or (KeyVaultForPaaS) a bootstrap certificate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAuthentication {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msi_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msi_client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_subject_name: Option<String>,
}

impl RawSettings {
    /// v1 settings observing `urls` with every other setting left to its default.
    pub fn observing<I: IntoIterator<Item = S>, S: Into<String>>(urls: I) -> RawSettings {
        RawSettings {
            secrets_management_settings: RawSecretsManagement {
                observed_certificates: urls
                    .into_iter()
                    .map(|u| RawObservedEntry::Url(u.into()))
                    .collect(),
                ..RawSecretsManagement::default()
            },
            ..RawSettings::default()
        }
    }

    /// The settings as JSON.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("settings serialise to JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let raw = RawSettings::observing(["https://v.vault.azure.net/secrets/a"]);
        let value = raw.to_value();
        assert_eq!(
            value,
            serde_json::json!({"secretsManagementSettings": {"observedCertificates": ["https://v.vault.azure.net/secrets/a"]}})
        );
        let back: RawSettings = serde_json::from_value(value).unwrap();
        assert_eq!(back, raw);
    }
}
