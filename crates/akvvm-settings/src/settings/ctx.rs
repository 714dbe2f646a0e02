//! The parser's state ([`Ctx`]) and options ([`ParseOptions`]), shared by the settings object's
//! reader (`parse.rs`), the field reader (`read.rs`) and the section readers, which add their
//! methods to [`Ctx`].

use serde::Serialize;

use super::diagnostic::Diagnostic;
use super::mode::{ExtensionVersion, ModeChoice};
use super::model::Settings;

/// How to parse.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// The JSON path of the settings object, prefixed to every diagnostic path.
    pub base_path: String,
    /// Treat strings such as `[parameters('x')]` as ARM expressions that ARM resolves later:
    /// skip their checks and list them in [`Report::unresolved`](super::Report::unresolved) (for templates). Otherwise they
    /// are errors, since the agent never sees unresolved expressions.
    pub arm_expressions: bool,
    /// The extension type the settings belong to, when known (`KeyVaultForPaaS` requires
    /// bootstrap-certificate authentication).
    pub extension_type: Option<String>,
    /// The extension version the guest agent runs (or the resource's `typeHandlerVersion`),
    /// when known: it chooses the mode and wins over `akvvm.extensionVersion` ([`super::mode`]).
    pub extension_version: Option<ExtensionVersion>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            base_path: "settings".to_string(),
            arm_expressions: false,
            extension_type: None,
            extension_version: None,
        }
    }
}

/// An ARM expression left in the settings (only with [`ParseOptions::arm_expressions`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unresolved {
    pub path: String,
    pub expression: String,
}

/// Whether ARM treats `s` as an expression: `[...]`, but not `[[...` (an escaped literal).
pub fn is_arm_expression(s: &str) -> bool {
    let t = s.trim();
    t.starts_with('[') && !t.starts_with("[[") && t.ends_with(']')
}

/// The parser's state: how to parse, and what was found so far.
pub(super) struct Ctx<'o> {
    pub(super) options: &'o ParseOptions,
    pub(super) diagnostics: Vec<Diagnostic>,
    pub(super) unresolved: Vec<Unresolved>,
    pub(super) settings_in_string: Option<Settings>,
    /// The mode the settings are read in, decided before any section is read.
    pub(super) mode: ModeChoice,
}
