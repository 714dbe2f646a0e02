//! `akvvm validate` on the seed documents' snippets and on realistic templates: each is valid, or
//! reports exactly the problem it really has.

use akvvm::settings::Shape;
use akvvm::validate::{InputKind, ValidationReport, validate_file, validate_text, validate_value};
use akvvm_testkit::fixtures;
use serde_json::{Map, json};

/// Validates the settings fixture `name` (relative to `fixtures/settings/`).
fn validate(name: &str) -> ValidationReport {
    validate_file(&fixtures::path(&format!("settings/{name}")), None).unwrap()
}

/// (code, path) of every error.
fn errors(report: &ValidationReport) -> Vec<(&'static str, String)> {
    report.errors().map(|d| (d.code, d.path.clone())).collect()
}

fn warning_codes(report: &ValidationReport) -> Vec<&'static str> {
    report.warnings().map(|d| d.code).collect()
}

#[test]
fn seed_000_cloud_services_snippet_has_an_unbalanced_expression() {
    let r = validate("seeds/000-cloud-services-extension-profile.json");
    assert_eq!(r.kind, InputKind::CloudServiceExtension);
    assert!(!r.valid);
    assert_eq!(
        errors(&r),
        vec![(
            "arm-expression-malformed",
            "extensionProfile.extensions[0].properties.settings.secretsManagementSettings.observedCertificates".to_string()
        )]
    );
    let e = r.errors().next().unwrap();
    assert_eq!(
        e.message,
        "ARM expression \"[parameters('keyVaultObservedCertificates']\" is unbalanced: '(' at character 12 is never closed"
    );
    assert_eq!(
        e.help.as_deref(),
        Some("did you mean \"[parameters('keyVaultObservedCertificates')]\"?")
    );
    let ext = &r.extensions[0];
    assert_eq!(ext.name.as_deref(), Some("KVVMExtensionForPaaS"));
    assert_eq!(ext.extension_type.as_deref(), Some("KeyVaultForPaaS"));
    assert_eq!(ext.type_handler_version.as_deref(), Some("1.0"));
    // The placeholders in authenticationSettings are not GUIDs: warned, not errors.
    assert_eq!(
        warning_codes(&r),
        vec!["windows-only", "windows-only", "client-id-not-guid"]
    );
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn seed_000_fixed_and_given_parameters_is_valid() {
    let r = validate_file(
        &fixtures::path("settings/derived/000-cloud-services-fixed.json"),
        Some(&fixtures::path(
            "settings/derived/000-cloud-services-fixed.parameters.json",
        )),
    )
    .unwrap();
    assert!(r.valid, "{}", r.render_text());
    let ext = &r.extensions[0];
    assert_eq!(ext.shape, Some(Shape::PaaS));
    assert_eq!(
        ext.authentication.as_deref(),
        Some(
            "bootstrap certificate CN=bootstrap.contoso.com for Entra app 3f2b8a54-6c1d-4e0f-9a7b-2c4d6e8f0a1b"
        )
    );
    assert_eq!(ext.certificates.len(), 1);
    assert_eq!(
        ext.certificates[0].url,
        "https://csesvault.vault.azure.net/secrets/webrole-ssl"
    );
    assert!(ext.unresolved.is_empty());

    // Without the parameters file the certificates are unresolved: listed, not an error.
    let r = validate("derived/000-cloud-services-fixed.json");
    assert!(r.valid, "{}", r.render_text());
    let ext = &r.extensions[0];
    assert!(ext.certificates.is_empty());
    assert_eq!(ext.unresolved.len(), 1);
    assert_eq!(
        ext.unresolved[0].expression,
        "[parameters('keyVaultObservedCertificates')]"
    );
    assert_eq!(
        ext.unresolved[0].reason,
        "parameter \"keyVaultObservedCertificates\" has no value; give it with --parameters"
    );
}

#[test]
fn seed_001_snippets_with_placeholders_are_not_json() {
    for name in [
        "seeds/001-extension-schema.json",
        "seeds/001-template-deployment.json",
    ] {
        let r = validate(name);
        assert_eq!(r.kind, InputKind::Unknown);
        assert_eq!(errors(&r), vec![("not-json", String::new())], "{name}");
        assert_eq!(
            r.errors().next().unwrap().message,
            "not JSON: documentation placeholder <string specifying polling interval in seconds, e.g: \"3600\"> at line 16, column 33",
            "{name}"
        );
    }
}

#[test]
fn seed_001_fragments_and_003_xml_are_explained() {
    let cases = [
        (
            "seeds/001-vmss-identity-fragment.json",
            "without the surrounding braces",
        ),
        (
            "seeds/001-authentication-settings-fragment.json",
            "without the surrounding braces",
        ),
        (
            "seeds/001-require-initial-sync-fragment.json",
            "line 3 is a documentation elision (...)",
        ),
        ("seeds/003-cscfg-certificate.json", "this is XML, not JSON"),
    ];
    for (name, expected) in cases {
        let r = validate(name);
        assert_eq!(errors(&r), vec![("not-json", String::new())], "{name}");
        let message = &r.errors().next().unwrap().message;
        assert!(message.contains(expected), "{name}: {message}");
    }
}

#[test]
fn seed_001_schema_filled_with_its_examples_is_valid_with_warnings() {
    let r = validate("derived/001-extension-schema-filled.json");
    assert_eq!(r.kind, InputKind::VmExtension);
    assert!(r.valid, "{}", r.render_text());
    assert_eq!(
        warning_codes(&r),
        vec![
            "windows-extension",
            "windows-only",
            "windows-only",
            "msi-endpoint-typo"
        ]
    );
    let ext = &r.extensions[0];
    assert_eq!(ext.shape, Some(Shape::V1));
    assert_eq!(ext.require_initial_sync, Some(true));
    let names: Vec<&str> = ext.certificates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["mycertificate", "mycertificate2"]);
}

