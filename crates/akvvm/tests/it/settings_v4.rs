//! The settings rules of extension 4.x (issue 9, item 2): the polling interval clamped to
//! 300-3600 with a warning, `requireInitialSync`, `aclEnabled` and `customSymbolicLinkName` with
//! no effect (a warning each, ACLs always applied), URL strings and versioned URLs refused with
//! what to write instead; and the same settings read as 3.x exactly as before.

use std::path::PathBuf;
use std::time::Duration;

use akvvm::settings::{Diagnostic, ExtensionMode, Settings};
use serde_json::{Value, json};

const URL: &str = "https://contoso.vault.azure.net/secrets/web";

/// `secrets` as 4.x settings (`akvvm.extensionVersion: "4.0"`).
fn v4(secrets: Value) -> Value {
    json!({"secretsManagementSettings": secrets, "akvvm": {"extensionVersion": "4.0"}})
}

fn v3(secrets: Value) -> Value {
    json!({ "secretsManagementSettings": secrets })
}

fn ok(value: &Value) -> (Settings, Vec<Diagnostic>) {
    Settings::from_json_value(value).unwrap_or_else(|d| panic!("{value}: {d:#?}"))
}

fn errors(value: &Value) -> Vec<Diagnostic> {
    match Settings::from_json_value(value) {
        Ok(s) => panic!("{value} was accepted: {s:?}"),
        Err(d) => d.into_iter().filter(Diagnostic::is_error).collect(),
    }
}

fn find<'a>(diagnostics: &'a [Diagnostic], code: &str, path: &str) -> &'a Diagnostic {
    diagnostics
        .iter()
        .find(|d| d.code == code && d.path == path)
        .unwrap_or_else(|| panic!("no {code} at {path} in {diagnostics:#?}"))
}

#[test]
fn the_polling_interval_is_clamped_to_300_3600_with_a_warning_naming_the_value_used() {
    let path = "settings.secretsManagementSettings.pollingIntervalInS";
    for (given, used) in [
        (json!("60"), 300),
        (json!("0"), 300),
        (json!(1), 300),
        (json!("86400"), 3600),
    ] {
        let (s, warnings) = ok(&v4(
            json!({"pollingIntervalInS": given, "observedCertificates": [{"url": URL}]}),
        ));
        assert_eq!(s.mode.mode, ExtensionMode::V4);
        assert_eq!(s.polling_interval, Duration::from_secs(used), "{given}");
        let w = find(&warnings, "polling-interval-clamped", path);
        assert!(
            w.message.contains(&format!("to {used} seconds")),
            "{given}: {}",
            w.message
        );
        assert_eq!(
            w.help.as_deref(),
            Some(&*format!(
                "write \"{used}\" (4.x accepts \"300\" to \"3600\"; the default is \"3600\")"
            ))
        );
    }
    // Within the range: no warning; absent: 3600.
    let (s, warnings) = ok(&v4(
        json!({"pollingIntervalInS": "600", "observedCertificates": [{"url": URL}]}),
    ));
    assert_eq!(s.polling_interval, Duration::from_secs(600));
    assert!(warnings.is_empty(), "{warnings:#?}");
    let (s, _) = ok(&v4(json!({"observedCertificates": [{"url": URL}]})));
    assert_eq!(s.polling_interval, Duration::from_secs(3600));
    // Not a number stays the 3.x error.
    let e = errors(&v4(
        json!({"pollingIntervalInS": "hourly", "observedCertificates": [{"url": URL}]}),
    ));
    find(&e, "bad-polling-interval", path);
}

#[test]
fn the_3x_polling_interval_is_not_clamped() {
    let (s, warnings) = ok(&v3(
        json!({"pollingIntervalInS": "60", "observedCertificates": [{"url": URL}]}),
    ));
    assert_eq!(s.mode.mode, ExtensionMode::V3);
    assert_eq!(s.polling_interval, Duration::from_secs(60));
    assert!(warnings.is_empty(), "{warnings:#?}");
    let e = errors(&v3(
        json!({"pollingIntervalInS": "0", "observedCertificates": [{"url": URL}]}),
    ));
    find(
        &e,
        "out-of-range",
        "settings.secretsManagementSettings.pollingIntervalInS",
    );
}

#[test]
fn require_initial_sync_acl_enabled_and_custom_link_names_have_no_effect_in_4x() {
    let value = v4(json!({
        "requireInitialSync": true,
        "aclEnabled": false,
        "observedCertificates": [{
            "url": URL,
            "customSymbolicLinkName": "web",
            "acls": [{"user": "www-data"}]
        }]
    }));
    let (s, warnings) = ok(&value);
    // ACLs always apply in 4.x, whatever aclEnabled says; no initial-sync switch; no extra link.
    assert!(s.acl_enabled);
    assert!(!s.require_initial_sync);
    assert_eq!(s.observed[0].link_name, None);
    let w = find(
        &warnings,
        "removed-in-4x",
        "settings.secretsManagementSettings.requireInitialSync",
    );
    assert!(
        w.message.contains("no effect in extension 4.x"),
        "{}",
        w.message
    );
    let w = find(
        &warnings,
        "removed-in-4x",
        "settings.secretsManagementSettings.aclEnabled",
    );
    assert!(w.message.contains("always applied"), "{}", w.message);
    let w = find(
        &warnings,
        "removed-in-4x",
        "settings.secretsManagementSettings.observedCertificates[0].customSymbolicLinkName",
    );
    assert!(w.message.contains("no extra link"), "{}", w.message);
    // Without aclEnabled there is no "acls without aclEnabled" warning either.
    assert!(
        warnings
            .iter()
            .all(|w| w.code != "acls-without-acl-enabled"),
        "{warnings:#?}"
    );
    assert_eq!(warnings.len(), 3, "{warnings:#?}");

    // The same in 3.x: taken at their word, as before.
    let mut v3_value = value.clone();
    v3_value.as_object_mut().unwrap().remove("akvvm");
    let (s, warnings) = ok(&v3_value);
    assert!(!s.acl_enabled);
    assert!(s.require_initial_sync);
    assert_eq!(s.observed[0].link_name.as_deref(), Some("web"));
    assert_eq!(
        warnings.iter().map(|w| w.code).collect::<Vec<_>>(),
        ["acls-without-acl-enabled"]
    );
}

