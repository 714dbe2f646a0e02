//! Reading settings JSON into [`Settings`]: key checks (with "did you mean"), the documented
//! leniencies, Windows-only values, and every rule, each problem reported with its JSON path.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use url::Url;

use super::diagnostic::{Diagnostic, did_you_mean, join_index, join_key};
use super::secret_url::{KNOWN_VAULT_SUFFIXES, SecretUrl, VaultHost};
use super::{
    AclEntry, AgentOptions, Authentication, CertificateOptions, DEFAULT_CERTIFICATE_STORE_NAME,
    DEFAULT_MSI_ENDPOINT, DEFAULT_POLLING_INTERVAL, DEFAULT_RELOAD_TIMEOUT, DEFAULT_STORE,
    DEFAULT_WEBHOOK_PATH, LoggingSettings, ObservedCertificate, ReloadHook, ResolveTarget,
    Settings, Shape, WebhookSettings,
};

const ROOT_KEYS: &[&str] = &[
    "secretsManagementSettings",
    "authenticationSettings",
    "loggingSettings",
    "akvvm",
];
const SECRETS_KEYS: &[&str] = &[
    "pollingIntervalInS",
    "certificateStoreName",
    "certificateStoreLocation",
    "linkOnRenewal",
    "requireInitialSync",
    "aclEnabled",
    "observedCertificates",
];
const OBSERVED_KEYS: &[&str] = &[
    "url",
    "certificateStoreName",
    "certificateStoreLocation",
    "customSymbolicLinkName",
    "acls",
    "keyExportable",
    "accounts",
    "akvvm",
];
const AUTH_KEYS: &[&str] = &[
    "msiEndpoint",
    "msiClientId",
    "clientId",
    "clientCertificateSubjectName",
];
const LOGGING_KEYS: &[&str] = &["logger", "endpoint", "format", "servicename"];
const AGENT_KEYS: &[&str] = &[
    "stateDirectory",
    "keepVersions",
    "initialSyncRetries",
    "caCertificates",
    "resolve",
    "authorityHost",
    "bootstrapCertificateDirectories",
    "concurrencyPerVault",
    "expiryWarningDays",
    "reload",
    "certbotLayout",
    "metricsAddress",
    "webhook",
];
const WEBHOOK_KEYS: &[&str] = &["address", "path", "certificateFile", "secretFile"];
const CERT_OPTION_KEYS: &[&str] = &["reload", "certbotLayout"];
const RELOAD_KEYS: &[&str] = &["command", "timeoutInS"];
const ACL_KEYS: &[&str] = &["user", "group"];

/// Every key the settings accept, in any of their objects, once each (ACL entries' `user` and
/// `group` included): what docs/configuration.md must document.
pub fn known_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = Vec::new();
    for table in [
        ROOT_KEYS,
        SECRETS_KEYS,
        OBSERVED_KEYS,
        AUTH_KEYS,
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

/// How to parse.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// The JSON path of the settings object, prefixed to every diagnostic path.
    pub base_path: String,
    /// Treat strings such as `[parameters('x')]` as ARM expressions that ARM resolves later:
    /// skip their checks and list them in [`Report::unresolved`] (for templates). Otherwise they
    /// are errors, since the agent never sees unresolved expressions.
    pub arm_expressions: bool,
    /// The extension type the settings belong to, when known (`KeyVaultForPaaS` requires
    /// bootstrap-certificate authentication).
    pub extension_type: Option<String>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            base_path: "settings".to_string(),
            arm_expressions: false,
            extension_type: None,
        }
    }
}

/// An ARM expression left in the settings (only with [`ParseOptions::arm_expressions`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unresolved {
    pub path: String,
    pub expression: String,
}

/// The outcome of [`parse`].
#[derive(Debug, Clone)]
pub struct Report {
    /// The validated settings; `None` when there are errors. With unresolved ARM expressions the
    /// settings lack what those expressions would give (see [`Report::is_complete`]).
    pub settings: Option<Settings>,
    pub diagnostics: Vec<Diagnostic>,
    pub unresolved: Vec<Unresolved>,
    /// When the settings were an escaped JSON string holding a settings object without errors:
    /// what that object holds. [`Report::settings`] stays `None`: the string form is the error.
    pub settings_in_string: Option<Settings>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }

    /// Whether the settings hold every value (no unresolved ARM expression was skipped).
    pub fn is_complete(&self) -> bool {
        self.unresolved.is_empty()
    }
}

/// Whether ARM treats `s` as an expression: `[...]`, but not `[[...` (an escaped literal).
pub fn is_arm_expression(s: &str) -> bool {
    let t = s.trim();
    t.starts_with('[') && !t.starts_with("[[") && t.ends_with(']')
}

/// Parses and validates a settings object.
pub fn parse(value: &Value, options: &ParseOptions) -> Report {
    let mut cx = Ctx {
        options,
        diagnostics: Vec::new(),
        unresolved: Vec::new(),
        settings_in_string: None,
    };
    let settings = cx.settings(value, &options.base_path);
    let has_errors = cx.diagnostics.iter().any(Diagnostic::is_error);
    Report {
        settings: if has_errors { None } else { settings },
        diagnostics: cx.diagnostics,
        unresolved: cx.unresolved,
        settings_in_string: cx.settings_in_string,
    }
}

/// The path of what an escaped JSON string at `path` holds: `settings(string)`, so that a key
/// inside reads `settings(string).secretsManagementSettings`.
pub fn string_path(path: &str) -> String {
    format!("{path}(string)")
}

/// A field's value: absent, read, or skipped (invalid and already reported, or unresolved).
enum Got<T> {
    Absent,
    Value(T),
    Skip,
}

impl<T> Got<T> {
    fn or(self, default: T) -> T {
        match self {
            Got::Value(v) => v,
            Got::Absent | Got::Skip => default,
        }
    }

    fn value(self) -> Option<T> {
        match self {
            Got::Value(v) => Some(v),
            Got::Absent | Got::Skip => None,
        }
    }

    fn skip_unless_absent<U>(self) -> Got<U> {
        match self {
            Got::Absent => Got::Absent,
            Got::Value(_) | Got::Skip => Got::Skip,
        }
    }

    fn is_present(&self) -> bool {
        !matches!(self, Got::Absent)
    }
}

/// An object's known fields, found by name (case-insensitively, with a warning).
struct Fields<'v> {
    path: String,
    found: Vec<(&'static str, &'v Value)>,
}

impl<'v> Fields<'v> {
    fn get(&self, key: &str) -> Option<&'v Value> {
        self.found.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn path(&self, key: &str) -> String {
        join_key(&self.path, key)
    }
}