#[test]
fn seed_001_az_cli_escaped_settings_are_the_not_an_object_pitfall() {
    let r = validate("derived/001-az-cli-escaped-settings.json");
    assert_eq!(r.kind, InputKind::VmExtension);
    assert_eq!(
        errors(&r),
        vec![("settings-is-string", "properties.settings".to_string())]
    );
    let e = r.errors().next().unwrap();
    assert!(
        e.message
            .starts_with("Failed to parse the configuration settings with: not an object"),
        "{}",
        e.message
    );
    assert!(
        e.help
            .as_deref()
            .unwrap()
            .contains("pass that JSON as an object")
    );
    // The string holds valid settings: they are summarised, though the report stays invalid.
    let ext = &r.extensions[0];
    assert_eq!(ext.shape, Some(Shape::V1));
    let names: Vec<&str> = ext.certificates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["mycertificate"]);
    assert!(
        ext.settings.is_none(),
        "settings given as a string are not usable"
    );
}

#[test]
fn what_an_escaped_settings_string_holds_is_checked_too() {
    let text = r#"{"type":"Microsoft.Compute/virtualMachines/extensions","apiVersion":"2022-08-01","name":"vm/kv","properties":{"publisher":"Microsoft.Azure.KeyVault","type":"KeyVaultForLinux","typeHandlerVersion":"3.0","settings":"{\"secretsManagementSettings\":{\"pollingIntervalInSec\":\"3600\",\"observedCertificates\":[\"https://kv.vault.azure.net/certificates/web\"]}}"}}"#;
    let r = validate_text(text, Map::new());
    assert_eq!(r.kind, InputKind::VmExtension);
    assert!(!r.valid);
    assert_eq!(
        errors(&r),
        vec![
            ("settings-is-string", "properties.settings".to_string()),
            (
                "unknown-key",
                "properties.settings(string).secretsManagementSettings.pollingIntervalInSec"
                    .to_string()
            ),
            (
                "url-certificates-path",
                "properties.settings(string).secretsManagementSettings.observedCertificates[0]"
                    .to_string()
            ),
        ]
    );
    let e: Vec<_> = r.errors().collect();
    assert!(
        e[0].message
            .starts_with("Failed to parse the configuration settings with: not an object"),
        "{}",
        e[0].message
    );
    assert_eq!(
        e[1].help.as_deref(),
        Some("did you mean \"pollingIntervalInS\"?")
    );
    assert!(
        e[2].message
            .contains("use the /secrets/ URL (the secret carries the private key): https://kv.vault.azure.net/secrets/web"),
        "{}",
        e[2].message
    );
    assert_eq!(
        r.extensions[0].shape, None,
        "the string's own settings have errors"
    );
    let text = r.render_text();
    assert!(
        text.contains("error[unknown-key] properties.settings(string).secretsManagementSettings.pollingIntervalInSec: unknown key \"pollingIntervalInSec\""),
        "{text}"
    );
}

