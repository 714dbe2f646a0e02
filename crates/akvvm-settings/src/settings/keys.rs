//! The keys each settings object accepts: what the parser checks unknown keys against, what
//! `docs/configuration.md` must document ([`known_keys`]), and where a key found in the wrong
//! object belongs.

pub(super) const ROOT_KEYS: &[&str] = &[
    "secretsManagementSettings",
    "authenticationSettings",
    "loggingSettings",
    "akvvm",
];

pub(super) const SECRETS_KEYS: &[&str] = &[
    "pollingIntervalInS",
    "certificateStoreName",
    "certificateStoreLocation",
    "linkOnRenewal",
    "requireInitialSync",
    "aclEnabled",
    "observedCertificates",
];

pub(super) const OBSERVED_KEYS: &[&str] = &[
    "url",
    "certificateStoreName",
    "certificateStoreLocation",
    "customSymbolicLinkName",
    "acls",
    "keyExportable",
    "accounts",
    "akvvm",
    "authenticationOverride",
];

pub(super) const AUTH_KEYS: &[&str] = &[
    "msiEndpoint",
    "msiClientId",
    "clientId",
    "clientCertificateSubjectName",
];

/// The keys of a certificate's `authenticationOverride` (4.x): another managed identity for that
/// certificate only.
pub(super) const OVERRIDE_KEYS: &[&str] = &["msiClientId"];

pub(super) const LOGGING_KEYS: &[&str] = &["logger", "endpoint", "format", "servicename"];

pub(super) const AGENT_KEYS: &[&str] = &[
    "stateDirectory",
    "keepVersions",
    "initialSyncRetries",
    "caCertificates",
    "resolve",
    "authorityHost",
    "bootstrapCertificateDirectories",
    "concurrencyPerVault",
    "startupJitterInS",
    "requestTimeoutInS",
    "fullCheckIntervalInS",
    "expiryWarningDays",
    "reload",
    "certbotLayout",
    "metricsAddress",
    "webhook",
    "pruneRemovedCertificates",
    "batchReload",
    "waagentConfig",
    "extensionVersion",
];

pub(super) const WEBHOOK_KEYS: &[&str] = &["address", "path", "certificateFile", "secretFile"];

pub(super) const CERT_OPTION_KEYS: &[&str] = &["reload", "certbotLayout", "owner", "group", "mode"];

pub(super) const RELOAD_KEYS: &[&str] = &["command", "timeoutInS"];

pub(super) const ACL_KEYS: &[&str] = &["user", "group"];

/// Every key the settings accept, in any of their objects, once each (ACL entries' `user` and
/// `group` included): what docs/configuration.md must document.
pub fn known_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for table in [
        ROOT_KEYS,
        SECRETS_KEYS,
        OBSERVED_KEYS,
        AUTH_KEYS,
        OVERRIDE_KEYS,
        LOGGING_KEYS,
        AGENT_KEYS,
        CERT_OPTION_KEYS,
        RELOAD_KEYS,
        ACL_KEYS,
        WEBHOOK_KEYS,
    ] {
        for key in table {
            if !keys.contains(key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// Where each known key belongs, to explain a key found in the wrong object.
const KEY_HOMES: &[(&[&str], &str)] = &[
    (
        ROOT_KEYS,
        "the settings object (beside secretsManagementSettings)",
    ),
    (SECRETS_KEYS, "secretsManagementSettings"),
    (OBSERVED_KEYS, "an observedCertificates object"),
    (AUTH_KEYS, "authenticationSettings"),
    (AGENT_KEYS, "the top-level \"akvvm\" object"),
];

/// Explains a key that is known elsewhere (a likely misplacement), for the unknown-key error.
pub(super) fn misplaced_key_help(key: &str, here: &[&str]) -> Option<String> {
    if (key == "authenticationSettings" || key == "loggingSettings") && here == SECRETS_KEYS {
        return Some(format!(
            "{key} belongs beside secretsManagementSettings, in the settings object, not inside it"
        ));
    }
    if (key == "settings" || key == "publicSettings" || key == "properties") && here == ROOT_KEYS {
        return Some(format!(
            "this object wraps the settings in {key:?}: pass the settings object itself (the value of {key:?}), or validate the whole file with akvvm validate"
        ));
    }
    KEY_HOMES
        .iter()
        .find(|(keys, _)| *keys != here && keys.contains(&key))
        .map(|(_, home)| format!("{key} belongs in {home}"))
}
