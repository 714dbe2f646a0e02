//! docs/configuration.md documents every setting akvvm reads, with the defaults the code uses.

use std::collections::BTreeSet;
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

/// The keys docs/configuration.md documents: the first column of each of its key tables.
fn documented_keys() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
    )
    .unwrap();
    let mut keys = BTreeSet::new();
    let mut in_table = false;
    for line in doc.lines() {
        if line.to_ascii_lowercase().starts_with("| key |") {
            in_table = true;
        } else if !line.starts_with('|') {
            in_table = false;
        } else if in_table
            && let Some(key) = line
                .strip_prefix("| `")
                .and_then(|rest| rest.split_once("` |"))
                .map(|(key, _)| key)
        {
            keys.insert(key.to_owned());
        }
    }
    keys
}

/// Every object key in `value`, at any depth.
fn keys_in(value: &serde_json::Value, keys: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                keys.insert(key.clone());
                keys_in(inner, keys);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| keys_in(i, keys)),
        _ => {}
    }
}

#[test]
fn every_documented_key_is_accepted() {
    // Settings objects that together use every key the documentation's tables name (read from
    // the doc, so that a key documented later must be added here): each is valid, with no
    // warning but the Windows-only keys'.
    let managed_identity = serde_json::json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": "60", "certificateStoreName": "MY", "certificateStoreLocation": "/tmp/store",
            "linkOnRenewal": false, "requireInitialSync": true, "aclEnabled": true,
            "observedCertificates": [{
                "url": "https://v.vault.azure.net/secrets/c", "certificateStoreName": "MY",
                "certificateStoreLocation": "/tmp/store2", "customSymbolicLinkName": "c", "acls": [{"user": "root"}, {"group": "root"}],
                "keyExportable": true, "accounts": ["x"],
                "authenticationOverride": {"msiClientId": "d7373ae5-91c2-4165-8ab6-7381d6e75619"},
                "akvvm": {"reload": {"command": ["true"], "timeoutInS": 5}, "certbotLayout": true,
                          "owner": "root", "group": "root", "mode": "0640"}
            }]
        },
        "authenticationSettings": {"msiEndpoint": "http://127.0.0.1:1/metadata/identity", "msiClientId": "c7373ae5-91c2-4165-8ab6-7381d6e75619"},
        "loggingSettings": {"logger": "fluentd", "endpoint": "tcp://localhost:24224", "format": "forward", "servicename": "s"},
        "akvvm": {
            "stateDirectory": "/tmp/state", "keepVersions": 1, "initialSyncRetries": 0, "caCertificates": ["/tmp/ca.pem"],
            "resolve": {"v.vault.azure.net": "127.0.0.1:8443"}, "authorityHost": "https://127.0.0.1:8443",
            "bootstrapCertificateDirectories": ["/tmp"], "concurrencyPerVault": 1, "expiryWarningDays": 0,
            "startupJitterInS": 0, "requestTimeoutInS": 5, "fullCheckIntervalInS": 0,
            "reload": {"command": ["true"]}, "batchReload": {"command": ["true"]}, "certbotLayout": false,
            "metricsAddress": "127.0.0.1:9100", "waagentConfig": "/etc/waagent.conf",
            "extensionVersion": "3.0", "pruneRemovedCertificates": false,
            "webhook": {"address": "127.0.0.1:8080", "path": "/eventgrid",
                        "certificateFile": "/tmp/webhook.pem", "secretFile": "/tmp/webhook.secret"}
        }
    });
    let bootstrap_certificate = serde_json::json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": "60",
            "observedCertificates": [{"url": "https://v.vault.azure.net/secrets/c"}]
        },
        "authenticationSettings": {
            "clientId": "c7373ae5-91c2-4165-8ab6-7381d6e75619",
            "clientCertificateSubjectName": "bootstrap.example"
        }
    });
    let mut used = BTreeSet::new();
    for value in [&managed_identity, &bootstrap_certificate] {
        keys_in(value, &mut used);
        let (settings, warnings) = akvvm::settings::Settings::from_json_value(value).unwrap();
        assert!(
            warnings.iter().all(|w| w.code == "windows-only"),
            "{warnings:?}"
        );
        assert_eq!(settings.observed.len(), 1);
    }
    let documented = documented_keys();
    assert!(
        documented.len() > 40,
        "the doc's key tables: {documented:?}"
    );
    let untried: Vec<_> = documented.difference(&used).collect();
    assert!(
        untried.is_empty(),
        "docs/configuration.md documents keys this test does not try: {untried:?}"
    );
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