#[test]
fn escaped_strings_in_handler_files_and_bare_settings() {
    let inner = json!({"secretsManagementSettings": {"observedCertificates": ["https://v.vault.azure.net/secrets/c"], "pollingIntervalInS": "x"}}).to_string();
    let r = validate_value(
        &json!({"runtimeSettings": [{"handlerSettings": {"publicSettings": inner}}]}),
        Map::new(),
    );
    assert_eq!(r.kind, InputKind::HandlerSettings);
    assert_eq!(
        errors(&r),
        vec![
            (
                "settings-is-string",
                "runtimeSettings[0].handlerSettings.publicSettings".to_string()
            ),
            (
                "bad-polling-interval",
                "runtimeSettings[0].handlerSettings.publicSettings(string).secretsManagementSettings.pollingIntervalInS".to_string()
            ),
        ]
    );

    // Bare settings: a file holding one JSON string.
    let valid_inner = ok_settings().to_string();
    let r = validate_value(&json!(valid_inner), Map::new());
    assert_eq!(r.kind, InputKind::Settings);
    assert!(!r.valid, "the string form is the error");
    assert_eq!(
        errors(&r),
        vec![("settings-is-string", "settings".to_string())]
    );
    assert_eq!(r.extensions[0].shape, Some(Shape::V1));
    assert_eq!(r.extensions[0].certificates.len(), 1);

    // A string that is not JSON says so.
    let r = validate_value(&json!("secretsManagementSettings=..."), Map::new());
    assert_eq!(
        errors(&r),
        vec![("settings-is-string", "settings".to_string())]
    );
    let message = &r.errors().next().unwrap().message;
    assert!(
        message.starts_with("Failed to parse the configuration settings with: not an object")
            && message.contains("; the string is not JSON either ("),
        "{message}"
    );
}

#[test]
fn valid_inputs_of_every_kind() {
    let cases = [
        (
            "valid/design-example.json",
            InputKind::Settings,
            Shape::V3,
            2,
        ),
        ("valid/v1-flat.json", InputKind::Settings, Shape::V1, 2),
        (
            "valid/paas-settings.json",
            InputKind::Settings,
            Shape::PaaS,
            1,
        ),
        (
            "valid/vm-extension-linux-v3.json",
            InputKind::VmExtension,
            Shape::V3,
            2,
        ),
        (
            "valid/handler-7.settings",
            InputKind::HandlerSettings,
            Shape::V1,
            1,
        ),
    ];
    for (name, kind, shape, certificates) in cases {
        let r = validate(name);
        assert!(r.valid, "{name}:\n{}", r.render_text());
        assert_eq!(r.kind, kind, "{name}");
        assert_eq!(r.extensions.len(), 1, "{name}");
        assert_eq!(r.extensions[0].shape, Some(shape), "{name}");
        assert_eq!(r.extensions[0].certificates.len(), certificates, "{name}");
        assert_eq!(r.exit_code(), 0);
    }
}

#[test]
fn template_resolves_parameters_variables_and_defaults() {
    let r = validate_file(
        &fixtures::path("settings/valid/vmss-template.json"),
        Some(&fixtures::path(
            "settings/valid/vmss-template.parameters.json",
        )),
    )
    .unwrap();
    assert_eq!(r.kind, InputKind::ArmTemplate);
    assert!(r.valid, "{}", r.render_text());
    assert_eq!(
        r.extensions.len(),
        1,
        "the CustomScript extension is not a Key Vault extension"
    );
    let ext = &r.extensions[0];
    assert_eq!(
        ext.path,
        "resources[0].properties.virtualMachineProfile.extensionProfile.extensions[1].properties"
    );
    assert_eq!(ext.name.as_deref(), Some("KVVMExtensionForLinux"));
    assert_eq!(
        ext.polling_interval_seconds,
        Some(1800),
        "from the parameter's defaultValue"
    );
    let urls: Vec<&str> = ext.certificates.iter().map(|c| c.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://contoso-prod.vault.azure.net/secrets/www-contoso-com",
            "https://contoso-prod.vault.azure.net/secrets/api-contoso-com"
        ]
    );
    assert_eq!(ext.unresolved.len(), 1);
    assert!(
        ext.unresolved[0]
            .path
            .ends_with("authenticationSettings.msiClientId")
    );
    assert_eq!(
        ext.unresolved[0].reason,
        "reference() is evaluated by Azure Resource Manager at deployment"
    );
    assert_eq!(
        ext.authentication.as_deref(),
        Some(
            "managed identity (user-assigned, client id from an ARM expression) at http://169.254.169.254/metadata/identity"
        )
    );
    let text = r.render_text();
    assert!(text.contains("kind: ARM template"), "{text}");
    assert!(text.contains("    - www-contoso-com (vault contoso-prod at contoso-prod.vault.azure.net)\n      version: latest\n      store: /var/lib/waagent/Microsoft.Azure.KeyVault.Store"), "{text}");
    assert!(
        text.ends_with("result: valid (0 errors, 0 warnings)\n"),
        "{text}"
    );
}

