//! Reading settings JSON into [`Settings`]: the settings object, the mode, and the
//! escaped-JSON-string pitfall. The keys each object accepts (with where a misplaced key
//! belongs) are in `keys.rs`, the parser's state in `ctx.rs`. The sections have their own
//! files: `secrets.rs` (`secretsManagementSettings`), `authentication.rs`
//! (`authenticationSettings`), `logging.rs` (`loggingSettings`) and `own_options.rs` (the
//! `"akvvm"` objects), all on the reader in `read.rs`.

use serde_json::Value;

use super::ctx::{Ctx, ParseOptions, Unresolved};
use super::diagnostic::Diagnostic;
use super::keys::ROOT_KEYS;
use super::mode::{ModeChoice, VersionOrigin, mode_of_version};
use super::model::{AgentOptions, Authentication, Settings, Shape};
use super::read::{Fields, type_name};

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
    /// The mode the settings were checked against (known even when they have errors).
    pub mode: ModeChoice,
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

/// Parses and validates a settings object.
pub fn parse(value: &Value, options: &ParseOptions) -> Report {
    let mut cx = Ctx {
        options,
        diagnostics: Vec::new(),
        unresolved: Vec::new(),
        settings_in_string: None,
        mode: ModeChoice::default(),
    };
    let settings = cx.settings(value, &options.base_path);
    let has_errors = cx.diagnostics.iter().any(Diagnostic::is_error);
    Report {
        settings: if has_errors { None } else { settings },
        diagnostics: cx.diagnostics,
        unresolved: cx.unresolved,
        settings_in_string: cx.settings_in_string,
        mode: cx.mode,
    }
}

/// The path of what an escaped JSON string at `path` holds: `settings(string)`, so that a key
/// inside reads `settings(string).secretsManagementSettings`.
pub fn string_path(path: &str) -> String {
    format!("{path}(string)")
}

