//! docs/configuration.md documents every setting akvvm reads, with the defaults the code uses.

use std::path::Path;

use akvvm::settings::{
    DEFAULT_AUTHORITY_HOST, DEFAULT_BOOTSTRAP_CERTIFICATE_DIRECTORY, DEFAULT_MSI_ENDPOINT,
    DEFAULT_STATE_DIRECTORY, DEFAULT_STORE,
};

#[test]
fn every_key_and_default_is_documented() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
    )
    .unwrap();
    // The parser's own key tables, so that a key added to the code without documentation fails
    // here. ACL entries' keys are documented in the `acls` row.
    let keys = akvvm::settings::known_keys();
    for sample in [
        "pollingIntervalInS",
        "msiClientId",
        "keepVersions",
        "timeoutInS",
        "user",
    ] {
        assert!(keys.contains(&sample), "{sample} missing from {keys:?}");
    }
    for key in keys {
        let documented = doc.contains(&format!("| `{key}` |"))
            || doc.contains(&format!("## `{key}`"))
            || doc.contains(&format!("`\"{key}\"` object"))
            || doc.contains(&format!("{{\"{key}\": NAME}}"));
        assert!(documented, "docs/configuration.md documents no `{key}`");
    }
    for default in [
        DEFAULT_STORE,
        DEFAULT_MSI_ENDPOINT,
        DEFAULT_STATE_DIRECTORY,
        DEFAULT_AUTHORITY_HOST,
        DEFAULT_BOOTSTRAP_CERTIFICATE_DIRECTORY,
    ] {
        assert!(
            doc.contains(default),
            "docs/configuration.md does not state the default {default}"
        );
    }
}

#[test]
fn every_documented_key_is_accepted() {
    // A settings object using every key once is valid: the documentation names nothing the
    // parser rejects.
    let value = serde_json::json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": "60", "certificateStoreName": "MY", "certificateStoreLocation": "/tmp/store",
            "linkOnRenewal": false, "requireInitialSync": true, "aclEnabled": true,
            "observedCertificates": [{
                "url": "https://v.vault.azure.net/secrets/c", "certificateStoreName": "MY",
                "certificateStoreLocation": "/tmp/store2", "customSymbolicLinkName": "c", "acls": [{"user": "root"}, {"group": "root"}],
                "keyExportable": true, "accounts": ["x"], "akvvm": {"reload": {"command": ["true"], "timeoutInS": 5}, "certbotLayout": true}
            }]
        },
        "authenticationSettings": {"msiEndpoint": "http://127.0.0.1:1/metadata/identity", "msiClientId": "c7373ae5-91c2-4165-8ab6-7381d6e75619"},
        "loggingSettings": {"logger": "fluentd", "endpoint": "tcp://localhost:24224", "format": "forward", "servicename": "s"},
        "akvvm": {
            "stateDirectory": "/tmp/state", "keepVersions": 1, "initialSyncRetries": 0, "caCertificates": ["/tmp/ca.pem"],
            "resolve": {"v.vault.azure.net": "127.0.0.1:8443"}, "authorityHost": "https://127.0.0.1:8443",
            "bootstrapCertificateDirectories": ["/tmp"], "concurrencyPerVault": 1, "expiryWarningDays": 0,
            "reload": {"command": ["true"]}, "certbotLayout": false
        }
    });
    let (settings, warnings) = akvvm::settings::Settings::from_json_value(&value).unwrap();
    assert!(
        warnings.iter().all(|w| w.code == "windows-only"),
        "{warnings:?}"
    );
    assert_eq!(settings.observed.len(), 1);
}

#[test]
fn the_documented_example_is_valid() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
    )
    .unwrap();
    let start = doc.find("```json\n").expect("a JSON example") + "```json\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let value: serde_json::Value = serde_json::from_str(&doc[start..end]).unwrap();
    let (settings, warnings) = akvvm::settings::Settings::from_json_value(&value).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(settings.observed.len(), 2);
    assert_eq!(settings.shape, akvvm::settings::Shape::V3);
}