#[test]
fn values_set_at_deployment_are_not_shown_as_defaults() {
    // pollingIntervalInS, requireInitialSync and aclEnabled from parameters that have no value
    // here: the summary must not claim the defaults, and ACLs are "applied if".
    let template = json!({
        "parameters": {"poll": {"type": "string"}, "sync": {"type": "bool"}, "acl": {"type": "bool"}},
        "resources": [vm_extension(json!({
            "publisher": "Microsoft.Azure.KeyVault",
            "type": "KeyVaultForLinux",
            "typeHandlerVersion": "3.0",
            "settings": {"secretsManagementSettings": {
                "pollingIntervalInS": "[parameters('poll')]",
                "requireInitialSync": "[parameters('sync')]",
                "aclEnabled": "[parameters('acl')]",
                "observedCertificates": [{
                    "url": "https://myvault.vault.azure.net/secrets/web",
                    "acls": [{"group": "ssl-cert"}]
                }]
            }}
        }))]
    });
    let r = validate_value(&template, Default::default());
    assert!(r.valid, "{}", r.render_text());
    let ext = &r.extensions[0];
    assert_eq!(ext.polling_interval_seconds, None);
    assert_eq!(ext.require_initial_sync, None);
    assert_eq!(ext.acls_applied, None);
    assert_eq!(ext.unresolved.len(), 3);
    let text = r.render_text();
    assert!(
        text.contains(
            "  polling: set at deployment (ARM expression); requireInitialSync: set at deployment (ARM expression)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("      acls: group:ssl-cert (applied if aclEnabled is true at deployment)\n"),
        "{text}"
    );

    // Given values, the summary shows them and the ACLs are applied.
    let mut values = serde_json::Map::new();
    values.insert("poll".into(), json!("120"));
    values.insert("sync".into(), json!(true));
    values.insert("acl".into(), json!(true));
    let r = validate_value(&template, values);
    assert!(r.valid, "{}", r.render_text());
    let ext = &r.extensions[0];
    assert_eq!(ext.polling_interval_seconds, Some(120));
    assert_eq!(ext.require_initial_sync, Some(true));
    assert_eq!(ext.acls_applied, Some(true));
    let text = r.render_text();
    assert!(
        text.contains("  polling: every 120 s; requireInitialSync: true\n"),
        "{text}"
    );
    assert!(text.contains("      acls: group:ssl-cert\n"), "{text}");
}

/// Every warning and error the validator gives, on every fixture and on inputs that reach the
/// document-level checks, says what to do.
#[test]
fn every_diagnostic_has_help() {
    let mut reports = Vec::new();
    for dir in ["seeds", "derived", "valid"] {
        for entry in std::fs::read_dir(fixtures::path(&format!("settings/{dir}"))).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with(".parameters.json") {
                continue;
            }
            reports.push(validate_file(&path, None).unwrap());
        }
    }
    let kv = |settings: serde_json::Value| json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinux", "typeHandlerVersion": "3.0", "settings": settings});
    let mut given = Map::new();
    given.insert("unknwon".into(), json!("x"));
    reports.push(validate_value(
        &json!({"resources": [vm_extension(kv(ok_settings()))]}),
        given,
    ));
    for input in [
        vm_extension(
            json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForWindows", "settings": ok_settings()}),
        ),
        json!({"runtimeSettings": [{"handlerSettings": {"publicSettings": ok_settings()}}, {}]}),
        json!({"resources": [vm_extension(kv(json!({"secretsManagementSettings": {
            "observedCertificates": ["[concat('https://', 'v', ?)]", "[toLower(1, 2)]", "[variables('nope')]"]}})))]}),
        vm_extension(kv(
            json!({"secretsManagementSettings": {"observedCertificates": ["https://v.vault.azure.net/secrets/c"]},
            "authenticationSettings": {"clientId": "3f2b8a54-6c1d-4e0f-9a7b-2c4d6e8f0a1b", "clientCertificateSubjectName": "app.contoso.com"}}),
        )),
    ] {
        reports.push(validate_value(&input, Map::new()));
    }
    let mut without_help = Vec::new();
    let mut codes = std::collections::BTreeSet::new();
    for r in &reports {
        for d in r.all_diagnostics() {
            codes.insert(d.code);
            if d.help.is_none() {
                without_help.push(format!(
                    "{}: {d}",
                    r.file
                        .as_ref()
                        .map_or("(value)".into(), |f| f.display().to_string())
                ));
            }
        }
    }
    for expected in [
        "unused-parameter",
        "windows-extension",
        "extra-runtime-settings",
        "arm-expression-invalid",
        "bootstrap-outside-paas",
    ] {
        assert!(
            codes.contains(expected),
            "no input produced {expected}: {codes:?}"
        );
    }
    assert!(
        without_help.is_empty(),
        "without help:\n{}",
        without_help.join("\n")
    );
}

