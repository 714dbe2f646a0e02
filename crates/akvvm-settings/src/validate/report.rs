//! What `akvvm validate` reports: the kind of input, each Key Vault extension found with a
//! summary of its settings (shape, authentication, certificates, unresolved ARM expressions) and
//! its diagnostics, and the rendering of all that as text (JSON comes from serde).

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::extension::KEY_VAULT_PUBLISHER;
use crate::settings::{self, Diagnostic, Settings};

/// What the validator was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    /// The settings object itself.
    Settings,
    /// A handler `<seq>.settings` file (`runtimeSettings[0].handlerSettings.publicSettings`).
    HandlerSettings,
    /// An ARM template (`resources`), every Key Vault extension in it.
    ArmTemplate,
    /// A `Microsoft.Compute/virtualMachines/extensions` resource.
    VmExtension,
    /// A `Microsoft.Compute/virtualMachineScaleSets/extensions` resource.
    ScaleSetExtension,
    /// An entry of `virtualMachineProfile.extensionProfile.extensions`.
    ScaleSetProfileExtension,
    /// A Cloud Services `extensionProfile.extensions` entry (`KeyVaultForPaaS`).
    CloudServiceExtension,
    /// A resource or resource fragment holding extensions (such as a Cloud Services
    /// `osProfile` + `extensionProfile`).
    ResourceFragment,
    /// Not JSON, or nothing recognisable.
    Unknown,
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputKind::Settings => "extension settings",
            InputKind::HandlerSettings => "handler settings file",
            InputKind::ArmTemplate => "ARM template",
            InputKind::VmExtension => "VM extension resource",
            InputKind::ScaleSetExtension => "scale set extension resource",
            InputKind::ScaleSetProfileExtension => "scale set extensionProfile entry",
            InputKind::CloudServiceExtension => "Cloud Services extension (extensionProfile)",
            InputKind::ResourceFragment => "resource fragment with extensions",
            InputKind::Unknown => "unrecognised input",
        })
    }
}

/// One observed certificate, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateSummary {
    pub url: String,
    pub vault: String,
    pub host: String,
    pub name: String,
    /// The pinned version, or `None` for "latest".
    pub version: Option<String>,
    pub store_directory: PathBuf,
    pub link_name: Option<String>,
    pub acls: Vec<String>,
    pub reload: Option<Vec<String>>,
    /// Whether certbot's layout (`<vault>.<name>.live/`) is written too.
    pub certbot_layout: bool,
}

/// An ARM expression left for deployment time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnresolvedExpression {
    pub path: String,
    pub expression: String,
    pub reason: String,
}

/// One Key Vault extension (or the bare settings) and what was found in it.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionReport {
    /// JSON path of the extension (empty for bare settings and handler files).
    pub path: String,
    pub name: Option<String>,
    pub extension_type: Option<String>,
    pub type_handler_version: Option<String>,
    /// The settings shape found (`V1`, `V3`, `PaaS`), when the settings were valid, or were an
    /// escaped JSON string (an error) holding valid settings; the other summary fields likewise.
    pub shape: Option<settings::Shape>,
    /// The extension version akvvm checked the settings against: `3.x` or `4.x`.
    pub mode: Option<String>,
    /// Why that mode: the version and where it came from.
    pub mode_reason: Option<String>,
    pub authentication: Option<String>,
    pub polling_interval_seconds: Option<u64>,
    pub require_initial_sync: Option<bool>,
    /// Where `loggingSettings` forwards the log records, when it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<String>,
    /// Whether the certificates' `acls` are applied (`aclEnabled`); `None` when an ARM
    /// expression decides it at deployment.
    pub acls_applied: Option<bool>,
    pub certificates: Vec<CertificateSummary>,
    pub unresolved: Vec<UnresolvedExpression>,
    pub diagnostics: Vec<Diagnostic>,
    /// The validated settings, only when there is no error (not serialised; for callers of the
    /// library).
    #[serde(skip)]
    pub settings: Option<Settings>,
}

impl ExtensionReport {
    pub(super) fn new(path: &str) -> Self {
        ExtensionReport {
            path: path.to_string(),
            name: None,
            extension_type: None,
            type_handler_version: None,
            shape: None,
            mode: None,
            mode_reason: None,
            authentication: None,
            polling_interval_seconds: None,
            require_initial_sync: None,
            logging: None,
            acls_applied: None,
            certificates: Vec::new(),
            unresolved: Vec::new(),
            diagnostics: Vec::new(),
            settings: None,
        }
    }

    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// Everything `akvvm validate` found.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    pub file: Option<PathBuf>,
    pub kind: InputKind,
    pub valid: bool,
    /// Problems with the document itself (not JSON, no extension found, ...).
    pub diagnostics: Vec<Diagnostic>,
    pub extensions: Vec<ExtensionReport>,
}

