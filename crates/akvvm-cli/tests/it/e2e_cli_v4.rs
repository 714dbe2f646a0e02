//! The `akvvm` binary in extension 4.x mode (issue 9, item 2): under a handler environment in a
//! directory named `Microsoft.Azure.KeyVault.KeyVaultForLinux-4.0.0` the 4.x mode is chosen with
//! no setting (the `.pem`/`.keyid`/`.luma` files are installed, `uninstall
//! --remove-certificates` removes them); `akvvm validate` names the mode and reports the 4.x
//! clamps and refused shapes.

use crate::agent_command::{akvvm_logging, output};
use crate::extension_dir::{DaemonGuard, ExtensionDir, read_status};
use std::process::Command;
use std::time::Duration;

use akvvm_testkit::harness::{Harness, PFX, eventually, link_target};
use serde_json::json;

fn akvvm() -> Command {
    akvvm_logging("akvvm=info,warn")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_handler_directorys_version_chooses_4x_without_any_setting() {
    let h = Harness::start().await;
    h.vault("contoso");
    let version = h.certificate("contoso", "web", "RSA", PFX);
    // No extensionVersion: the directory's name decides.
    let mut public = h.settings_json(
        &["contoso"],
        vec![json!({ "url": Harness::url("contoso", "web") })],
    );
    public["secretsManagementSettings"]["pollingIntervalInS"] = json!("3600");

    let ext = ExtensionDir::create(
        h.dir.path(),
        "Microsoft.Azure.KeyVault.KeyVaultForLinux-4.0.0",
    );
    ext.write_settings(0, &public);
    let _guard = DaemonGuard(h.state_dir().join("akvvm.pid"));
    let handler = |operation: &[&str]| {
        let mut command = akvvm();
        command
            .arg("handler")
            .args(operation)
            .args(["--service-manager", "none", "--handler-environment"])
            .arg(&ext.environment)
            .env_remove("ConfigSequenceNumber");
        command
    };
    for operation in [&["install"][..], &["enable"]] {
        let out = output(handler(operation)).await;
        assert!(
            out.status.success(),
            "{operation:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let status_file = ext.status_file(0);
    assert!(
        eventually(Duration::from_secs(20), || read_status(&status_file)
            .is_some_and(|s| s["status"] == "success"))
        .await,
        "{:?}",
        read_status(&status_file)
    );
    let store = h.store();
    assert!(
        link_target(&store.join("contoso.web.pem"))
            .starts_with(&format!("contoso.web.{version}.pem.")),
        "the 4.x layout"
    );
    assert!(
        link_target(&store.join("contoso.web.keyid"))
            .starts_with(&format!("contoso.web.{version}.keyid."))
    );
    assert!(store.join("contoso.web.luma").exists());
    assert!(!store.join("contoso.web").exists(), "no 3.x link");
    let status = read_status(&status_file).unwrap();
    assert_eq!(
        status["formattedMessage"]["message"], "1 of 1 certificates installed",
        "{status}"
    );

    let out = output(handler(&["disable"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output(handler(&["uninstall", "--remove-certificates"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("contoso.web"))
        .collect();
    assert!(left.is_empty(), "left in the store: {left:?}");
}

#[test]
fn validate_reports_the_4x_clamp_and_refused_shapes_with_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&json!({
            "secretsManagementSettings": {
                "pollingIntervalInS": "60",
                "requireInitialSync": true,
                "observedCertificates": [
                    "https://contoso.vault.azure.net/secrets/web",
                    {"url": "https://contoso.vault.azure.net/secrets/api/0123456789abcdef0123456789abcdef"}
                ]
            },
            "akvvm": {"extensionVersion": "4.0"}
        }))
        .unwrap(),
    )
    .unwrap();
    let out = akvvm().arg("validate").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for expected in [
        "checked as: extension 4.x (version 4.0, from akvvm.extensionVersion)",
        "warning[polling-interval-clamped] settings.secretsManagementSettings.pollingIntervalInS:",
        "akvvm raised it to 300 seconds",
        "warning[removed-in-4x] settings.secretsManagementSettings.requireInitialSync:",
        "error[string-certificate-in-4x] settings.secretsManagementSettings.observedCertificates[0]:",
        "help: write {\"url\":\"https://contoso.vault.azure.net/secrets/web\"}",
        "error[versioned-url-in-4x] settings.secretsManagementSettings.observedCertificates[1].url:",
        "help: write \"https://contoso.vault.azure.net/secrets/api\"",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
}
