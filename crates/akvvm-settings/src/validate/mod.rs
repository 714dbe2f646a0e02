//! `akvvm validate`: finds the extension settings in what it is given (bare settings, a VM or
//! scale-set extension resource, a Cloud Services `extensionProfile` entry, a whole ARM template,
//! or a handler `<seq>.settings` file), resolves ARM expressions from a parameters file and the
//! template's own defaults, validates every Key Vault extension's settings, and reports.
//!
//! The library does all the work and renders the report ([`ValidationReport::render_text`], or
//! serde JSON; the report types are in `report.rs`); the CLI only prints it. To recognise a new
//! kind of input, extend `detect` (in this module).

mod arm;
mod extension;
mod input;
mod report;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::settings::{self, Diagnostic, ParseOptions, did_you_mean, join_index, join_key};

pub use arm::{ArmContext, BalanceError, Unevaluated, check_balance};
pub use extension::{KEY_VAULT_PUBLISHER, KEY_VAULT_TYPES};
pub use input::parse_json;
pub use report::{
    CertificateSummary, ExtensionReport, InputKind, UnresolvedExpression, ValidationReport,
};

/// Why the validator could not even start (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("failed to read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parameters file {} is not usable: {message}", path.display())]
    Parameters { path: PathBuf, message: String },
}

akvvm_cert::error_codes! {
    ValidateError {
        ValidateError::Read { .. } => "validate.unreadable",
        ValidateError::Parameters { .. } => "validate.bad_parameters_file",
    }
}

/// Reads an ARM parameters file: `{"parameters": {"name": {"value": ...}}}`.
pub fn load_parameters(path: &Path) -> Result<Map<String, Value>, ValidateError> {
    let text = std::fs::read_to_string(path).map_err(|source| ValidateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |message: String| ValidateError::Parameters {
        path: path.to_path_buf(),
        message,
    };
    // Files saved by Windows tools may start with a byte order mark, as templates may.
    let (value, _) = parse_json(text.trim_start_matches('\u{feff}')).map_err(|d| bad(d.message))?;
    parameters_from_value(&value).map_err(|e| bad(e.to_string()))
}

/// Why a parameters file's JSON is not `{"parameters": {"name": {"value": ...}}}`
/// ([`parameters_from_value`]); the `message` of [`ValidateError::Parameters`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParametersError {
    #[error(
        "it has no \"parameters\" object; expected {{\"parameters\": {{\"name\": {{\"value\": ...}}}}}}"
    )]
    Missing,
    #[error("\"parameters\" is not an object")]
    NotAnObject,
    #[error("parameter {name:?} has no \"value\"; write \"{name}\": {{\"value\": ...}}")]
    NoValue { name: String },
}

/// The `parameters` map of a parameters file's JSON.
pub fn parameters_from_value(value: &Value) -> Result<Map<String, Value>, ParametersError> {
    let Some(params) = value.get("parameters") else {
        return Err(ParametersError::Missing);
    };
    let Value::Object(map) = params else {
        return Err(ParametersError::NotAnObject);
    };
    for (name, entry) in map {
        let ok = entry
            .as_object()
            .is_some_and(|o| o.contains_key("value") || o.contains_key("reference"));
        if !ok {
            return Err(ParametersError::NoValue { name: name.clone() });
        }
    }
    Ok(map.clone())
}