#[test]
fn files_with_a_byte_order_mark_are_read() {
    // Windows tools (PowerShell 5's Out-File, Notepad) start UTF-8 files with a BOM.
    let dir = tempfile::tempdir().unwrap();
    let with_bom = |name: &str| {
        let path = dir.path().join(name);
        let text = fixtures::text(&format!("settings/valid/{name}"));
        std::fs::write(&path, format!("\u{feff}{}", text.replace('\n', "\r\n"))).unwrap();
        path
    };
    let template = with_bom("vmss-template.json");
    let parameters = with_bom("vmss-template.parameters.json");
    let r = validate_file(&template, Some(&parameters)).unwrap();
    assert!(r.valid, "{}", r.render_text());
    let given = validate_file(
        &fixtures::path("settings/valid/vmss-template.json"),
        Some(&fixtures::path(
            "settings/valid/vmss-template.parameters.json",
        )),
    )
    .unwrap();
    assert_eq!(
        r.extensions[0].polling_interval_seconds,
        given.extensions[0].polling_interval_seconds
    );
    let urls = |r: &ValidationReport| -> Vec<String> {
        r.extensions[0]
            .certificates
            .iter()
            .map(|c| c.url.clone())
            .collect()
    };
    // The vault name comes from the parameters file.
    assert_eq!(
        urls(&r)[0],
        "https://contoso-prod.vault.azure.net/secrets/www-contoso-com"
    );
    assert_eq!(urls(&r), urls(&given));
}

#[test]
fn a_markdown_document_points_at_its_json_snippets() {
    // What happens when the seed documents themselves are given to the validator.
    let doc = "---\ntitle: Key Vault VM extension\nms.topic: how-to\n---\n\n# Settings\n\nText.\n\n```json\n{\n  \"secretsManagementSettings\": {\n    ...\n  }\n}\n```\n\nMore text.\n\n```JSON\n{ \"a\": 1 }\n```\n";
    let r = validate_text(doc, Map::new());
    assert!(!r.valid);
    let d = r.errors().next().expect("an error");
    assert_eq!(d.code, "not-json");
    assert_eq!(
        d.message,
        "this is a Markdown document, not JSON; its JSON snippets start at lines 11, 21"
    );
    assert!(d.help.as_deref().unwrap().contains("copy the snippet"));
    // A heading and no snippet.
    let r = validate_text("# Notes\n\nnothing here\n", Map::new());
    assert_eq!(
        r.errors().next().unwrap().message,
        "this is a Markdown document, not JSON"
    );
}

fn vm_extension(properties: serde_json::Value) -> serde_json::Value {
    json!({"type": "Microsoft.Compute/virtualMachines/extensions", "name": "vm/kv", "properties": properties})
}

const OK_SETTINGS: &str = r#"{"secretsManagementSettings": {"observedCertificates": ["https://v.vault.azure.net/secrets/c"]}}"#;

fn ok_settings() -> serde_json::Value {
    serde_json::from_str(OK_SETTINGS).unwrap()
}