struct Ctx<'o> {
    options: &'o ParseOptions,
    diagnostics: Vec<Diagnostic>,
    unresolved: Vec<Unresolved>,
    settings_in_string: Option<Settings>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Ctx<'_> {
    fn error(&mut self, code: &'static str, path: &str, message: String, help: Option<String>) {
        let mut d = Diagnostic::error(code, path, message);
        d.help = help;
        self.diagnostics.push(d);
    }

    fn warn(&mut self, code: &'static str, path: &str, message: String, help: Option<String>) {
        let mut d = Diagnostic::warning(code, path, message);
        d.help = help;
        self.diagnostics.push(d);
    }

    /// Handles an ARM expression string in a place that wants a value. Returns true when `v` was
    /// one (recorded as unresolved, or reported as an error outside templates).
    fn arm_expression(&mut self, v: &Value, path: &str) -> bool {
        let Value::String(s) = v else { return false };
        if !is_arm_expression(s) {
            return false;
        }
        if self.options.arm_expressions {
            self.unresolved.push(Unresolved {
                path: path.to_string(),
                expression: s.clone(),
            });
        } else {
            self.error(
                "arm-expression",
                path,
                format!("{s:?} is an ARM template expression, which only Azure Resource Manager resolves"),
                Some(
                    "put the resolved value here; to check a template, run akvvm validate \
                     TEMPLATE --parameters PARAMETERS"
                        .to_string(),
                ),
            );
        }
        true
    }

    fn wrong_type(&mut self, v: &Value, path: &str, expected: &str, example: &str) {
        self.error(
            "wrong-type",
            path,
            format!("expected {expected}, found {}", type_name(v)),
            Some(format!("write it like {example}")),
        );
    }

    /// Checks an object's keys against `known`, reporting unknown ones (with "did you mean" or
    /// where the key belongs), case mismatches and duplicates.
    fn fields<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        known: &[&'static str],
        example: &str,
    ) -> Option<Fields<'v>> {
        if self.arm_expression(v, path) {
            return None;
        }
        let Value::Object(map) = v else {
            self.wrong_type(v, path, "an object", example);
            return None;
        };
        Some(self.check_keys(map, path, known))
    }

    fn check_keys<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        path: &str,
        known: &[&'static str],
    ) -> Fields<'v> {
        let mut found: Vec<(&'static str, &'v Value)> = Vec::new();
        for (key, value) in map {
            let key_path = join_key(path, key);
            let canonical = known
                .iter()
                .find(|k| **k == key)
                .or_else(|| known.iter().find(|k| k.eq_ignore_ascii_case(key)));
            match canonical {
                Some(canonical) => {
                    if found.iter().any(|(k, _)| k == canonical) {
                        self.error(
                            "duplicate-key",
                            &key_path,
                            format!("{key:?} is given twice (keys differ only in case)"),
                            Some(format!("keep one {canonical:?}")),
                        );
                        continue;
                    }
                    if *canonical != key {
                        self.warn(
                            "key-case",
                            &key_path,
                            format!("{key:?} is spelt with different case than the documented {canonical:?}"),
                            Some(format!("write {canonical:?}")),
                        );
                    }
                    found.push((canonical, value));
                }
                None => self.unknown_key(key, &key_path, known),
            }
        }
        Fields {
            path: path.to_string(),
            found,
        }
    }

    fn unknown_key(&mut self, key: &str, path: &str, known: &[&'static str]) {
        let message = format!("unknown key {key:?}");
        let (code, help) = if let Some(special) = misplaced_key_help(key, known) {
            ("misplaced-key", special)
        } else if let Some(close) = did_you_mean(key, known) {
            ("unknown-key", format!("did you mean {close:?}?"))
        } else {
            (
                "unknown-key",
                format!("the keys allowed here are: {}", known.join(", ")),
            )
        };
        self.error(code, path, message, Some(help));
    }

    fn string(&mut self, v: Option<&Value>, path: &str, example: &str) -> Got<String> {
        let Some(v) = v else { return Got::Absent };
        if self.arm_expression(v, path) {
            return Got::Skip;
        }
        match v {
            Value::String(s) => Got::Value(s.clone()),
            other => {
                self.wrong_type(other, path, "a string", example);
                Got::Skip
            }
        }
    }

    /// A boolean; the strings "true"/"false" are accepted with a warning.
    fn boolean(&mut self, v: Option<&Value>, path: &str) -> Got<bool> {
        let Some(v) = v else { return Got::Absent };
        if self.arm_expression(v, path) {
            return Got::Skip;
        }
        match v {
            Value::Bool(b) => Got::Value(*b),
            Value::String(s)
                if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") =>
            {
                let b = s.eq_ignore_ascii_case("true");
                self.warn(
                    "bool-as-string",
                    path,
                    format!("{s:?} is a string; accepted as the boolean {b}"),
                    Some(format!("write {b} without quotes")),
                );
                Got::Value(b)
            }
            other => {
                self.wrong_type(other, path, "a boolean", "true or false");
                Got::Skip
            }
        }
    }

    /// A non-negative integer from our own `"akvvm"` objects (strict: JSON numbers only).
    fn integer(&mut self, v: Option<&Value>, path: &str, min: u64, max: u64) -> Got<u64> {
        let Some(v) = v else { return Got::Absent };
        if self.arm_expression(v, path) {
            return Got::Skip;
        }
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Got::Value(n),
            Some(n) => {
                self.error(
                    "out-of-range",
                    path,
                    format!("{n} is out of range"),
                    Some(format!("use a whole number from {min} to {max}")),
                );
                Got::Skip
            }
            None => {
                self.error(
                    "wrong-type",
                    path,
                    format!("expected a whole number, found {}", compact(v)),
                    Some(format!(
                        "use a whole number from {min} to {max}, without quotes"
                    )),
                );
                Got::Skip
            }
        }
    }

    /// An absolute directory or file path.
    fn abs_path(&mut self, v: Option<&Value>, path: &str) -> Got<PathBuf> {
        match self.string(v, path, "\"/etc/ssl/akvvm\"") {
            Got::Value(s) => match check_abs_path(&s) {
                Ok(p) => Got::Value(p),
                Err(why) => {
                    self.error(
                        "bad-path",
                        path,
                        format!("{s:?} {why}"),
                        Some("use an absolute path such as \"/etc/ssl/akvvm\"".to_string()),
                    );
                    Got::Skip
                }
            },
            Got::Absent => Got::Absent,
            Got::Skip => Got::Skip,
        }
    }

    fn abs_paths(&mut self, v: Option<&Value>, path: &str) -> Got<Vec<PathBuf>> {
        let Some(v) = v else { return Got::Absent };
        if self.arm_expression(v, path) {
            return Got::Skip;
        }
        let Value::Array(items) = v else {
            self.wrong_type(v, path, "an array of paths", "[\"/etc/ssl/extra-ca.pem\"]");
            return Got::Skip;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Got::Value(p) = self.abs_path(Some(item), &join_index(path, i)) {
                out.push(p);
            }
        }
        Got::Value(out)
    }

    fn settings(&mut self, v: &Value, path: &str) -> Option<Settings> {
        if self.arm_expression(v, path) {
            return None;
        }
        let map = match v {
            Value::Object(map) => map,
            Value::String(s) => {
                self.settings_as_string(s, path);
                return None;
            }
            other => {
                self.error(
                    "not-an-object",
                    path,
                    format!(
                        "Failed to parse the configuration settings with: not an object: the settings are {}",
                        type_name(other)
                    ),
                    Some(
                        "the settings must be a JSON object such as \
                         {\"secretsManagementSettings\": {\"observedCertificates\": [\"https://myvault.vault.azure.net/secrets/mycert\"]}}"
                            .to_string(),
                    ),
                );
                return None;
            }
        };
        let fields = self.check_keys(map, path, ROOT_KEYS);

        let secrets_path = fields.path("secretsManagementSettings");
        let partial = match fields.get("secretsManagementSettings") {
            Some(secrets) => self.secrets_management(secrets, &secrets_path),
            None => {
                self.error(
                    "missing-key",
                    &secrets_path,
                    "secretsManagementSettings is missing: there is nothing to observe".to_string(),
                    Some(
                        "add \"secretsManagementSettings\": {\"observedCertificates\": \
                         [\"https://myvault.vault.azure.net/secrets/mycert\"]}"
                            .to_string(),
                    ),
                );
                None
            }
        };
        let authentication = match fields.get("authenticationSettings") {
            None => Some(Authentication::default_managed_identity()),
            Some(auth) => self.authentication(auth, &fields.path("authenticationSettings")),
        };
        self.extension_type_matches(authentication.as_ref(), &fields);
        let logging = fields
            .get("loggingSettings")
            .and_then(|l| self.logging(l, &fields.path("loggingSettings")));
        let agent = match fields.get("akvvm") {
            None => AgentOptions::default(),
            Some(a) => self.agent_options(a, &fields.path("akvvm")),
        };
        let partial = partial?;
        let authentication = authentication?;

        let shape = if matches!(authentication, Authentication::BootstrapCertificate { .. }) {
            Shape::PaaS
        } else if partial.any_object {
            Shape::V3
        } else {
            Shape::V1
        };
        Some(Settings {
            shape,
            polling_interval: partial.polling_interval,
            require_initial_sync: partial.require_initial_sync,
            acl_enabled: partial.acl_enabled,
            link_on_renewal: partial.link_on_renewal,
            store: partial.store,
            certificate_store_name: partial.certificate_store_name,
            observed: partial.observed,
            authentication,
            logging,
            agent,
        })
    }

    /// The escaped-JSON-string pitfall. When the string holds a JSON object, that object is
    /// validated too (its paths under [`string_path`]), so that one run reports everything to fix.
    fn settings_as_string(&mut self, s: &str, path: &str) {
        const MESSAGE: &str = "Failed to parse the configuration settings with: not an object: the \
             settings are a JSON string (escaped JSON, as PowerShell and shell quoting produce), \
             not a JSON object";
        const OBJECT_HELP: &str = "pass the settings as a JSON object such as \
             {\"secretsManagementSettings\": {\"observedCertificates\": [\"https://myvault.vault.azure.net/secrets/mycert\"]}}";
        match serde_json::from_str::<Value>(s) {
            Ok(inner @ Value::Object(_)) => {
                self.error(
                    "settings-is-string",
                    path,
                    MESSAGE.to_string(),
                    Some(
                        "the string holds settings JSON: pass that JSON as an object, not as a \
                         string. In a template write \"settings\": {\"secretsManagementSettings\": \
                         {...}} without quotes around the braces; in PowerShell build $settings as \
                         a HashTable (@{\"secretsManagementSettings\" = @{...}}); with the Azure CLI \
                         pass --settings @settings.json"
                            .to_string(),
                    ),
                );
                let report = parse(&inner, &self.string_options(path));
                self.diagnostics.extend(report.diagnostics);
                self.settings_in_string = report.settings.or(report.settings_in_string);
            }
            Ok(inner @ Value::String(_)) => {
                self.error(
                    "settings-is-string",
                    path,
                    format!("{MESSAGE}; the string holds another JSON string (escaped twice)"),
                    Some(
                        "the settings were escaped more than once: pass the JSON object itself"
                            .to_string(),
                    ),
                );
                let report = parse(&inner, &self.string_options(path));
                self.diagnostics.extend(report.diagnostics);
                self.settings_in_string = report.settings_in_string;
            }
            Ok(other) => self.error(
                "settings-is-string",
                path,
                format!(
                    "{MESSAGE}; the string's JSON is {}, not an object either",
                    type_name(&other)
                ),
                Some(OBJECT_HELP.to_string()),
            ),
            Err(e) => self.error(
                "settings-is-string",
                path,
                format!("{MESSAGE}; the string is not JSON either ({e})"),
                Some(OBJECT_HELP.to_string()),
            ),
        }
    }

    /// How to parse what a JSON string at `path` holds. ARM never looks inside a string, so
    /// expressions there stay literal text.
    fn string_options(&self, path: &str) -> ParseOptions {
        ParseOptions {
            base_path: string_path(path),
            arm_expressions: false,
            extension_type: self.options.extension_type.clone(),
        }
    }

    fn extension_type_matches(&mut self, auth: Option<&Authentication>, fields: &Fields<'_>) {
        let Some(ext) = self.options.extension_type.clone() else {
            return;
        };
        let path = fields.path("authenticationSettings");
        let paas = ext.eq_ignore_ascii_case("KeyVaultForPaaS");
        match auth {
            Some(Authentication::ManagedIdentity { .. }) if paas => self.error(
                "paas-needs-bootstrap",
                &path,
                "KeyVaultForPaaS authenticates with a bootstrap certificate, but authenticationSettings has no clientId and clientCertificateSubjectName".to_string(),
                Some("add \"authenticationSettings\": {\"clientId\": \"<Entra app id>\", \"clientCertificateSubjectName\": \"<subject, without CN=>\"}".to_string()),
            ),
            Some(Authentication::BootstrapCertificate { .. }) if !paas => self.warn(
                "bootstrap-outside-paas",
                &path,
                format!("bootstrap-certificate authentication is documented for KeyVaultForPaaS only, not {ext}; akvvm supports it anyway"),
                Some("keep it for akvvm; the shipped Key Vault extension for Linux or Windows needs a managed identity (msiEndpoint, msiClientId) instead".to_string()),
            ),
            _ => {}
        }
    }

    fn secrets_management(&mut self, v: &Value, path: &str) -> Option<PartialSecrets> {
        let fields = self.fields(v, path, SECRETS_KEYS, "{\"observedCertificates\": [...]}")?;
        let polling_interval = self
            .polling_interval(
                fields.get("pollingIntervalInS"),
                &fields.path("pollingIntervalInS"),
            )
            .or(DEFAULT_POLLING_INTERVAL);
        let certificate_store_name = self
            .store_name(
                fields.get("certificateStoreName"),
                &fields.path("certificateStoreName"),
            )
            .or(DEFAULT_CERTIFICATE_STORE_NAME.to_string());
        let store = self
            .store_location(
                fields.get("certificateStoreLocation"),
                &fields.path("certificateStoreLocation"),
            )
            .or(PathBuf::from(DEFAULT_STORE));
        let link_path = fields.path("linkOnRenewal");
        let link_on_renewal = self.boolean(fields.get("linkOnRenewal"), &link_path);
        if let Got::Value(b) = link_on_renewal {
            self.warn(
                "windows-only",
                &link_path,
                format!("linkOnRenewal ({b}) is a Windows feature (s-channel binding) and has no effect on Linux"),
                Some("akvvm's stable link <vault>.<certificate> always follows renewals; point applications at it".to_string()),
            );
        }
        let require_initial_sync = self
            .boolean(
                fields.get("requireInitialSync"),
                &fields.path("requireInitialSync"),
            )
            .or(false);
        let acl_enabled = self
            .boolean(fields.get("aclEnabled"), &fields.path("aclEnabled"))
            .or(false);

        let observed_path = fields.path("observedCertificates");
        let mut any_object = false;
        let mut observed = Vec::new();
        match fields.get("observedCertificates") {
            None => self.error(
                "missing-key",
                &observed_path,
                "observedCertificates is missing: there is nothing to observe".to_string(),
                Some("add \"observedCertificates\": [\"https://myvault.vault.azure.net/secrets/mycert\"]".to_string()),
            ),
            Some(v) if self.arm_expression(v, &observed_path) => {}
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    self.error(
                        "no-certificates",
                        &observed_path,
                        "observedCertificates is empty: there is nothing to observe".to_string(),
                        Some("list at least one URL such as \"https://myvault.vault.azure.net/secrets/mycert\"".to_string()),
                    );
                }
                for (i, item) in items.iter().enumerate() {
                    let item_path = join_index(&observed_path, i);
                    any_object |= item.is_object();
                    if let Some(cert) = self.observed(item, &item_path, &store, &certificate_store_name) {
                        observed.push((item_path, cert));
                    }
                }
            }
            Some(Value::String(s)) => self.error(
                "wrong-type",
                &observed_path,
                "observedCertificates must be a list, found a single string".to_string(),
                Some(format!("write [{}]", Value::from(s.as_str()))),
            ),
            Some(other) => self.wrong_type(other, &observed_path, "an array", "[\"https://myvault.vault.azure.net/secrets/mycert\"]"),
        }
        self.check_unique(&observed);
        if observed.iter().any(|(_, o)| !o.acls.is_empty()) && !acl_enabled {
            self.warn(
                "acls-without-acl-enabled",
                &fields.path("aclEnabled"),
                "some certificates have acls, but aclEnabled is not true: akvvm will not apply them"
                    .to_string(),
                Some("set \"aclEnabled\": true to grant the listed users and groups read access".to_string()),
            );
        }
        Some(PartialSecrets {
            polling_interval,
            require_initial_sync,
            acl_enabled,
            link_on_renewal: link_on_renewal.or(false),
            store,
            certificate_store_name,
            observed: observed.into_iter().map(|(_, c)| c).collect(),
            any_object,
        })
    }

    fn polling_interval(&mut self, v: Option<&Value>, path: &str) -> Got<Duration> {
        let Some(v) = v else { return Got::Absent };
        if self.arm_expression(v, path) {
            return Got::Skip;
        }
        let seconds = match v {
            Value::String(s) => s.trim().parse::<u64>().ok(),
            Value::Number(n) => {
                let n = n.as_u64();
                if let Some(n) = n {
                    self.warn(
                        "number-as-string",
                        path,
                        format!(
                            "pollingIntervalInS is documented as a string; accepted the number {n}"
                        ),
                        Some(format!("write \"{n}\"")),
                    );
                }
                n
            }
            _ => None,
        };
        match seconds {
            Some(0) => {
                self.error(
                    "out-of-range",
                    path,
                    "pollingIntervalInS is 0; the interval must be at least 1 second".to_string(),
                    Some("the default is \"3600\" (one hour)".to_string()),
                );
                Got::Skip
            }
            Some(s) => Got::Value(Duration::from_secs(s)),
            None => {
                self.error(
                    "bad-polling-interval",
                    path,
                    format!(
                        "pollingIntervalInS must be a whole number of seconds, found {}",
                        compact(v)
                    ),
                    Some("write it like \"3600\"".to_string()),
                );
                Got::Skip
            }
        }
    }

    fn store_name(&mut self, v: Option<&Value>, path: &str) -> Got<String> {
        let got = self.string(v, path, "\"MY\"");
        if let Got::Value(name) = &got
            && !name.eq_ignore_ascii_case(DEFAULT_CERTIFICATE_STORE_NAME)
        {
            self.warn(
                    "windows-only",
                    path,
                    format!("certificateStoreName {name:?} names a Windows certificate store; on Linux it is recorded only and does not change where certificates go"),
                    Some("use certificateStoreLocation to choose the directory".to_string()),
                );
        }
        got
    }

    fn store_location(&mut self, v: Option<&Value>, path: &str) -> Got<PathBuf> {
        match self.string(
            v,
            path,
            "\"/var/lib/waagent/Microsoft.Azure.KeyVault.Store\"",
        ) {
            Got::Value(s)
                if s.eq_ignore_ascii_case("LocalMachine")
                    || s.eq_ignore_ascii_case("CurrentUser") =>
            {
                self.warn(
                    "windows-only",
                    path,
                    format!("certificateStoreLocation {s:?} is a Windows store location; on Linux akvvm uses the default directory {DEFAULT_STORE}"),
                    Some("give an absolute directory to choose another place".to_string()),
                );
                Got::Value(PathBuf::from(DEFAULT_STORE))
            }
            Got::Value(s) => match check_abs_path(&s) {
                Ok(p) => Got::Value(p),
                Err(why) => {
                    self.error(
                        "bad-store-location",
                        path,
                        format!("certificateStoreLocation {s:?} {why}"),
                        Some(format!(
                            "use an absolute directory such as \"{DEFAULT_STORE}\""
                        )),
                    );
                    Got::Skip
                }
            },
            other => other.skip_unless_absent(),
        }
    }

    fn observed(
        &mut self,
        v: &Value,
        path: &str,
        default_store: &Path,
        default_store_name: &str,
    ) -> Option<ObservedCertificate> {
        if self.arm_expression(v, path) {
            return None;
        }
        match v {
            Value::String(s) => {
                let url = self.secret_url(s, path)?;
                Some(ObservedCertificate {
                    url,
                    store_dir: default_store.to_path_buf(),
                    link_name: None,
                    acls: Vec::new(),
                    certificate_store_name: default_store_name.to_string(),
                    options: CertificateOptions::default(),
                })
            }
            Value::Object(map) => {
                let fields = self.check_keys(map, path, OBSERVED_KEYS);
                let url_path = fields.path("url");
                let url = match self.string(
                    fields.get("url"),
                    &url_path,
                    "\"https://myvault.vault.azure.net/secrets/mycert\"",
                ) {
                    Got::Value(s) => self.secret_url(&s, &url_path),
                    Got::Absent => {
                        self.error(
                            "missing-key",
                            &url_path,
                            "this certificate object has no url".to_string(),
                            Some(
                                "add \"url\": \"https://myvault.vault.azure.net/secrets/mycert\""
                                    .to_string(),
                            ),
                        );
                        None
                    }
                    Got::Skip => None,
                };
                let store_name = self
                    .store_name(
                        fields.get("certificateStoreName"),
                        &fields.path("certificateStoreName"),
                    )
                    .or(default_store_name.to_string());
                let store_dir = self
                    .store_location(
                        fields.get("certificateStoreLocation"),
                        &fields.path("certificateStoreLocation"),
                    )
                    .or(default_store.to_path_buf());
                let link_name = self.link_name(
                    fields.get("customSymbolicLinkName"),
                    &fields.path("customSymbolicLinkName"),
                );
                let acls = self.acls(fields.get("acls"), &fields.path("acls"));
                let key_path = fields.path("keyExportable");
                if let Got::Value(b) = self.boolean(fields.get("keyExportable"), &key_path) {
                    self.warn(
                        "windows-only",
                        &key_path,
                        format!("keyExportable ({b}) is a Windows setting; on Linux the private key is always written to the certificate file (mode 0600)"),
                        Some("control who may read it with acls and aclEnabled".to_string()),
                    );
                }
                let accounts_path = fields.path("accounts");
                if let Some(accounts) = fields.get("accounts")
                    && !self.arm_expression(accounts, &accounts_path)
                {
                    match accounts {
                            Value::Array(items) if items.iter().all(Value::is_string) => self.warn(
                                "windows-only",
                                &accounts_path,
                                "accounts names Windows accounts that get access to the private key; akvvm ignores it on Linux".to_string(),
                                Some("grant Linux users or groups read access with \"acls\": [{\"user\": \"www-data\"}] and \"aclEnabled\": true".to_string()),
                            ),
                            other => self.wrong_type(other, &accounts_path, "an array of account names", "[\"Network Service\"]"),
                        }
                }
                let options = match fields.get("akvvm") {
                    None => CertificateOptions::default(),
                    Some(o) => self.certificate_options(o, &fields.path("akvvm")),
                };
                Some(ObservedCertificate {
                    url: url?,
                    store_dir,
                    link_name: link_name.value(),
                    acls,
                    certificate_store_name: store_name,
                    options,
                })
            }
            other => {
                self.wrong_type(
                    other,
                    path,
                    "a URL string or a certificate object",
                    "\"https://myvault.vault.azure.net/secrets/mycert\" or {\"url\": \"...\"}",
                );
                None
            }
        }
    }

    fn secret_url(&mut self, s: &str, path: &str) -> Option<SecretUrl> {
        match SecretUrl::parse(s.trim()) {
            Ok(url) => {
                if s.trim() != s {
                    self.warn(
                        "whitespace",
                        path,
                        format!("{s:?} has spaces around the URL; they are ignored"),
                        Some("remove them".to_string()),
                    );
                }
                if url.vault_host() == VaultHost::PrivateEndpoint {
                    let suffixes: Vec<&str> =
                        KNOWN_VAULT_SUFFIXES.iter().map(|(s, _)| *s).collect();
                    self.warn(
                        "private-endpoint-host",
                        path,
                        format!("{} is not under a known Key Vault DNS suffix ({}); it is treated as a private endpoint host", url.host, suffixes.join(", ")),
                        Some("if this is a typo, use <vault>.vault.azure.net; a private endpoint normally keeps the vault.azure.net name".to_string()),
                    );
                }
                Some(url)
            }
            Err(e) => {
                self.error(
                    e.code(),
                    path,
                    e.to_string(),
                    Some("an observed certificate is https://<vault>.vault.azure.net/secrets/<name>, or .../secrets/<name>/<version> to pin a version (copy the certificate's Secret Identifier)".to_string()),
                );
                None
            }
        }
    }

    fn link_name(&mut self, v: Option<&Value>, path: &str) -> Got<String> {
        match self.string(v, path, "\"web\"") {
            Got::Value(name) => {
                let bad = name.is_empty()
                    || name == "."
                    || name == ".."
                    || name.contains('/')
                    || name.contains('\0')
                    || name.len() > 255;
                if bad {
                    self.error(
                        "bad-link-name",
                        path,
                        format!("customSymbolicLinkName {name:?} is not a file name"),
                        Some("use a plain name (no '/', not '.' or '..', at most 255 bytes); the link is created in the certificate's store directory".to_string()),
                    );
                    Got::Skip
                } else {
                    Got::Value(name)
                }
            }
            other => other,
        }
    }

    fn acls(&mut self, v: Option<&Value>, path: &str) -> Vec<AclEntry> {
        let Some(v) = v else { return Vec::new() };
        if self.arm_expression(v, path) {
            return Vec::new();
        }
        let Value::Array(items) = v else {
            self.wrong_type(
                v,
                path,
                "an array",
                "[{\"user\": \"www-data\"}, {\"group\": \"ssl-cert\"}]",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = join_index(path, i);
            let Some(fields) = self.fields(item, &item_path, ACL_KEYS, "{\"user\": \"www-data\"}")
            else {
                continue;
            };
            let user = self.string(fields.get("user"), &fields.path("user"), "\"www-data\"");
            let group = self.string(fields.get("group"), &fields.path("group"), "\"ssl-cert\"");
            let (entry, which) = match (user, group) {
                (Got::Value(u), Got::Absent) => (AclEntry::User(u.clone()), ("user", u)),
                (Got::Absent, Got::Value(g)) => (AclEntry::Group(g.clone()), ("group", g)),
                (Got::Absent, Got::Absent) => {
                    self.error(
                        "bad-acl",
                        &item_path,
                        "an acls entry needs a user or a group".to_string(),
                        Some(
                            "write {\"user\": \"www-data\"} or {\"group\": \"ssl-cert\"}"
                                .to_string(),
                        ),
                    );
                    continue;
                }
                (Got::Value(_), Got::Value(_)) => {
                    self.error(
                        "bad-acl",
                        &item_path,
                        "an acls entry has both a user and a group".to_string(),
                        Some("write one entry per user or group".to_string()),
                    );
                    continue;
                }
                // A value already reported as wrong, or an unresolved ARM expression.
                _ => continue,
            };
            if !is_valid_account_name(&which.1) {
                self.error(
                    "bad-acl",
                    &join_key(&item_path, which.0),
                    format!("{:?} is not a valid {} name", which.1, which.0),
                    Some("use a Linux user or group name (or a numeric id) without spaces, ':' or ','".to_string()),
                );
                continue;
            }
            out.push(entry);
        }
        out
    }

    /// No secret observed twice into the same directory, and no two links with the same path.
    fn check_unique(&mut self, observed: &[(String, ObservedCertificate)]) {
        let mut links: BTreeMap<PathBuf, String> = BTreeMap::new();
        for (i, (path, cert)) in observed.iter().enumerate() {
            if let Some((first, _)) = observed[..i]
                .iter()
                .find(|(_, c)| c.url.same_secret(&cert.url) && c.store_dir == cert.store_dir)
            {
                self.error(
                    "duplicate-certificate",
                    path,
                    format!("{} is observed twice into {} (first at {first})", cert.url.latest_url(), cert.store_dir.display()),
                    Some("remove one of them, or give them different certificateStoreLocation directories".to_string()),
                );
                continue;
            }
            let mut names = vec![(cert.stable_link(), path.clone())];
            if let Some(link) = &cert.link_name {
                names.push((
                    cert.store_dir.join(link),
                    join_key(path, "customSymbolicLinkName"),
                ));
            }
            for (link, link_path) in names {
                if let Some(first) = links.get(&link) {
                    self.error(
                        "duplicate-link",
                        &link_path,
                        format!(
                            "{} would be created twice (also by {first})",
                            link.display()
                        ),
                        Some("choose a different customSymbolicLinkName".to_string()),
                    );
                } else {
                    links.insert(link, link_path);
                }
            }
        }
    }

    fn authentication(&mut self, v: &Value, path: &str) -> Option<Authentication> {
        let fields = self.fields(v, path, AUTH_KEYS, "{\"msiEndpoint\": \"http://169.254.169.254/metadata/identity\", \"msiClientId\": \"<client id>\"}")?;
        let msi_endpoint = self.string(
            fields.get("msiEndpoint"),
            &fields.path("msiEndpoint"),
            "\"http://169.254.169.254/metadata/identity\"",
        );
        let msi_client_id = self.string(
            fields.get("msiClientId"),
            &fields.path("msiClientId"),
            "\"c7373ae5-91c2-4165-8ab6-7381d6e75619\"",
        );
        let client_id = self.string(
            fields.get("clientId"),
            &fields.path("clientId"),
            "\"<Entra application id>\"",
        );
        let subject = self.string(
            fields.get("clientCertificateSubjectName"),
            &fields.path("clientCertificateSubjectName"),
            "\"bootstrap.example.com\"",
        );

        let uses_msi = msi_endpoint.is_present() || msi_client_id.is_present();
        let uses_app = client_id.is_present() || subject.is_present();
        if uses_msi && uses_app {
            self.error(
                "mixed-authentication",
                path,
                "authenticationSettings mixes managed identity (msiEndpoint, msiClientId) with bootstrap-certificate authentication (clientId, clientCertificateSubjectName)".to_string(),
                Some("keep msiEndpoint/msiClientId for a VM or scale set, or clientId/clientCertificateSubjectName for KeyVaultForPaaS".to_string()),
            );
            return None;
        }
        if uses_app {
            return self.bootstrap(client_id, subject, &fields);
        }
        let client_id_path = fields.path("msiClientId");
        let client_id_given = matches!(&msi_client_id, Got::Value(id) if !id.trim().is_empty())
            || matches!(msi_client_id, Got::Skip);
        let client_id = match msi_client_id {
            Got::Value(id) if id.trim().is_empty() => {
                self.warn(
                    "empty-client-id",
                    &client_id_path,
                    "msiClientId is empty: the system-assigned identity is used".to_string(),
                    Some(
                        "remove msiClientId, or give the user-assigned identity's client id"
                            .to_string(),
                    ),
                );
                None
            }
            Got::Value(id) => {
                if !is_guid(&id) {
                    self.warn("client-id-not-guid", &client_id_path, format!("msiClientId {id:?} is not a GUID; managed identity client ids look like c7373ae5-91c2-4165-8ab6-7381d6e75619"), Some("use the identity's client id (not its object id or resource id)".to_string()));
                }
                Some(id)
            }
            Got::Absent | Got::Skip => None,
        };
        let endpoint_path = fields.path("msiEndpoint");
        let endpoint = match msi_endpoint {
            Got::Value(e) => self.msi_endpoint(&e, &endpoint_path)?,
            Got::Absent => {
                if client_id_given {
                    self.error(
                        "msi-endpoint-required",
                        &endpoint_path,
                        "msiEndpoint is required when msiClientId is set".to_string(),
                        Some(format!("add \"msiEndpoint\": \"{DEFAULT_MSI_ENDPOINT}\"")),
                    );
                    return None;
                }
                Url::parse(DEFAULT_MSI_ENDPOINT).expect("default endpoint is a URL")
            }
            Got::Skip => return None,
        };
        if client_id.is_some()
            && crate::identity::is_arc_endpoint(&crate::identity::imds_token_url(&endpoint))
        {
            self.warn(
                "arc-user-assigned",
                &client_id_path,
                "this is the Azure Arc identity endpoint, and an Azure Arc server has only its \
                 system-assigned identity: msiClientId names an identity it does not have"
                    .to_string(),
                Some(
                    "remove msiClientId and grant the server's own identity (the Arc machine \
                     resource) the \"Key Vault Secrets User\" role"
                        .to_string(),
                ),
            );
        }
        Some(Authentication::ManagedIdentity {
            endpoint,
            client_id,
        })
    }

    fn bootstrap(
        &mut self,
        client_id: Got<String>,
        subject: Got<String>,
        fields: &Fields<'_>,
    ) -> Option<Authentication> {
        let client_path = fields.path("clientId");
        let subject_path = fields.path("clientCertificateSubjectName");
        let client_id = match client_id {
            Got::Value(id) if id.trim().is_empty() => {
                self.error("missing-key", &client_path, "clientId is empty".to_string(), Some("give the Entra application (client) id of the app that holds the bootstrap certificate".to_string()));
                None
            }
            Got::Value(id) => {
                if !is_guid(&id) {
                    self.warn("client-id-not-guid", &client_path, format!("clientId {id:?} is not a GUID; Entra application ids look like c7373ae5-91c2-4165-8ab6-7381d6e75619"), Some("use the app registration's Application (client) ID".to_string()));
                }
                Some(id)
            }
            Got::Absent => {
                self.error(
                    "missing-key",
                    &client_path,
                    "clientId is missing (required with clientCertificateSubjectName)".to_string(),
                    Some("add \"clientId\": \"<Entra application id>\"".to_string()),
                );
                None
            }
            Got::Skip => None,
        };
        let subject = match subject {
            Got::Value(s) => {
                let trimmed = s.trim();
                if trimmed
                    .get(..3)
                    .is_some_and(|p| p.eq_ignore_ascii_case("CN="))
                {
                    self.error(
                        "subject-has-cn",
                        &subject_path,
                        format!("clientCertificateSubjectName {s:?} starts with \"CN=\"; the extension matches the subject name without it and would find no certificate"),
                        Some(format!("write {:?}", trimmed[3..].trim())),
                    );
                    None
                } else if trimmed.is_empty() {
                    self.error(
                        "missing-key",
                        &subject_path,
                        "clientCertificateSubjectName is empty".to_string(),
                        Some(
                            "give the bootstrap certificate's subject name, without CN="
                                .to_string(),
                        ),
                    );
                    None
                } else {
                    Some(s)
                }
            }
            Got::Absent => {
                self.error("missing-key", &subject_path, "clientCertificateSubjectName is missing (required with clientId)".to_string(), Some("add \"clientCertificateSubjectName\": \"<bootstrap certificate subject, without CN=>\"".to_string()));
                None
            }
            Got::Skip => None,
        };
        Some(Authentication::BootstrapCertificate {
            client_id: client_id?,
            subject_name: subject?,
        })
    }

    /// `msiEndpoint`, with or without `/oauth2/token`; normalised without it.
    fn msi_endpoint(&mut self, s: &str, path: &str) -> Option<Url> {
        let example = format!("write \"{DEFAULT_MSI_ENDPOINT}\"");
        if let Some((scheme, rest)) = s.split_once("://")
            && rest.starts_with('/')
        {
            self.error(
                    "msi-endpoint-malformed",
                    path,
                    format!("msiEndpoint {s:?} is malformed: {scheme}:// is followed by another '/', so the host is missing"),
                    Some(example),
                );
            return None;
        }
        let url = match Url::parse(s) {
            Ok(url) => url,
            Err(e) => {
                self.error(
                    "msi-endpoint-malformed",
                    path,
                    format!("msiEndpoint {s:?} is not a URL ({e})"),
                    Some(example),
                );
                return None;
            }
        };
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            self.error(
                "msi-endpoint-malformed",
                path,
                format!("msiEndpoint {s:?} must be an http(s) URL with a host"),
                Some(example),
            );
            return None;
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            self.error("msi-endpoint-malformed", path, format!("msiEndpoint {s:?} must not carry a query, fragment or user name; akvvm adds the query itself"), Some(example));
            return None;
        }
        let mut base = url.path().trim_end_matches('/').to_string();
        if let Some(stripped) = base.strip_suffix("/oauth2/token") {
            base = stripped.to_string();
        } else if let Some(stripped) = base.strip_suffix("/ouath2/token") {
            self.warn(
                "msi-endpoint-typo",
                path,
                format!("msiEndpoint {s:?} ends with \"/ouath2/token\" (a typo copied from the documentation); accepted as /oauth2/token"),
                Some(example.clone()),
            );
            base = stripped.to_string();
        }
        let mut endpoint = url.clone();
        endpoint.set_path(&base);
        Some(endpoint)
    }

    fn logging(&mut self, v: &Value, path: &str) -> Option<LoggingSettings> {
        let fields = self.fields(
            v,
            path,
            LOGGING_KEYS,
            "{\"logger\": \"fluentd\", \"endpoint\": \"tcp://localhost:24224\"}",
        )?;
        let logging = LoggingSettings {
            logger: self
                .string(fields.get("logger"), &fields.path("logger"), "\"fluentd\"")
                .value(),
            endpoint: self
                .string(
                    fields.get("endpoint"),
                    &fields.path("endpoint"),
                    "\"tcp://localhost:24224\"",
                )
                .value(),
            format: self
                .string(fields.get("format"), &fields.path("format"), "\"forward\"")
                .value(),
            service_name: self
                .string(
                    fields.get("servicename"),
                    &fields.path("servicename"),
                    "\"akvvm_service\"",
                )
                .value(),
        };
        if let Some(logger) = &logging.logger {
            self.warn(
                "logging-recorded",
                path,
                format!("loggingSettings are recorded, but akvvm does not forward logs to {logger:?}; it logs to stderr (the systemd journal)"),
                Some("collect the akvvm unit's journal with your log shipper".to_string()),
            );
        }
        Some(logging)
    }

    fn agent_options(&mut self, v: &Value, path: &str) -> AgentOptions {
        let defaults = AgentOptions::default();
        let Some(fields) = self.fields(v, path, AGENT_KEYS, "{\"keepVersions\": 2}") else {
            return defaults;
        };
        let state_directory = self
            .abs_path(fields.get("stateDirectory"), &fields.path("stateDirectory"))
            .or(defaults.state_directory);
        let keep_versions = self
            .integer(
                fields.get("keepVersions"),
                &fields.path("keepVersions"),
                1,
                u64::from(u32::MAX),
            )
            .value()
            .and_then(|n| NonZeroU32::new(u32::try_from(n).ok()?))
            .unwrap_or(defaults.keep_versions);
        let initial_sync_retries = self
            .integer(
                fields.get("initialSyncRetries"),
                &fields.path("initialSyncRetries"),
                0,
                u64::from(u32::MAX),
            )
            .value()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(defaults.initial_sync_retries);
        let ca_certificates = self
            .abs_paths(fields.get("caCertificates"), &fields.path("caCertificates"))
            .or(defaults.ca_certificates);
        let resolve = self.resolve(fields.get("resolve"), &fields.path("resolve"));
        let authority_host = self
            .authority_host(fields.get("authorityHost"), &fields.path("authorityHost"))
            .or(defaults.authority_host);
        let bootstrap_certificate_directories = self
            .abs_paths(
                fields.get("bootstrapCertificateDirectories"),
                &fields.path("bootstrapCertificateDirectories"),
            )
            .or(defaults.bootstrap_certificate_directories);
        let concurrency_per_vault = self
            .integer(
                fields.get("concurrencyPerVault"),
                &fields.path("concurrencyPerVault"),
                1,
                1024,
            )
            .value()
            .and_then(|n| NonZeroUsize::new(usize::try_from(n).ok()?))
            .unwrap_or(defaults.concurrency_per_vault);
        let expiry_warning_days = self
            .integer(
                fields.get("expiryWarningDays"),
                &fields.path("expiryWarningDays"),
                0,
                3650,
            )
            .value()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(defaults.expiry_warning_days);
        let reload = fields
            .get("reload")
            .and_then(|r| self.reload(r, &fields.path("reload")));
        let certbot_layout = self
            .boolean(fields.get("certbotLayout"), &fields.path("certbotLayout"))
            .or(defaults.certbot_layout);
        let metrics_address = self
            .metrics_address(fields.get("metricsAddress"), &fields.path("metricsAddress"))
            .value()
            .or(defaults.metrics_address);
        let webhook = fields
            .get("webhook")
            .and_then(|w| self.webhook(w, &fields.path("webhook")));
        AgentOptions {
            state_directory,
            keep_versions,
            initial_sync_retries,
            ca_certificates,
            resolve,
            authority_host,
            bootstrap_certificate_directories,
            concurrency_per_vault,
            expiry_warning_days,
            reload,
            certbot_layout,
            metrics_address,
            webhook,
        }
    }

    /// `webhook`: where Event Grid delivers Key Vault's new-version events.
    fn webhook(&mut self, v: &Value, path: &str) -> Option<WebhookSettings> {
        let example = "{\"address\": \"0.0.0.0:8443\", \"certificateFile\": \"/var/lib/waagent/Microsoft.Azure.KeyVault.Store/myvault.webhook\", \"secretFile\": \"/etc/akvvm/webhook-secret\"}";
        let fields = self.fields(v, path, WEBHOOK_KEYS, example)?;
        let address_path = fields.path("address");
        let address = match self.string(fields.get("address"), &address_path, "\"0.0.0.0:8443\"") {
            Got::Value(s) => match s.parse::<SocketAddr>() {
                Ok(address) => Some(address),
                Err(_) => {
                    self.error(
                        "bad-webhook-address",
                        &address_path,
                        format!("address {s:?} is not an IP address and port"),
                        Some("write \"0.0.0.0:8443\" (every interface) or \"127.0.0.1:8080\" (behind a local proxy)".to_string()),
                    );
                    None
                }
            },
            Got::Absent => {
                self.error(
                    "missing-key",
                    &address_path,
                    "the webhook needs an address to listen on".to_string(),
                    Some(format!("write {example}")),
                );
                None
            }
            Got::Skip => None,
        };
        let route_path = fields.path("path");
        let route = match self.string(fields.get("path"), &route_path, "\"/eventgrid\"") {
            Got::Value(p)
                if p.starts_with('/')
                    && p.len() > 1
                    && !p.contains(['?', '#', ' ', '{', '}', '*']) =>
            {
                Some(p)
            }
            Got::Value(p) => {
                self.error(
                    "bad-webhook-path",
                    &route_path,
                    format!("path {p:?} is not a URL path"),
                    Some("write a path such as \"/eventgrid\" (no query string: the secret goes in ?key=)".to_string()),
                );
                None
            }
            Got::Absent => Some(DEFAULT_WEBHOOK_PATH.to_string()),
            Got::Skip => None,
        };
        let certificate_file = self
            .abs_path(
                fields.get("certificateFile"),
                &fields.path("certificateFile"),
            )
            .value();
        let secret_file = self
            .abs_path(fields.get("secretFile"), &fields.path("secretFile"))
            .value();
        let (address, route) = (address?, route?);
        if fields.get("secretFile").is_none() {
            self.warn(
                "webhook-without-secret",
                path,
                "the webhook has no secretFile: anyone who reaches it can make the agent poll \
                 Key Vault"
                    .to_string(),
                Some(
                    "write a random secret in a file readable by root only, name it in \
                     secretFile, and add ?key=<secret> to the Event Grid subscription's \
                     endpoint URL"
                        .to_string(),
                ),
            );
        }
        if fields.get("certificateFile").is_none() && !address.ip().is_loopback() {
            self.warn(
                "webhook-without-tls",
                path,
                format!(
                    "the webhook on {address} serves plain HTTP, and Event Grid delivers only to \
                     HTTPS endpoints"
                ),
                Some(
                    "name a PEM with the chain and its key in certificateFile (an observed \
                     certificate's stable link will do), or listen on 127.0.0.1 behind a \
                     TLS-terminating proxy"
                        .to_string(),
                ),
            );
        }
        Some(WebhookSettings {
            address,
            path: route,
            certificate_file,
            secret_file,
        })
    }

    /// `metricsAddress`: an `IP:port` to serve Prometheus metrics on.
    fn metrics_address(&mut self, v: Option<&Value>, path: &str) -> Got<SocketAddr> {
        match self.string(v, path, "\"127.0.0.1:9464\"") {
            Got::Value(s) => match s.parse::<SocketAddr>() {
                Ok(address) => {
                    if !address.ip().is_loopback() {
                        self.warn(
                            "metrics-not-loopback",
                            path,
                            format!(
                                "metrics on {address} are served without authentication to \
                                 anyone who can reach that address (certificate names, versions, \
                                 expiry and errors)"
                            ),
                            Some(
                                "prefer a loopback address such as \"127.0.0.1:9464\" and let a \
                                 local Prometheus agent scrape it"
                                    .to_string(),
                            ),
                        );
                    }
                    Got::Value(address)
                }
                Err(_) => {
                    self.error(
                        "bad-metrics-address",
                        path,
                        format!("metricsAddress {s:?} is not an IP address and port"),
                        Some(
                            "write \"127.0.0.1:9464\" or \"[::1]:9464\" (no host names, no \
                             scheme or path: metrics are served at /metrics)"
                                .to_string(),
                        ),
                    );
                    Got::Skip
                }
            },
            other => other.skip_unless_absent(),
        }
    }

    fn resolve(&mut self, v: Option<&Value>, path: &str) -> BTreeMap<String, ResolveTarget> {
        let mut out = BTreeMap::new();
        let Some(v) = v else { return out };
        if self.arm_expression(v, path) {
            return out;
        }
        let Value::Object(map) = v else {
            self.wrong_type(
                v,
                path,
                "an object mapping host names to addresses",
                "{\"myvault.vault.azure.net\": \"127.0.0.1:8443\"}",
            );
            return out;
        };
        for (host, target) in map {
            let entry_path = join_key(path, host);
            let host_ok = !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !host_ok {
                self.error(
                    "bad-resolve",
                    &entry_path,
                    format!("{host:?} is not a host name"),
                    Some("use a DNS name such as \"myvault.vault.azure.net\"".to_string()),
                );
                continue;
            }
            let Got::Value(s) = self.string(Some(target), &entry_path, "\"127.0.0.1:8443\"") else {
                continue;
            };
            let parsed = s
                .parse::<SocketAddr>()
                .map(ResolveTarget::Socket)
                .or_else(|_| s.parse::<IpAddr>().map(ResolveTarget::Ip));
            match parsed {
                Ok(t) => {
                    out.insert(host.to_ascii_lowercase(), t);
                }
                Err(_) => self.error(
                    "bad-resolve",
                    &entry_path,
                    format!("{s:?} is not an IP address or IP:port"),
                    Some("write \"10.0.0.5\", \"127.0.0.1:8443\" or \"[::1]:8443\"".to_string()),
                ),
            }
        }
        out
    }

    fn authority_host(&mut self, v: Option<&Value>, path: &str) -> Got<Url> {
        match self.string(v, path, "\"https://login.microsoftonline.com\"") {
            Got::Value(s) => match Url::parse(&s) {
                Ok(url)
                    if url.scheme() == "https"
                        && url.host_str().is_some_and(|h| !h.is_empty())
                        && url.query().is_none() =>
                {
                    Got::Value(url)
                }
                _ => {
                    self.error("bad-authority-host", path, format!("authorityHost {s:?} is not an https URL"), Some("write \"https://login.microsoftonline.com\" (or your cloud's authority)".to_string()));
                    Got::Skip
                }
            },
            other => other.skip_unless_absent(),
        }
    }

    fn certificate_options(&mut self, v: &Value, path: &str) -> CertificateOptions {
        let Some(fields) = self.fields(
            v,
            path,
            CERT_OPTION_KEYS,
            "{\"reload\": {\"command\": [\"systemctl\", \"reload\", \"nginx\"]}}",
        ) else {
            return CertificateOptions::default();
        };
        CertificateOptions {
            reload: fields
                .get("reload")
                .and_then(|r| self.reload(r, &fields.path("reload"))),
            certbot_layout: self
                .boolean(fields.get("certbotLayout"), &fields.path("certbotLayout"))
                .value(),
        }
    }

    fn reload(&mut self, v: &Value, path: &str) -> Option<ReloadHook> {
        let example = "{\"command\": [\"systemctl\", \"reload\", \"nginx\"], \"timeoutInS\": 30}";
        let fields = self.fields(v, path, RELOAD_KEYS, example)?;
        let command_path = fields.path("command");
        let timeout = self
            .integer(
                fields.get("timeoutInS"),
                &fields.path("timeoutInS"),
                1,
                86_400,
            )
            .value()
            .map_or(DEFAULT_RELOAD_TIMEOUT, Duration::from_secs);
        let command = match fields.get("command") {
            None => {
                self.error(
                    "missing-key",
                    &command_path,
                    "a reload hook needs a command".to_string(),
                    Some(format!("write {example}")),
                );
                return None;
            }
            Some(c) if self.arm_expression(c, &command_path) => return None,
            Some(Value::String(s)) => {
                self.error(
                    "reload-command-string",
                    &command_path,
                    format!("command {s:?} is a string; akvvm runs an argument list and never a shell string"),
                    Some(format!("write [{}]", s.split_whitespace().map(|w| Value::from(w).to_string()).collect::<Vec<_>>().join(", "))),
                );
                return None;
            }
            Some(Value::Array(items))
                if !items.is_empty()
                    && items
                        .iter()
                        .all(|i| i.as_str().is_some_and(|s| !s.is_empty())) =>
            {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            }
            Some(other) => {
                self.error(
                    "bad-reload-command",
                    &command_path,
                    format!(
                        "command must be a non-empty list of non-empty strings, found {}",
                        compact(other)
                    ),
                    Some(format!("write {example}")),
                );
                return None;
            }
        };
        Some(ReloadHook { command, timeout })
    }
}

struct PartialSecrets {
    polling_interval: Duration,
    require_initial_sync: bool,
    acl_enabled: bool,
    link_on_renewal: bool,
    store: PathBuf,
    certificate_store_name: String,
    observed: Vec<ObservedCertificate>,
    any_object: bool,
}

/// Explains a key that is known elsewhere (a likely misplacement), for the unknown-key error.
fn misplaced_key_help(key: &str, here: &[&str]) -> Option<String> {
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

fn is_valid_account_name(name: &str) -> bool {
    (1..=256).contains(&name.len())
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !matches!(c, ':' | ',' | '/'))
}

fn check_abs_path(s: &str) -> Result<PathBuf, &'static str> {
    let p = Path::new(s);
    if s.is_empty() {
        return Err("is empty");
    }
    if s.contains('\0') {
        return Err("contains a NUL byte");
    }
    if !p.is_absolute() {
        return Err("is not an absolute path");
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err("contains '..'");
    }
    Ok(p.to_path_buf())
}

/// A value shown in a message, shortened.
fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}