/// Validates a file, with an optional parameters file.
pub fn validate_file(
    path: &Path,
    parameters: Option<&Path>,
) -> Result<ValidationReport, ValidateError> {
    let parameter_values = parameters
        .map(load_parameters)
        .transpose()?
        .unwrap_or_default();
    let bytes = std::fs::read(path).map_err(|source| ValidateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut report = match String::from_utf8(bytes) {
        Ok(text) => validate_text(text.trim_start_matches('\u{feff}'), parameter_values),
        Err(e) => ValidationReport {
            file: None,
            kind: InputKind::Unknown,
            valid: false,
            diagnostics: vec![
                Diagnostic::error(
                    "not-json",
                    "",
                    format!(
                        "not JSON: the file is not UTF-8 text (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ),
                )
                .with_help("save the file as UTF-8 JSON"),
            ],
            extensions: Vec::new(),
        },
    };
    report.file = Some(path.to_path_buf());
    Ok(report)
}

/// Validates JSON text (see the module documentation for what it may hold).
pub fn validate_text(text: &str, parameter_values: Map<String, Value>) -> ValidationReport {
    match parse_json(text) {
        Ok((value, warnings)) => {
            let mut report = validate_value(&value, parameter_values);
            report.diagnostics.splice(0..0, warnings);
            report.valid = !report.has_errors();
            report
        }
        Err(diagnostic) => ValidationReport {
            file: None,
            kind: InputKind::Unknown,
            valid: false,
            diagnostics: vec![diagnostic],
            extensions: Vec::new(),
        },
    }
}

/// Validates parsed JSON.
pub fn validate_value(value: &Value, parameter_values: Map<String, Value>) -> ValidationReport {
    let mut report = ValidationReport {
        file: None,
        kind: InputKind::Unknown,
        valid: false,
        diagnostics: Vec::new(),
        extensions: Vec::new(),
    };
    let mut cx = ArmContext {
        parameter_values,
        ..ArmContext::default()
    };
    report.kind = detect(value);
    match report.kind {
        InputKind::Settings => {
            let mut ext = ExtensionReport::new("");
            check_settings(value, "settings", None, &cx, false, &mut ext);
            report.extensions.push(ext);
        }
        InputKind::HandlerSettings => handler_settings(value, &mut report),
        InputKind::Unknown => report.diagnostics.push(unrecognised(value)),
        kind => {
            if kind == InputKind::ArmTemplate {
                if let Some(Value::Object(p)) = value.get("parameters") {
                    cx.declared_parameters = Some(p.clone());
                } else {
                    cx.declared_parameters = Some(Map::new());
                }
                if let Some(Value::Object(v)) = value.get("variables") {
                    cx.variables = v.clone();
                }
                for name in cx.parameter_values.keys() {
                    let declared = cx
                        .declared_parameters
                        .as_ref()
                        .is_some_and(|d| d.keys().any(|k| k.eq_ignore_ascii_case(name)));
                    if !declared {
                        report.diagnostics.push(
                            Diagnostic::warning(
                                "unused-parameter",
                                "parameters",
                                format!("the parameters file gives {name:?}, which the template does not declare"),
                            )
                            .with_help(
                                "check its spelling against the template's \"parameters\", or remove it from the parameters file",
                            ),
                        );
                    }
                }
            }
            let mut found = Vec::new();
            find_extensions(value, "", &mut found, &mut report.diagnostics);
            if found.is_empty() {
                report.diagnostics.push(no_extension(kind));
            }
            for (path, props, name) in found {
                let mut ext = ExtensionReport::new(&path);
                ext.name = name.map(str::to_string);
                check_extension(props, &path, &cx, &mut ext);
                report.extensions.push(ext);
            }
        }
    }
    report.valid = !report.has_errors();
    report
}

/// Recognises the input from its top-level keys.
fn detect(value: &Value) -> InputKind {
    let Value::Object(map) = value else {
        return match value {
            Value::String(_) => InputKind::Settings,
            _ => InputKind::Unknown,
        };
    };
    let str_of = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or_default();
    if map.contains_key("runtimeSettings") {
        return InputKind::HandlerSettings;
    }
    if map.get("resources").is_some_and(Value::is_array)
        || str_of("$schema").contains("deploymentTemplate")
    {
        return InputKind::ArmTemplate;
    }
    if map.contains_key("secretsManagementSettings") || map.contains_key("authenticationSettings") {
        return InputKind::Settings;
    }
    let resource_type = str_of("type").to_ascii_lowercase();
    if resource_type == "microsoft.compute/virtualmachines/extensions" {
        return InputKind::VmExtension;
    }
    if resource_type == "microsoft.compute/virtualmachinescalesets/extensions" {
        return InputKind::ScaleSetExtension;
    }
    if let Some(Value::Object(props)) = map.get("properties")
        && (props.contains_key("publisher") || props.contains_key("settings"))
    {
        let paas = props
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("KeyVaultForPaaS"));
        return if paas {
            InputKind::CloudServiceExtension
        } else {
            InputKind::ScaleSetProfileExtension
        };
    }
    if map.contains_key("publisher") && map.contains_key("settings") {
        return InputKind::ResourceFragment;
    }
    let mut found = Vec::new();
    find_extensions(value, "", &mut found, &mut Vec::new());
    let paas = found.iter().any(|(_, props, _)| {
        props
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("KeyVaultForPaaS"))
    });
    match (found.is_empty(), paas) {
        (true, _) => InputKind::Unknown,
        (false, true) => InputKind::CloudServiceExtension,
        (false, false) => InputKind::ResourceFragment,
    }
}