/// Document-level mistakes: (input, code, path, message fragment).
#[test]
fn document_level_mistakes() {
    let cases = vec![
        (
            vm_extension(
                json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinux", "settings": ok_settings(),
                "authenticationSettings": {"msiEndpoint": "http://169.254.169.254/metadata/identity"}}),
            ),
            "settings-beside-settings",
            "properties.authenticationSettings",
            "authenticationSettings is placed beside \"settings\"",
        ),
        (
            vm_extension(
                json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinx", "settings": ok_settings()}),
            ),
            "unknown-extension-type",
            "properties.type",
            "\"KeyVaultForLinx\" is not a Key Vault extension type",
        ),
        (
            vm_extension(
                json!({"publisher": "Microsoft.Azure.Extensions", "type": "KeyVaultForLinux", "settings": ok_settings()}),
            ),
            "wrong-publisher",
            "properties.publisher",
            "KeyVaultForLinux is published by Microsoft.Azure.KeyVault",
        ),
        (
            vm_extension(
                json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinux", "setting": ok_settings()}),
            ),
            "missing-settings",
            "properties.settings",
            "the extension has no \"settings\"",
        ),
        (
            vm_extension(
                json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForPaaS", "settings": ok_settings()}),
            ),
            "paas-needs-bootstrap",
            "properties.settings.authenticationSettings",
            "KeyVaultForPaaS authenticates with a bootstrap certificate",
        ),
        (
            json!({"resources": [{"type": "Microsoft.Compute/virtualMachines", "name": "vm"}]}),
            "no-key-vault-extension",
            "",
            "the ARM template holds no Key Vault extension",
        ),
        (
            json!({"parameters": {"vault": {"type": "string"}}, "resources": [vm_extension(json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinux",
                "settings": {"secretsManagementSettings": {"observedCertificates": ["[concat('https://', parameters('vualt'), '.vault.azure.net/secrets/c')]"]}}}))]}),
            "arm-expression-invalid",
            "resources[0].properties.settings.secretsManagementSettings.observedCertificates[0]",
            "the template declares no parameter \"vualt\"",
        ),
        (
            json!({"resources": [vm_extension(json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinux",
                "settings": {"secretsManagementSettings": {"observedCertificates": ["[parameters('certs')"]}}}))]}),
            "arm-expression-malformed",
            "resources[0].properties.settings.secretsManagementSettings.observedCertificates[0]",
            "does not end with ']'",
        ),
        (
            json!({"runtimeSettings": [{"handlerSettings": {"protectedSettings": null}}]}),
            "bad-handler-settings",
            "runtimeSettings[0].handlerSettings.publicSettings",
            "has no handlerSettings.publicSettings",
        ),
        (
            json!({"runtimeSettings": []}),
            "bad-handler-settings",
            "runtimeSettings",
            "runtimeSettings must be a non-empty array",
        ),
        (
            json!({"runtimeSettings": [{"handlerSettings": {"publicSettings": {"secretsManagementSettings": {"observedCertificates": ["https://v.vault.azure.net/secrets/c"], "pollingIntervalInS": "x"}}}}]}),
            "bad-polling-interval",
            "runtimeSettings[0].handlerSettings.publicSettings.secretsManagementSettings.pollingIntervalInS",
            "pollingIntervalInS must be a whole number",
        ),
        (
            json!({"secretsManagementSetings": {}}),
            "unrecognised-input",
            "",
            "found no Key Vault extension settings",
        ),
    ];
    for (input, code, path, message) in cases {
        let r = validate_value(&input, Map::new());
        assert!(!r.valid, "{input} accepted");
        let hit = r
            .errors()
            .any(|d| d.code == code && d.path == path && d.message.contains(message));
        assert!(
            hit,
            "{input}: expected [{code}] at {path:?} containing {message:?}, got:\n{}",
            r.render_text()
        );
    }
}

#[test]
fn unrecognised_input_suggests_the_close_key() {
    let r = validate_value(&json!({"secretsManagementSetings": {}}), Map::new());
    assert_eq!(
        r.errors().next().unwrap().help.as_deref(),
        Some("did you mean \"secretsManagementSettings\" instead of \"secretsManagementSetings\"?")
    );
}

#[test]
fn protected_settings_and_old_handler_versions_are_warned() {
    let r = validate_value(
        &vm_extension(
            json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinux", "typeHandlerVersion": "2.0",
            "settings": {"secretsManagementSettings": {"observedCertificates": [{"url": "https://v.vault.azure.net/secrets/c"}]}},
            "protectedSettings": {"x": 1}}),
        ),
        Map::new(),
    );
    assert!(r.valid);
    assert_eq!(
        warning_codes(&r),
        vec!["protected-settings", "objects-need-v3"]
    );
}