#[test]
fn url_strings_are_refused_in_4x_showing_the_object_to_write() {
    let e = errors(&v4(json!({"observedCertificates": [URL]})));
    let d = find(
        &e,
        "string-certificate-in-4x",
        "settings.secretsManagementSettings.observedCertificates[0]",
    );
    assert_eq!(
        d.help.as_deref(),
        Some(&*format!("write {}", json!({ "url": URL })))
    );
    let e = errors(&v4(json!({ "observedCertificates": URL })));
    let d = find(
        &e,
        "string-certificate-in-4x",
        "settings.secretsManagementSettings.observedCertificates",
    );
    assert_eq!(
        d.help.as_deref(),
        Some(&*format!("write [{}]", json!({ "url": URL })))
    );
    // 3.x still takes the string array.
    let (s, _) = ok(&v3(json!({ "observedCertificates": [URL] })));
    assert_eq!(s.observed[0].url.to_string(), URL);
}

#[test]
fn versioned_urls_are_refused_in_4x_saying_to_drop_the_version() {
    let versioned = format!("{URL}/0123456789abcdef0123456789abcdef");
    let e = errors(&v4(json!({"observedCertificates": [{"url": versioned}]})));
    let d = find(
        &e,
        "versioned-url-in-4x",
        "settings.secretsManagementSettings.observedCertificates[0].url",
    );
    assert!(
        d.message.contains("0123456789abcdef0123456789abcdef"),
        "{}",
        d.message
    );
    assert_eq!(d.help.as_deref(), Some(&*format!("write \"{URL}\"")));
    // 3.x pins the version, as before.
    let (s, _) = ok(&v3(json!({ "observedCertificates": [{"url": versioned}] })));
    assert!(s.observed[0].url.is_pinned());
}

#[test]
fn a_certificates_store_falls_back_to_the_top_level_one_then_the_default_in_both_modes() {
    for mode in ["3.0", "4.0"] {
        let value = json!({
            "akvvm": {"extensionVersion": mode},
            "secretsManagementSettings": {
                "certificateStoreLocation": "/srv/certs",
                "observedCertificates": [
                    {"url": URL},
                    {"url": "https://contoso.vault.azure.net/secrets/api", "certificateStoreLocation": "/srv/api"}
                ]
            }
        });
        let (s, _) = ok(&value);
        assert_eq!(
            s.observed[0].store_dir,
            PathBuf::from("/srv/certs"),
            "{mode}"
        );
        assert_eq!(s.observed[1].store_dir, PathBuf::from("/srv/api"), "{mode}");
        let value = json!({
            "akvvm": {"extensionVersion": mode},
            "secretsManagementSettings": {"observedCertificates": [{"url": URL}]}
        });
        let (s, _) = ok(&value);
        assert_eq!(
            s.observed[0].store_dir,
            PathBuf::from(akvvm::settings::DEFAULT_STORE),
            "{mode}"
        );
    }
}

#[test]
fn certificate_store_name_is_ignored_in_4x_with_the_3x_warning_when_not_the_default() {
    let (_, warnings) = ok(&v4(json!({
        "certificateStoreName": "MY",
        "observedCertificates": [{"url": URL}]
    })));
    assert!(warnings.is_empty(), "{warnings:#?}");
    let (_, warnings) = ok(&v4(json!({
        "certificateStoreName": "Root",
        "observedCertificates": [{"url": URL}]
    })));
    find(
        &warnings,
        "windows-only",
        "settings.secretsManagementSettings.certificateStoreName",
    );
}

#[test]
fn windows_only_keys_point_at_acls_without_acl_enabled_in_4x() {
    let secrets = json!({"observedCertificates": [
        {"url": URL, "keyExportable": true, "accounts": ["Network Service"]}
    ]});
    let (_, warnings) = ok(&v4(secrets.clone()));
    for key in ["keyExportable", "accounts"] {
        let path = format!("settings.secretsManagementSettings.observedCertificates[0].{key}");
        let w = find(&warnings, "windows-only", &path);
        let help = w.help.as_deref().unwrap_or("");
        assert!(!help.contains("aclEnabled"), "{key}: {help}");
        assert!(help.contains("always applied in 4.x"), "{key}: {help}");
    }
    assert!(
        find(
            &warnings,
            "windows-only",
            "settings.secretsManagementSettings.observedCertificates[0].keyExportable"
        )
        .message
        .contains(".keyid")
    );
    // 3.x keeps its words.
    let (_, warnings) = ok(&v3(secrets));
    let w = find(
        &warnings,
        "windows-only",
        "settings.secretsManagementSettings.observedCertificates[0].accounts",
    );
    assert!(w.help.as_deref().unwrap_or("").contains("aclEnabled"));
}