fn unrecognised(value: &Value) -> Diagnostic {
    let what = match value {
        Value::Object(m) if m.is_empty() => "an empty object".to_string(),
        Value::Object(m) => format!(
            "an object with keys {}",
            m.keys()
                .take(6)
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(_) => "an array".to_string(),
        other => format!(
            "a JSON {}",
            if other.is_number() { "number" } else { "value" }
        ),
    };
    let keys: Vec<&str> = [
        "secretsManagementSettings",
        "authenticationSettings",
        "runtimeSettings",
        "resources",
    ]
    .to_vec();
    let close = value.as_object().and_then(|m| {
        m.keys()
            .find_map(|k| did_you_mean(k, &keys).map(|c| (k.clone(), c)))
    });
    if let Some(m) = value.as_object() {
        let parameters_file = m
            .get("parameters")
            .and_then(Value::as_object)
            .is_some_and(|p| {
                !p.is_empty()
                    && p.values()
                        .all(|e| e.get("value").is_some() || e.get("reference").is_some())
            });
        if parameters_file && !m.contains_key("resources") {
            return Diagnostic::error(
                "unrecognised-input",
                "",
                "this is an ARM parameters file, not a template or settings",
            )
            .with_help("give the template as PATH and this file with --parameters");
        }
    }
    let mut d = Diagnostic::error(
        "unrecognised-input",
        "",
        format!("found no Key Vault extension settings in {what}"),
    );
    d.help = Some(match close {
        Some((k, c)) => format!("did you mean {c:?} instead of {k:?}?"),
        None => "give a settings object ({\"secretsManagementSettings\": ...}), an extension resource (publisher Microsoft.Azure.KeyVault), an ARM template or a handler <seq>.settings file".to_string(),
    });
    d
}

fn no_extension(kind: InputKind) -> Diagnostic {
    Diagnostic::error(
        "no-key-vault-extension",
        "",
        format!(
            "the {kind} holds no Key Vault extension (publisher {KEY_VAULT_PUBLISHER}, type {})",
            KEY_VAULT_TYPES.join(", ")
        ),
    )
    .with_help("check the extension's publisher and type")
}

/// Finds extension `properties` objects (those with `publisher` and `type`) that belong to the
/// Key Vault extension, reporting near misses.
fn find_extensions<'v>(
    value: &'v Value,
    path: &str,
    found: &mut Vec<Found<'v>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    find_extensions_named(value, path, None, found, diagnostics);
}

/// A Key Vault extension's `properties`: its path, the object, and the extension's `name`.
type Found<'v> = (String, &'v Map<String, Value>, Option<&'v str>);