impl Ctx<'_> {
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
                )
                .help("the settings must be a JSON object such as \
                         {\"secretsManagementSettings\": {\"observedCertificates\": [\"https://myvault.vault.azure.net/secrets/mycert\"]}}");
                return None;
            }
        };
        let fields = self.check_keys(map, path, ROOT_KEYS);
        self.mode = self.choose_mode(&fields);

        let secrets_path = fields.path("secretsManagementSettings");
        let partial = match fields.get("secretsManagementSettings") {
            Some(secrets) => self.secrets_management(secrets, &secrets_path),
            None => {
                self.error(
                    "missing-key",
                    &secrets_path,
                    "secretsManagementSettings is missing: there is nothing to observe",
                )
                .help(
                    "add \"secretsManagementSettings\": {\"observedCertificates\": \
                         [\"https://myvault.vault.azure.net/secrets/mycert\"]}",
                );
                None
            }
        };
        let authentication = match fields.get("authenticationSettings") {
            None => Some(Authentication::default_managed_identity()),
            Some(auth) => self.authentication(auth, &fields.path("authenticationSettings")),
        };
        self.extension_type_matches(authentication.as_ref(), &fields);
        if let Some(partial) = &partial {
            self.overrides_match(authentication.as_ref(), &partial.override_paths);
        }
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
            mode: self.mode.clone(),
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
                    MESSAGE,
                )
                .help("the string holds settings JSON: pass that JSON as an object, not as a \
                         string. In a template write \"settings\": {\"secretsManagementSettings\": \
                         {...}} without quotes around the braces; in PowerShell build $settings as \
                         a HashTable (@{\"secretsManagementSettings\" = @{...}}); with the Azure CLI \
                         pass --settings @settings.json");
                let report = parse(&inner, &self.string_options(path));
                self.diagnostics.extend(report.diagnostics);
                self.mode = report.mode;
                self.settings_in_string = report.settings.or(report.settings_in_string);
            }
            Ok(inner @ Value::String(_)) => {
                self.error(
                    "settings-is-string",
                    path,
                    format!("{MESSAGE}; the string holds another JSON string (escaped twice)"),
                )
                .help("the settings were escaped more than once: pass the JSON object itself");
                let report = parse(&inner, &self.string_options(path));
                self.diagnostics.extend(report.diagnostics);
                self.settings_in_string = report.settings_in_string;
            }
            Ok(other) => self
                .error(
                    "settings-is-string",
                    path,
                    format!(
                        "{MESSAGE}; the string's JSON is {}, not an object either",
                        type_name(&other)
                    ),
                )
                .help(OBJECT_HELP),
            Err(e) => self
                .error(
                    "settings-is-string",
                    path,
                    format!("{MESSAGE}; the string is not JSON either ({e})"),
                )
                .help(OBJECT_HELP),
        }
    }

    /// How to parse what a JSON string at `path` holds. ARM never looks inside a string, so
    /// expressions there stay literal text.
    fn string_options(&self, path: &str) -> ParseOptions {
        ParseOptions {
            base_path: string_path(path),
            arm_expressions: false,
            extension_type: self.options.extension_type.clone(),
            extension_version: self.options.extension_version.clone(),
        }
    }

    /// The mode: the guest agent's version, else `akvvm.extensionVersion`, else 3.x. A setting
    /// the guest agent's version overrides is a warning; a version that names no mode an error.
    fn choose_mode(&mut self, fields: &Fields<'_>) -> ModeChoice {
        let setting_path = format!("{}.extensionVersion", fields.path("akvvm"));
        let setting = fields
            .get("akvvm")
            .and_then(|a| a.get("extensionVersion"))
            .filter(|v| !self.arm_expression(v, &setting_path));
        let setting = match setting {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                self.error(
                    "wrong-type",
                    &setting_path,
                    format!(
                        "akvvm.extensionVersion must be a string such as \"4.0\", not {}",
                        type_name(other)
                    ),
                )
                .help(
                    "write \"extensionVersion\": \"3.0\" for the 3.x behaviour or \"4.0\" for 4.x",
                );
                None
            }
        };
        // akvvm's own packages carry akvvm's version (0.x): under the guest agent a version that
        // names neither 3.x nor 4.x leaves the choice to the setting. A typeHandlerVersion is what
        // Azure deploys, so there it is an error.
        let given = self.options.extension_version.clone().filter(|given| {
            given.origin == VersionOrigin::TypeHandlerVersion
                || mode_of_version(&given.version).is_ok()
        });
        if let Some(given) = given {
            match mode_of_version(&given.version) {
                Ok(mode) => {
                    if let Some(setting) = setting.as_deref()
                        && mode_of_version(setting).ok() != Some(mode)
                    {
                        self.warn(
                            "extension-version-overridden",
                            &setting_path,
                            format!(
                                "akvvm.extensionVersion is {setting:?}, but {} says the extension is version {}: akvvm behaves as {mode}",
                                given.origin, given.version
                            ),
                        )
                        .help("the version the guest agent installed decides; remove extensionVersion or make it agree");
                    }
                    return ModeChoice {
                        mode,
                        version: Some(given.version),
                        origin: given.origin,
                    };
                }
                Err(e) => {
                    let base = &self.options.base_path;
                    let resource = base.strip_suffix(".settings").unwrap_or(base);
                    let path = format!("{resource}.typeHandlerVersion");
                    self.error(
                        "extension-version-unknown",
                        &path,
                        format!(
                            "{} gives the extension version {:?}: {e}",
                            given.origin, given.version
                        ),
                    )
                    .help("use version 3.x (\"typeHandlerVersion\": \"3.0\") or 4.x (\"4.0\")");
                    return ModeChoice::default();
                }
            }
        }
        let Some(setting) = setting else {
            return ModeChoice::default();
        };
        match mode_of_version(&setting) {
            Ok(mode) => ModeChoice {
                mode,
                version: Some(setting),
                origin: VersionOrigin::Setting,
            },
            Err(e) => {
                self.error(
                    "extension-version-unknown",
                    &setting_path,
                    format!("akvvm.extensionVersion is {setting:?}: {e}"),
                )
                .help(
                    "write \"extensionVersion\": \"3.0\" for the 3.x behaviour or \"4.0\" for 4.x",
                );
                ModeChoice::default()
            }
        }
    }

    /// `authenticationOverride` picks another managed identity, so it needs managed-identity
    /// authentication: with a bootstrap certificate (`KeyVaultForPaaS`) there is no IMDS to ask,
    /// and fetching with the bootstrap application instead would not be what the override says.
    /// On an Azure Arc server there is no user-assigned identity to pick.
    fn overrides_match(&mut self, auth: Option<&Authentication>, paths: &[String]) {
        for path in paths {
            match auth {
                Some(Authentication::BootstrapCertificate { .. }) => self
                    .error(
                        "override-needs-managed-identity",
                        path,
                        "authenticationOverride names a managed identity, but authenticationSettings uses a bootstrap certificate (KeyVaultForPaaS), which has no managed identity endpoint",
                    )
                    .help("remove authenticationOverride and grant the bootstrap application (clientId) access to this certificate's vault"),
                Some(Authentication::ManagedIdentity { endpoint, .. }) if endpoint.is_arc() => self
                    .warn(
                        "arc-user-assigned",
                        path,
                        "this is the Azure Arc identity endpoint, and an Azure Arc server has only its system-assigned identity: authenticationOverride names an identity it does not have",
                    )
                    .help("remove authenticationOverride and grant the server's own identity access to this certificate's vault"),
                _ => {}
            }
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
                "KeyVaultForPaaS authenticates with a bootstrap certificate, but authenticationSettings has no clientId and clientCertificateSubjectName",
            )
            .help("add \"authenticationSettings\": {\"clientId\": \"<Entra app id>\", \"clientCertificateSubjectName\": \"<subject, without CN=>\"}"),
            Some(Authentication::BootstrapCertificate { .. }) if !paas => self.warn(
                "bootstrap-outside-paas",
                &path,
                format!("bootstrap-certificate authentication is documented for KeyVaultForPaaS only, not {ext}; akvvm supports it anyway"),
            )
            .help("keep it for akvvm; the shipped Key Vault extension for Linux or Windows needs a managed identity (msiEndpoint, msiClientId) instead"),
            _ => {}
        }
    }
}
