//! `akvvm validate` as users run it: output, `--json`, `--parameters`, exit statuses.

use std::path::Path;

use akvvm_testkit::fixtures;
use assert_cmd::Command;
use predicates::prelude::*;

fn akvvm() -> Command {
    Command::cargo_bin("akvvm").unwrap()
}

#[test]
fn valid_settings_exit_0_and_list_the_certificates() {
    akvvm()
        .args(["validate"])
        .arg(fixtures::path("settings/valid/design-example.json"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("kind: extension settings"))
        .stdout(predicate::str::contains("\n\nsettings\n  checked as: extension 3.x (no extension version given: the default)\n  shape: v3 (certificate objects)\n"))
        .stdout(predicate::str::contains(
            "    - other (vault myvault at myvault.vault.azure.net)\n      version: pinned to 0123abcd0123abcd0123abcd0123abcd\n      store: /etc/ssl/kv\n      link: web\n      acls: user:www-data, group:ssl-cert (not applied: aclEnabled is not true)\n",
        ))
        .stdout(predicate::str::contains("    - mycert (vault myvault at myvault.vault.azure.net)\n      version: latest"))
        .stdout(predicate::str::contains("warning[windows-only] settings.secretsManagementSettings.linkOnRenewal:"))
        .stdout(predicate::str::ends_with("result: valid (0 errors, 4 warnings)\n"));
}

#[test]
fn cloud_services_seed_exits_1_naming_the_expression() {
    akvvm()
        .arg("validate")
        .arg(fixtures::path("settings/seeds/000-cloud-services-extension-profile.json"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("kind: Cloud Services extension (extensionProfile)"))
        .stdout(predicate::str::contains("type: Microsoft.Azure.KeyVault.KeyVaultForPaaS 1.0"))
        .stdout(predicate::str::contains(
            "error[arm-expression-malformed] extensionProfile.extensions[0].properties.settings.secretsManagementSettings.observedCertificates: ARM expression \"[parameters('keyVaultObservedCertificates']\" is unbalanced",
        ))
        .stdout(predicate::str::contains("help: did you mean \"[parameters('keyVaultObservedCertificates')]\"?"))
        .stdout(predicate::str::ends_with("result: invalid (1 error, 3 warnings)\n"));
}

#[test]
fn placeholder_schema_is_not_json_and_exits_1() {
    akvvm()
        .arg("validate")
        .arg(fixtures::path("settings/seeds/001-extension-schema.json"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("error[not-json] not JSON: documentation placeholder <string specifying polling interval"));
}

#[test]
fn parameters_resolve_template_expressions() {
    akvvm()
        .arg("validate")
        .arg(fixtures::path("settings/valid/vmss-template.json"))
        .arg("--parameters")
        .arg(fixtures::path("settings/valid/vmss-template.parameters.json"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("kind: ARM template"))
        .stdout(predicate::str::contains("extension \"KVVMExtensionForLinux\" at resources[0].properties.virtualMachineProfile.extensionProfile.extensions[1].properties"))
        .stdout(predicate::str::contains("    - api-contoso-com (vault contoso-prod at contoso-prod.vault.azure.net)"))
        .stdout(predicate::str::contains("unresolved ARM expressions (evaluated at deployment, not checked here):"))
        .stdout(predicate::str::contains("authenticationSettings.msiClientId: [reference("));
}

#[test]
fn json_output_is_the_same_report() {
    let out = akvvm()
        .arg("validate")
        .arg(fixtures::path("settings/valid/vm-extension-linux-v3.json"))
        .arg("--json")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["kind"], "vm-extension");
    assert_eq!(v["valid"], true);
    let ext = &v["extensions"][0];
    assert_eq!(ext["extension_type"], "KeyVaultForLinux");
    assert_eq!(ext["shape"], "V3");
    assert_eq!(ext["certificates"][0]["link_name"], "www");
    assert_eq!(ext["certificates"][0]["certbot_layout"], true);
    assert_eq!(ext["certificates"][1]["certbot_layout"], false);
    assert_eq!(
        ext["certificates"][0]["acls"],
        serde_json::json!(["group:www-data"])
    );
    assert_eq!(
        ext["certificates"][0]["reload"],
        serde_json::json!(["systemctl", "reload", "nginx"])
    );

    let out = akvvm()
        .arg("validate")
        .arg(fixtures::path(
            "settings/derived/001-az-cli-escaped-settings.json",
        ))
        .arg("--json")
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(
        v["extensions"][0]["diagnostics"][0]["code"],
        "settings-is-string"
    );
    assert_eq!(
        v["extensions"][0]["diagnostics"][0]["path"],
        "properties.settings"
    );
    assert_eq!(v["extensions"][0]["diagnostics"][0]["severity"], "error");
}

#[test]
fn unreadable_files_and_bad_usage_exit_2() {
    akvvm()
        .args(["validate", "/nonexistent/settings.json"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "error: cannot validate /nonexistent/settings.json",
        ))
        .stderr(predicate::str::contains(
            "caused by: failed to read /nonexistent/settings.json",
        ));
    akvvm().args(["validate"]).assert().code(2);
    akvvm()
        .args(["validate", "a.json", "--bogus"])
        .assert()
        .code(2);

    let dir = tempfile::tempdir().unwrap();
    let params = dir.path().join("params.json");
    std::fs::write(&params, r#"{"parameters": {"x": "no value wrapper"}}"#).unwrap();
    akvvm()
        .arg("validate")
        .arg(fixtures::path("settings/valid/vmss-template.json"))
        .arg("--parameters")
        .arg(&params)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("parameter \"x\" has no \"value\""));
}

#[test]
fn handler_settings_file_is_recognised() {
    akvvm()
        .arg("validate")
        .arg(fixtures::path("settings/valid/handler-7.settings"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("kind: handler settings file"))
        .stdout(predicate::str::contains(
            "www-contoso-com (vault contoso-prod",
        ));
}

/// The examples in docs/validate.md are real: each `$ akvvm validate ...` block is run in the
/// fixture directory that holds its file and must print exactly what the document shows.
#[test]
fn docs_examples_are_current() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/validate.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let lines: Vec<&str> = doc.lines().collect();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(command) = line.strip_prefix("$ akvvm validate ") else {
            continue;
        };
        let args: Vec<&str> = command.split_whitespace().collect();
        let expected: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| !l.starts_with("$ ") && !l.starts_with("```"))
            .copied()
            .collect();
        let dir = ["valid", "seeds", "derived"]
            .iter()
            .map(|d| fixtures::path(&format!("settings/{d}")))
            .find(|d| d.join(args[0]).exists())
            .unwrap_or_else(|| panic!("no fixture named {}", args[0]));
        let out = akvvm()
            .arg("validate")
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            stdout.trim_end(),
            expected.join("\n"),
            "docs/validate.md example `{command}` is out of date"
        );
        checked += 1;
    }
    assert_eq!(checked, 6, "examples found in docs/validate.md");
}