fn find_extensions_named<'v>(
    value: &'v Value,
    path: &str,
    name: Option<&'v str>,
    found: &mut Vec<Found<'v>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    match value {
        Value::Object(map) => {
            let publisher = map.get("publisher").and_then(Value::as_str);
            let ext_type = map.get("type").and_then(Value::as_str);
            if let (Some(publisher), Some(ext_type)) = (publisher, ext_type) {
                let kv_publisher = publisher.eq_ignore_ascii_case(KEY_VAULT_PUBLISHER);
                let kv_type = KEY_VAULT_TYPES
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(ext_type));
                if kv_publisher && !kv_type {
                    let mut d = Diagnostic::error(
                        "unknown-extension-type",
                        join_key(path, "type"),
                        format!("{ext_type:?} is not a Key Vault extension type"),
                    );
                    d.help = Some(match did_you_mean(ext_type, KEY_VAULT_TYPES) {
                        Some(close) => format!("did you mean {close:?}?"),
                        None => format!("use one of {}", KEY_VAULT_TYPES.join(", ")),
                    });
                    diagnostics.push(d);
                    return;
                }
                if kv_type && !kv_publisher {
                    diagnostics.push(
                        Diagnostic::error("wrong-publisher", join_key(path, "publisher"), format!("{ext_type} is published by {KEY_VAULT_PUBLISHER}, not {publisher:?}"))
                            .with_help(format!("write \"publisher\": \"{KEY_VAULT_PUBLISHER}\"")),
                    );
                    return;
                }
                if kv_type && kv_publisher {
                    found.push((path.to_string(), map, name));
                    return;
                }
            }
            let own_name = map.get("name").and_then(Value::as_str);
            for (k, v) in map {
                let child_name = if k == "properties" { own_name } else { None };
                find_extensions_named(v, &join_key(path, k), child_name, found, diagnostics);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_extensions_named(v, &join_index(path, i), None, found, diagnostics);
            }
        }
        _ => {}
    }
}

/// Checks one extension's `properties`: where the settings are, then the settings.
fn check_extension(
    props: &Map<String, Value>,
    path: &str,
    cx: &ArmContext,
    ext: &mut ExtensionReport,
) {
    // The enclosing resource's name is one level up; the path ends in ".properties" for resources.
    ext.extension_type = props.get("type").and_then(Value::as_str).map(|t| {
        KEY_VAULT_TYPES
            .iter()
            .find(|k| k.eq_ignore_ascii_case(t))
            .map_or(t, |k| k)
            .to_string()
    });
    ext.type_handler_version = props.get("typeHandlerVersion").map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    if ext.extension_type.as_deref() == Some("KeyVaultForWindows") {
        ext.diagnostics.push(
            Diagnostic::warning(
                "windows-extension",
                join_key(path, "type"),
                "KeyVaultForWindows settings are checked as akvvm (a Linux agent) would apply them",
            )
            .with_help(
                "for Linux machines deploy \"type\": \"KeyVaultForLinux\" (typeHandlerVersion 3.0 for certificate objects); the warnings below say what differs on Linux",
            ),
        );
    }
    for misplaced in [
        "authenticationSettings",
        "secretsManagementSettings",
        "loggingSettings",
    ] {
        if props.contains_key(misplaced) {
            ext.diagnostics.push(
                Diagnostic::error(
                    "settings-beside-settings",
                    join_key(path, misplaced),
                    format!("{misplaced} is placed beside \"settings\"; the extension only reads what is inside \"settings\", so it is ignored"),
                )
                .with_help(format!("move {misplaced} into \"settings\": {{\"secretsManagementSettings\": ..., \"authenticationSettings\": ...}}")),
            );
        }
    }
    if let Some(protected) = props.get("protectedSettings")
        && protected.as_object().is_none_or(|o| !o.is_empty())
    {
        ext.diagnostics.push(
            Diagnostic::warning(
                "protected-settings",
                join_key(path, "protectedSettings"),
                "the Key Vault extension has no protected settings; protectedSettings is ignored",
            )
            .with_help("put every setting in \"settings\" (they are all public)"),
        );
    }
    let settings_path = join_key(path, "settings");
    let Some(settings) = props.get("settings") else {
        let keys: Vec<&str> = props.keys().map(String::as_str).collect();
        let typo = keys
            .iter()
            .find(|k| did_you_mean(k, &["settings"]).is_some());
        let mut d = Diagnostic::error(
            "missing-settings",
            &settings_path,
            "the extension has no \"settings\"",
        );
        d.help = Some(match typo {
            Some(k) => format!("rename {k:?} to \"settings\""),
            None => "add \"settings\": {\"secretsManagementSettings\": {\"observedCertificates\": [...]}}".to_string(),
        });
        ext.diagnostics.push(d);
        return;
    };
    let objects_need_v3 = ext.extension_type.as_deref() == Some("KeyVaultForLinux")
        && ext
            .type_handler_version
            .as_deref()
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
            .is_some_and(|major| major < 3);
    let extension_type = ext.extension_type.clone();
    check_settings(settings, &settings_path, extension_type, cx, true, ext);
    if objects_need_v3 && ext.shape == Some(settings::Shape::V3) {
        ext.diagnostics.push(Diagnostic::warning(
            "objects-need-v3",
            join_key(path, "typeHandlerVersion"),
            "observedCertificates objects need KeyVaultForLinux 3.0 in Azure; older versions accept only URL strings (akvvm accepts both)",
        ).with_help("set \"typeHandlerVersion\": \"3.0\""));
    }
}