#[test]
fn comments_are_accepted_with_a_warning() {
    let text = format!("// settings for web01\n{OK_SETTINGS}");
    let r = validate_text(&text, Map::new());
    assert!(r.valid);
    assert_eq!(warning_codes(&r), vec!["json-comments"]);
}

#[test]
fn self_referencing_defaults_are_an_error_not_a_hang() {
    let template = json!({
        "parameters": {"a": {"type": "array", "defaultValue": ["[parameters('a')]"]}},
        "resources": [vm_extension(json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinux",
            "settings": {"secretsManagementSettings": {"observedCertificates": "[parameters('a')]"}}}))]
    });
    let r = validate_value(&template, Map::new());
    let e = r.errors().next().expect("an error");
    assert_eq!(e.code, "arm-expression-invalid");
    assert!(
        e.message.contains("refer to each other in a loop"),
        "{}",
        e.message
    );
}

#[test]
fn every_key_vault_extension_in_a_template_is_checked() {
    let ext = |vault: &str| {
        vm_extension(
            json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinux",
            "settings": {"secretsManagementSettings": {"observedCertificates": [format!("https://{vault}.vault.azure.net/secrets/c")]}}}),
        )
    };
    let template = json!({"resources": [
        {"type": "Microsoft.Compute/virtualMachines", "name": "vm1", "resources": [ext("one")]},
        ext("two"),
        {"type": "Microsoft.Resources/deployments", "name": "nested", "properties": {"template": {"resources": [ext("three_bad")]}}},
    ]});
    let r = validate_value(&template, Map::new());
    let paths: Vec<&str> = r.extensions.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "resources[0].resources[0].properties",
            "resources[1].properties",
            "resources[2].properties.template.resources[0].properties"
        ]
    );
    assert_eq!(
        errors(&r),
        vec![("url-vault-name", "resources[2].properties.template.resources[0].properties.settings.secretsManagementSettings.observedCertificates[0]".to_string())]
    );
}

#[test]
fn report_serialises_to_json() {
    let r = validate("valid/v1-flat.json");
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["kind"], "settings");
    assert_eq!(v["valid"], true);
    assert_eq!(v["extensions"][0]["shape"], "V1");
    assert_eq!(
        v["extensions"][0]["certificates"][1]["version"],
        "5a1f0c3b9e7d4b2a8c6e0f1d2b3a4c5d"
    );
    assert_eq!(
        v["extensions"][0]["certificates"][0]["version"],
        serde_json::Value::Null
    );
}

#[test]
fn settings_given_by_a_variable_are_resolved_and_checked() {
    let template = json!({
        "parameters": {"vault": {"type": "string", "defaultValue": "contoso"}},
        "variables": {"kv": {"secretsManagementSettings": {"observedCertificates": ["[concat('https://', parameters('vault'), '.vault.azure.net/certificates/web')]"]}}},
        "resources": [vm_extension(json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinux", "settings": "[variables('kv')]"}))]
    });
    let r = validate_value(&template, Map::new());
    assert_eq!(
        errors(&r),
        vec![(
            "url-certificates-path",
            "resources[0].properties.settings.secretsManagementSettings.observedCertificates[0]"
                .to_string()
        )]
    );
    assert!(
        r.errors()
            .next()
            .unwrap()
            .message
            .contains("https://contoso.vault.azure.net/secrets/web")
    );
}

#[test]
fn settings_waiting_on_deployment_are_not_called_erroneous() {
    let r = validate_value(
        &vm_extension(
            json!({"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForPaaS",
            "settings": {"secretsManagementSettings": {"observedCertificates": ["https://v.vault.azure.net/secrets/c"]},
                "authenticationSettings": {"clientId": "[parameters('appId')]", "clientCertificateSubjectName": "bootstrap.contoso.com"}}}),
        ),
        Map::new(),
    );
    assert!(r.valid, "{}", r.render_text());
    assert!(
        r.render_text()
            .contains("shape: not determined (it depends on unresolved ARM expressions)")
    );
    assert_eq!(
        r.extensions[0].unresolved[0].reason,
        "parameter \"appId\" has no value; give it with --parameters"
    );
}