impl ValidationReport {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.all_diagnostics().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.all_diagnostics().filter(|d| !d.is_error())
    }

    /// Document diagnostics, then each extension's.
    pub fn all_diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .chain(self.extensions.iter().flat_map(|e| e.diagnostics.iter()))
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
            || self.extensions.iter().any(|e| e.error_count() > 0)
    }

    /// The process exit status: 0 valid, 1 invalid.
    pub fn exit_code(&self) -> u8 {
        if self.valid { 0 } else { 1 }
    }

    /// The human-readable report.
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if let Some(file) = &self.file {
            let _ = writeln!(out, "file: {}", file.display());
        }
        let _ = writeln!(out, "kind: {}", self.kind);
        for ext in &self.extensions {
            let _ = writeln!(out);
            let location = if ext.path.is_empty() {
                String::new()
            } else {
                format!(" at {}", ext.path)
            };
            let name = ext
                .name
                .as_deref()
                .map(|n| format!(" {n:?}"))
                .unwrap_or_default();
            let what = if ext.path.is_empty() && ext.extension_type.is_none() {
                "settings"
            } else {
                "extension"
            };
            let _ = writeln!(out, "{what}{name}{location}");
            if let Some(t) = &ext.extension_type {
                let version = ext
                    .type_handler_version
                    .as_deref()
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default();
                let _ = writeln!(out, "  type: {KEY_VAULT_PUBLISHER}.{t}{version}");
            }
            if let Some(reason) = &ext.mode_reason {
                let _ = writeln!(out, "  checked as: extension {reason}");
            }
            match ext.shape {
                Some(shape) => {
                    let _ = writeln!(out, "  shape: {shape}");
                }
                None => {
                    let why = if ext.error_count() > 0 {
                        "the settings have errors"
                    } else {
                        "it depends on unresolved ARM expressions"
                    };
                    let _ = writeln!(out, "  shape: not determined ({why})");
                }
            }
            if let Some(auth) = &ext.authentication {
                let _ = writeln!(out, "  authentication: {auth}");
            }
            if ext.shape.is_some() {
                let at_deployment = "set at deployment (ARM expression)";
                let poll = ext
                    .polling_interval_seconds
                    .map_or(at_deployment.to_string(), |p| format!("every {p} s"));
                let sync = ext
                    .require_initial_sync
                    .map_or(at_deployment.to_string(), |s| s.to_string());
                if ext.mode.as_deref() == Some("4.x") {
                    let _ = writeln!(
                        out,
                        "  polling: {poll}; status: success once every certificate is installed (4.x)"
                    );
                } else {
                    let _ = writeln!(out, "  polling: {poll}; requireInitialSync: {sync}");
                }
            }
            if let Some(logging) = &ext.logging {
                let _ = writeln!(out, "  logging: {logging}");
            }
            if !ext.certificates.is_empty() {
                let _ = writeln!(out, "  certificates:");
            }
            for c in &ext.certificates {
                let version = c
                    .version
                    .as_deref()
                    .map_or("latest".to_string(), |v| format!("pinned to {v}"));
                let _ = writeln!(out, "    - {} (vault {} at {})", c.name, c.vault, c.host);
                let _ = writeln!(out, "      version: {version}");
                let _ = writeln!(out, "      store: {}", c.store_directory.display());
                if let Some(link) = &c.link_name {
                    let _ = writeln!(out, "      link: {link}");
                }
                if !c.acls.is_empty() {
                    let applied = match ext.acls_applied {
                        Some(true) => "",
                        Some(false) => " (not applied: aclEnabled is not true)",
                        None => " (applied if aclEnabled is true at deployment)",
                    };
                    let _ = writeln!(out, "      acls: {}{applied}", c.acls.join(", "));
                }
                if c.certbot_layout {
                    let _ = writeln!(
                        out,
                        "      certbot layout: {}",
                        c.store_directory
                            .join(format!("{}.{}.live", c.vault, c.name))
                            .display()
                    );
                }
                if let Some(cmd) = &c.reload {
                    let _ = writeln!(out, "      reload: {}", cmd.join(" "));
                }
            }
            if !ext.unresolved.is_empty() {
                let _ = writeln!(
                    out,
                    "  unresolved ARM expressions (evaluated at deployment, not checked here):"
                );
                for u in &ext.unresolved {
                    let _ = writeln!(out, "    - {}: {} ({})", u.path, u.expression, u.reason);
                }
            }
        }
        let diagnostics: Vec<&Diagnostic> = self.all_diagnostics().collect();
        if !diagnostics.is_empty() {
            let _ = writeln!(out);
        }
        for severity in [settings::Severity::Warning, settings::Severity::Error] {
            for d in diagnostics.iter().filter(|d| d.severity == severity) {
                let path = if d.path.is_empty() {
                    String::new()
                } else {
                    format!(" {}:", d.path)
                };
                let _ = writeln!(out, "{}[{}]{path} {}", d.severity, d.code, d.message);
                if let Some(help) = &d.help {
                    let _ = writeln!(out, "  help: {help}");
                }
            }
        }
        let errors = self.errors().count();
        let warnings = self.warnings().count();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "result: {} ({errors} error{}, {warnings} warning{})",
            if self.valid { "valid" } else { "invalid" },
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" },
        );
        out
    }
}