/// Resolves ARM expressions (in templates), then validates the settings object.
fn check_settings(
    value: &Value,
    path: &str,
    extension_type: Option<String>,
    cx: &ArmContext,
    arm: bool,
    ext: &mut ExtensionReport,
) {
    let mut value = value.clone();
    let mut resolution = arm::Resolution::default();
    if arm {
        arm::resolve(&mut value, path, cx, &mut resolution);
    }
    ext.diagnostics.append(&mut resolution.diagnostics);
    // The resource's typeHandlerVersion chooses the mode, as the guest agent's version does on
    // the machine. Only the Linux extension has a 4.x.
    let extension_version = ext
        .type_handler_version
        .as_deref()
        .filter(|v| !settings::is_arm_expression(v))
        .filter(|_| {
            extension_type
                .as_deref()
                .is_none_or(|t| t == "KeyVaultForLinux")
        })
        .map(|v| settings::ExtensionVersion::new(v, settings::VersionOrigin::TypeHandlerVersion));
    let options = ParseOptions {
        base_path: path.to_string(),
        arm_expressions: arm,
        extension_type,
        extension_version,
    };
    let report = settings::parse(&value, &options);
    ext.mode = Some(report.mode.mode.to_string());
    ext.mode_reason = Some(report.mode.to_string());
    ext.diagnostics.extend(report.diagnostics);
    for u in report.unresolved {
        if resolution.malformed.contains(&u.path) {
            continue;
        }
        let reason = resolution
            .unevaluated
            .iter()
            .find(|e| e.path == u.path)
            .map_or_else(
                || "evaluated at deployment".to_string(),
                |e| e.reason.clone(),
            );
        ext.unresolved.push(UnresolvedExpression {
            path: u.path,
            expression: u.expression,
            reason,
        });
    }
    // Settings given as an escaped JSON string are an error, but what the string holds is
    // summarised all the same, so that the report shows what the settings would be once fixed.
    let usable = report.settings.is_some();
    if let Some(s) = report.settings.or(report.settings_in_string) {
        ext.shape = Some(s.shape);
        let client_id_at_deployment = ext
            .unresolved
            .iter()
            .any(|u| u.path.ends_with(".msiClientId"));
        ext.logging = s.logging.as_ref().map(|l| {
            format!(
                "forwarded to fluentd at {} (Forward protocol, tag {})",
                l.endpoint, l.tag
            )
        });
        ext.authentication = Some(match &s.authentication {
            settings::Authentication::ManagedIdentity {
                endpoint,
                client_id: None,
            } if client_id_at_deployment => {
                format!(
                    "managed identity (user-assigned, client id from an ARM expression) at {endpoint}"
                )
            }
            other => other.to_string(),
        });
        // A value that an ARM expression gives at deployment is not the default the parser
        // filled in: leave it out of the summary (it is listed with the unresolved expressions).
        let at_deployment = |key: &str| {
            ext.unresolved.iter().any(|u| {
                u.path
                    .ends_with(&format!(".secretsManagementSettings.{key}"))
            })
        };
        ext.polling_interval_seconds =
            (!at_deployment("pollingIntervalInS")).then_some(s.polling_interval.as_secs());
        ext.require_initial_sync =
            (!at_deployment("requireInitialSync")).then_some(s.require_initial_sync);
        // 4.x applies the acls always, whatever aclEnabled says.
        ext.acls_applied = (s.mode.mode == settings::ExtensionMode::V4
            || !at_deployment("aclEnabled"))
        .then_some(s.acl_enabled);
        ext.certificates = s
            .observed
            .iter()
            .map(|o| CertificateSummary {
                url: o.url.to_string(),
                vault: o.url.vault_name.clone(),
                host: o.url.host.clone(),
                name: o.url.name.clone(),
                version: o.url.version.clone(),
                store_directory: o.store_dir.clone(),
                link_name: o.link_name.clone(),
                acls: o.acls.iter().map(ToString::to_string).collect(),
                reload: o.reload_hook(&s.agent).map(|r| r.command.clone()),
                certbot_layout: o.certbot_layout(&s.agent),
            })
            .collect();
        if usable {
            ext.settings = Some(s);
        }
    }
}