#[test]
fn binary_files_and_byte_order_marks() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("settings.json");
    std::fs::write(&binary, [0x7b, 0xff, 0xfe, 0x7d]).unwrap();
    akvvm()
        .arg("validate")
        .arg(&binary)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "error[not-json] not JSON: the file is not UTF-8 text (invalid byte at offset 1)",
        ));

    // PowerShell's Out-File writes a UTF-8 byte order mark; it is not an error.
    let bom = dir.path().join("bom.json");
    let mut bytes = vec![0xef, 0xbb, 0xbf];
    bytes.extend_from_slice(br#"{"secretsManagementSettings": {"observedCertificates": ["https://v.vault.azure.net/secrets/c"]}}"#);
    std::fs::write(&bom, bytes).unwrap();
    akvvm().arg("validate").arg(&bom).assert().code(0);
}

#[test]
fn a_system_directory_as_the_store_is_an_error_before_deploying() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    std::fs::write(
        &settings,
        serde_json::to_vec(&serde_json::json!({"secretsManagementSettings": {
            "observedCertificates": ["https://myvault.vault.azure.net/secrets/web"],
            "certificateStoreLocation": "/etc/ssl/certs/",
        }}))
        .unwrap(),
    )
    .unwrap();
    akvvm()
        .arg("validate")
        .arg(&settings)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "error[system-store-location] settings.secretsManagementSettings.certificateStoreLocation: certificateStoreLocation \"/etc/ssl/certs/\" is a directory that other programs read certificates or keys from",
        ))
        .stdout(predicate::str::contains(
            "help: use a directory of its own, such as \"/var/lib/waagent/Microsoft.Azure.KeyVault.Store\"",
        ));
}
