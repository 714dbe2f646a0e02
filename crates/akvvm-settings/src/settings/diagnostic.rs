//! Diagnostics: what is wrong (or suspicious) in settings, where (a JSON path), and what to do.

use std::fmt;

use serde::Serialize;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Accepted, but probably not what the author meant, or not what the shipped extension does.
    Warning,
    /// The settings cannot be used as they are.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One finding about the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Where, as a JSON path from the root of the input, such as
    /// `settings.secretsManagementSettings.observedCertificates[2].url`.
    pub path: String,
    /// A stable machine-readable code, such as `unknown-key` or `certificates-url`.
    pub code: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
    /// What to do about it, when there is something to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            path: path.into(),
            code,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            path: path.into(),
            code,
            message: message.into(),
            help: None,
        }
    }

    /// Adds the "what to do" part.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] {}: {}",
            self.severity, self.code, self.path, self.message
        )?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Appends an object key to a JSON path: `a.b`, or `a["odd key"]` when the key is not a plain
/// identifier. An empty `path` means the root.
pub fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", serde_json::Value::from(key)),
    }
}

/// Appends an array index to a JSON path: `a[3]`.
pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// The known name closest to `unknown`, if one is close enough to be a likely typo.
pub fn did_you_mean<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = unknown.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (*k, strsim::jaro_winkler(&lower, &k.to_ascii_lowercase())))
        .filter(|(_, score)| *score >= 0.85)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_odd_keys() {
        assert_eq!(join_key("", "settings"), "settings");
        assert_eq!(join_key("settings", "akvvm"), "settings.akvvm");
        assert_eq!(join_key("a", "b c"), "a[\"b c\"]");
        assert_eq!(join_key("a", "9x"), "a[\"9x\"]");
        assert_eq!(join_index("a.b", 2), "a.b[2]");
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let known = [
            "pollingIntervalInS",
            "certificateStoreName",
            "observedCertificates",
        ];
        assert_eq!(
            did_you_mean("pollingIntervalInSec", &known),
            Some("pollingIntervalInS")
        );
        assert_eq!(
            did_you_mean("observedCertificate", &known),
            Some("observedCertificates")
        );
        assert_eq!(did_you_mean("zzz", &known), None);
    }
}