fn handler_settings(value: &Value, report: &mut ValidationReport) {
    let path = "runtimeSettings";
    let first = match value.get("runtimeSettings") {
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.len() > 1 {
                report.diagnostics.push(
                    Diagnostic::warning(
                        "extra-runtime-settings",
                        join_index(path, 1),
                        "only runtimeSettings[0] is used",
                    )
                    .with_help("move the settings you want into runtimeSettings[0] and remove the other entries"),
                );
            }
            &items[0]
        }
        _ => {
            report.diagnostics.push(
                Diagnostic::error("bad-handler-settings", path, "runtimeSettings must be a non-empty array")
                    .with_help("a handler settings file is {\"runtimeSettings\": [{\"handlerSettings\": {\"publicSettings\": {...}}}]}"),
            );
            return;
        }
    };
    let hs_path = join_key(&join_index(path, 0), "handlerSettings");
    let Some(public) = first
        .get("handlerSettings")
        .and_then(|h| h.get("publicSettings"))
    else {
        report.diagnostics.push(
            Diagnostic::error("bad-handler-settings", join_key(&hs_path, "publicSettings"), "the handler settings file has no handlerSettings.publicSettings")
                .with_help("a handler settings file is {\"runtimeSettings\": [{\"handlerSettings\": {\"publicSettings\": {...}}}]}"),
        );
        return;
    };
    let mut ext = ExtensionReport::new("");
    check_settings(
        public,
        &join_key(&hs_path, "publicSettings"),
        None,
        &ArmContext::default(),
        false,
        &mut ext,
    );
    report.extensions.push(ext);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_stable() {
        let dir = std::env::temp_dir().join("akvvm-validate-no-such-dir");
        let read = validate_file(&dir.join("missing.json"), None).unwrap_err();
        assert_eq!(read.code(), "validate.unreadable");
        let params = ValidateError::Parameters {
            path: dir.clone(),
            message: "x".into(),
        };
        assert_eq!(params.code(), "validate.bad_parameters_file");
        assert_eq!(ValidateError::CODES, &[read.code(), params.code()]);
        assert!(
            ValidateError::CODES
                .iter()
                .all(|c| akvvm_cert::codes::is_well_formed(c))
        );
        assert_eq!(
            parameters_from_value(&serde_json::json!({"parameters": {"a": 1}}))
                .unwrap_err()
                .to_string(),
            "parameter \"a\" has no \"value\"; write \"a\": {\"value\": ...}"
        );
    }

    #[test]
    fn parameters_files_given_as_path_are_explained() {
        let r = validate_value(
            &serde_json::json!({"parameters": {"a": {"value": 1}}}),
            Map::new(),
        );
        let e = r.errors().next().unwrap();
        assert_eq!(
            e.message,
            "this is an ARM parameters file, not a template or settings"
        );
    }
}
