//! Property tests: the settings parser and the validator never panic, whatever they are given,
//! and every error they report names a path inside the input.

use akvvm::settings::{ParseOptions, SecretUrl, Settings, parse};
use akvvm::validate::{check_balance, validate_text, validate_value};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Keys the parser knows, plus near misses, so random objects reach deep into the rules.
const KEYS: &[&str] = &[
    "secretsManagementSettings",
    "authenticationSettings",
    "loggingSettings",
    "akvvm",
    "pollingIntervalInS",
    "certificateStoreName",
    "certificateStoreLocation",
    "linkOnRenewal",
    "requireInitialSync",
    "aclEnabled",
    "observedCertificates",
    "url",
    "customSymbolicLinkName",
    "acls",
    "user",
    "group",
    "keyExportable",
    "accounts",
    "msiEndpoint",
    "msiClientId",
    "clientId",
    "clientCertificateSubjectName",
    "stateDirectory",
    "keepVersions",
    "resolve",
    "reload",
    "command",
    "timeoutInS",
    "settings",
    "properties",
    "publisher",
    "type",
    "resources",
    "runtimeSettings",
    "handlerSettings",
    "publicSettings",
    "extensionProfile",
    "extensions",
    "parameters",
    "variables",
    "pollingIntervalInSec",
    "defaultValue",
    "value",
];

/// Strings that exercise the interesting paths: URLs, ARM expressions, paths, numbers.
fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("https://myvault.vault.azure.net/secrets/mycert".to_string()),
        Just("https://myvault.vault.azure.net/certificates/mycert".to_string()),
        Just("http:///169.254.169.254/metadata/identity".to_string()),
        Just("Microsoft.Azure.KeyVault".to_string()),
        Just("KeyVaultForLinux".to_string()),
        Just("KeyVaultForPaaS".to_string()),
        Just("[parameters('x')]".to_string()),
        Just("[concat(variables('v'), parameters('x')[0])]".to_string()),
        Just("[parameters('x']".to_string()),
        Just("CN=bootstrap".to_string()),
        Just("/etc/ssl".to_string()),
        Just("3600".to_string()),
        "[a-zA-Z0-9:/._\\[\\]()'-]{0,40}",
        any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        interesting_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (prop::sample::select(KEYS).prop_map(str::to_string), inner),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn paths_are_inside(base: &str, value: &Value) -> Result<(), TestCaseError> {
    let report = parse(
        value,
        &ParseOptions {
            base_path: base.to_string(),
            ..ParseOptions::default()
        },
    );
    for d in &report.diagnostics {
        prop_assert!(
            d.path.starts_with(base),
            "{} does not start with {base}",
            d.path
        );
        prop_assert!(!d.message.is_empty());
    }
    prop_assert_eq!(report.settings.is_some(), !report.has_errors());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn settings_parser_never_panics(value in json_value()) {
        let _ = Settings::from_json_value(&value);
        paths_are_inside("settings", &value)?;
        let arm = ParseOptions { arm_expressions: true, extension_type: Some("KeyVaultForPaaS".into()), ..ParseOptions::default() };
        let _ = parse(&value, &arm);
    }

    #[test]
    fn settings_parser_never_panics_on_near_valid_settings(
        interval in json_value(), entry in json_value(), a in json_value(), extra in json_value()
    ) {
        let value = json!({
            "secretsManagementSettings": {"pollingIntervalInS": interval, "observedCertificates": [entry, "https://v.vault.azure.net/secrets/c"]},
            "authenticationSettings": a,
            "akvvm": extra,
        });
        let _ = Settings::from_json_value(&value);
        paths_are_inside("settings", &value)?;
    }

    #[test]
    fn validator_never_panics_on_any_json(value in json_value(), params in json_value()) {
        let params = params.as_object().cloned().unwrap_or_default();
        let report = validate_value(&value, params);
        prop_assert_eq!(report.valid, !report.has_errors());
        let _ = report.render_text();
        let _ = serde_json::to_string(&report).unwrap();
    }

    #[test]
    fn validator_never_panics_on_templates(settings in json_value(), default in json_value(), variable in json_value()) {
        let template = json!({
            "parameters": {"x": {"type": "string", "defaultValue": default}},
            "variables": {"v": variable},
            "resources": [{"type": "Microsoft.Compute/virtualMachines/extensions", "name": "vm/kv",
                "properties": {"publisher": "Microsoft.Azure.KeyVault", "type": "KeyVaultForLinux", "settings": settings}}]
        });
        let _ = validate_value(&template, Map::new());
    }

    #[test]
    fn validator_never_panics_on_any_text(text in any::<String>()) {
        let _ = validate_text(&text, Map::new());
    }

    #[test]
    fn url_and_expression_checks_never_panic(s in interesting_string()) {
        let _ = SecretUrl::parse(&s);
        let _ = check_balance(&s);
    }
}

/// Found by the property above: the "CN=" check cut the subject name inside a character.
#[test]
fn a_subject_name_starting_with_a_wide_character_is_not_cut_inside_it() {
    for subject in ["\u{1ee80}", "C\u{e9}=x", "bootstrap.contoso.com"] {
        let settings = serde_json::json!({
            "secretsManagementSettings": {"observedCertificates": ["https://kv.vault.azure.net/secrets/c"]},
            "authenticationSettings": {"clientId": "3f2b8a54-6c1d-4e0f-9a7b-2c4d6e8f0a1b", "clientCertificateSubjectName": subject}
        });
        let outcome = akvvm::settings::Settings::from_json_value(&settings);
        if let Err(diagnostics) = &outcome {
            assert!(
                diagnostics.iter().all(|d| d.code != "subject-has-cn"),
                "{subject:?}: {diagnostics:?}"
            );
        }
    }
}
