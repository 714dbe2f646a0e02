//! The mode (3.x or 4.x) the settings are read in: chosen by the guest agent's extension version,
//! else `akvvm.extensionVersion`, else 3.x; `akvvm validate` of an extension resource goes by its
//! `typeHandlerVersion` (issue 9, item 2).

use akvvm::settings::{ExtensionMode, ExtensionVersion, Settings, VersionOrigin};
use serde_json::{Value, json};

fn settings(akvvm: Option<Value>) -> Value {
    let mut s = json!({"secretsManagementSettings": {
        "observedCertificates": [{"url": "https://contoso.vault.azure.net/secrets/web"}]
    }});
    if let Some(a) = akvvm {
        s["akvvm"] = a;
    }
    s
}

#[test]
fn the_default_is_3x_so_that_nothing_installed_today_changes() {
    let (s, warnings) = Settings::from_json_value(&settings(None)).unwrap();
    assert_eq!(s.mode.mode, ExtensionMode::V3);
    assert_eq!(s.mode.origin, VersionOrigin::Default);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn the_setting_chooses_the_mode_outside_the_guest_agent() {
    for (given, mode) in [
        (json!("4.0"), ExtensionMode::V4),
        (json!("4"), ExtensionMode::V4),
        (json!(4), ExtensionMode::V4),
        (json!("3.0"), ExtensionMode::V3),
    ] {
        let (s, _) =
            Settings::from_json_value(&settings(Some(json!({"extensionVersion": given})))).unwrap();
        assert_eq!(s.mode.mode, mode, "{given}");
        assert_eq!(s.mode.origin, VersionOrigin::Setting);
    }
}

#[test]
fn the_guest_agents_version_wins_over_the_setting_with_a_warning() {
    let value = settings(Some(json!({"extensionVersion": "3.0"})));
    let running = ExtensionVersion::new("4.0.1", VersionOrigin::HandlerDirectory);
    let (s, warnings) = Settings::from_json_value_for(&value, Some(running)).unwrap();
    assert_eq!(s.mode.mode, ExtensionMode::V4);
    assert_eq!(s.mode.version.as_deref(), Some("4.0.1"));
    let w = warnings
        .iter()
        .find(|w| w.code == "extension-version-overridden")
        .expect("a warning");
    assert_eq!(w.path, "settings.akvvm.extensionVersion");
    assert!(w.message.contains("4.0.1"), "{}", w.message);

    // Agreeing is no warning.
    let value = settings(Some(json!({"extensionVersion": "4"})));
    let running = ExtensionVersion::new("4.0", VersionOrigin::GuestAgentVariable);
    let (_, warnings) = Settings::from_json_value_for(&value, Some(running)).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_version_that_names_no_mode_is_an_error_saying_what_to_write() {
    for (given, needle) in [
        (json!("5.0"), "version 5 is not one akvvm implements"),
        (json!("latest"), "not a version"),
        (json!(true), "must be a string"),
    ] {
        let errors = Settings::from_json_value(&settings(Some(json!({"extensionVersion": given}))))
            .unwrap_err();
        let e = errors.iter().find(|d| d.is_error()).expect("an error");
        assert_eq!(e.path, "settings.akvvm.extensionVersion", "{given}");
        assert!(e.message.contains(needle), "{given}: {}", e.message);
        assert!(e.help.as_deref().unwrap_or("").contains("4.0"), "{given}");
    }
    let deployed = ExtensionVersion::new("9.1", VersionOrigin::TypeHandlerVersion);
    let errors = Settings::from_json_value_for(&settings(None), Some(deployed)).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|d| d.code == "extension-version-unknown" && d.message.contains("9.1")),
        "{errors:?}"
    );
}

#[test]
fn akvvms_own_package_version_leaves_the_choice_to_the_setting() {
    // scripts/package labels the zip with akvvm's version (0.1.0): it names neither 3.x nor 4.x.
    for origin in [
        VersionOrigin::HandlerDirectory,
        VersionOrigin::GuestAgentVariable,
    ] {
        let running = ExtensionVersion::new("0.1.0", origin.clone());
        let (s, warnings) =
            Settings::from_json_value_for(&settings(None), Some(running.clone())).unwrap();
        assert_eq!(s.mode.mode, ExtensionMode::V3);
        assert_eq!(s.mode.origin, VersionOrigin::Default);
        assert!(warnings.is_empty(), "{warnings:?}");
        let value = settings(Some(json!({"extensionVersion": "4.0"})));
        let (s, warnings) = Settings::from_json_value_for(&value, Some(running)).unwrap();
        assert_eq!(s.mode.mode, ExtensionMode::V4, "{origin:?}");
        assert_eq!(s.mode.origin, VersionOrigin::Setting);
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}

#[test]
fn validate_goes_by_the_resources_type_handler_version() {
    for (version, mode) in [("4.0", "4.x"), ("3.0", "3.x")] {
        let resource = json!({
            "type": "Microsoft.Compute/virtualMachines/extensions",
            "name": "vm/KVVMExtensionForLinux",
            "apiVersion": "2022-08-01",
            "location": "westeurope",
            "properties": {
                "publisher": "Microsoft.Azure.KeyVault",
                "type": "KeyVaultForLinux",
                "typeHandlerVersion": version,
                "autoUpgradeMinorVersion": true,
                "settings": settings(None),
            }
        });
        let report = akvvm::validate::validate_value(&resource, Default::default());
        let ext = &report.extensions[0];
        assert_eq!(ext.mode.as_deref(), Some(mode), "{version}");
    }
}
