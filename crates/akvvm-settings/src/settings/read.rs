//! The reader under every settings section: the parser's [`Ctx`] methods that report
//! diagnostics (with a small builder, [`Reported::help`]), check an object's keys, and read the
//! basic types (strings, lenient booleans, integers, absolute paths), each value as a [`Got`].
//!
//! A section (secrets, authentication, akvvm's options) calls these and never reports a type
//! error itself.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::ctx::{Ctx, Unresolved, is_arm_expression};
use super::diagnostic::{Diagnostic, did_you_mean, join_index, join_key};
use super::keys::misplaced_key_help;

/// A field's value: absent, read, or skipped (invalid and already reported, or unresolved).
pub(super) enum Got<T> {
    Absent,
    Value(T),
    Skip,
}

impl<T> Got<T> {
    pub(super) fn or(self, default: T) -> T {
        match self {
            Got::Value(v) => v,
            Got::Absent | Got::Skip => default,
        }
    }

    pub(super) fn value(self) -> Option<T> {
        match self {
            Got::Value(v) => Some(v),
            Got::Absent | Got::Skip => None,
        }
    }

    pub(super) fn skip_unless_absent<U>(self) -> Got<U> {
        match self {
            Got::Absent => Got::Absent,
            Got::Value(_) | Got::Skip => Got::Skip,
        }
    }

    pub(super) fn is_present(&self) -> bool {
        !matches!(self, Got::Absent)
    }
}

/// An object's known fields, found by name (case-insensitively, with a warning).
pub(super) struct Fields<'v> {
    path: String,
    found: Vec<(&'static str, &'v Value)>,
}

impl<'v> Fields<'v> {
    pub(super) fn get(&self, key: &str) -> Option<&'v Value> {
        self.found.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    pub(super) fn path(&self, key: &str) -> String {
        join_key(&self.path, key)
    }
}

/// A diagnostic just reported, to which the "what to do" part is added.
pub(super) struct Reported<'d>(&'d mut Diagnostic);

impl Reported<'_> {
    /// Says what to do about it.
    pub(super) fn help(self, help: impl Into<String>) {
        self.0.help = Some(help.into());
    }
}

impl Ctx<'_> {
    /// Reports an error; add what to do with [`Reported::help`].
    pub(super) fn error(
        &mut self,
        code: &'static str,
        path: &str,
        message: impl Into<String>,
    ) -> Reported<'_> {
        self.report(Diagnostic::error(code, path, message))
    }

    /// Reports a warning; add what to do with [`Reported::help`].
    pub(super) fn warn(
        &mut self,
        code: &'static str,
        path: &str,
        message: impl Into<String>,
    ) -> Reported<'_> {
        self.report(Diagnostic::warning(code, path, message))
    }

    fn report(&mut self, diagnostic: Diagnostic) -> Reported<'_> {
        self.diagnostics.push(diagnostic);
        Reported(self.diagnostics.last_mut().expect("just pushed"))
    }

    /// Handles an ARM expression string in a place that wants a value. Returns true when `v` was
    /// one (recorded as unresolved, or reported as an error outside templates).
    pub(super) fn arm_expression(&mut self, v: &Value, path: &str) -> bool {
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
            )
            .help("put the resolved value here; to check a template, run akvvm validate \
                     TEMPLATE --parameters PARAMETERS");
        }
        true
    }

    pub(super) fn wrong_type(&mut self, v: &Value, path: &str, expected: &str, example: &str) {
        self.error(
            "wrong-type",
            path,
            format!("expected {expected}, found {}", type_name(v)),
        )
        .help(format!("write it like {example}"));
    }

    /// Checks an object's keys against `known`, reporting unknown ones (with "did you mean" or
    /// where the key belongs), case mismatches and duplicates.
    pub(super) fn fields<'v>(
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

    pub(super) fn check_keys<'v>(
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
                        )
                        .help(format!("keep one {canonical:?}"));
                        continue;
                    }
                    if *canonical != key {
                        self.warn(
                            "key-case",
                            &key_path,
                            format!("{key:?} is spelt with different case than the documented {canonical:?}"),
                        )
                        .help(format!("write {canonical:?}"));
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

    pub(super) fn unknown_key(&mut self, key: &str, path: &str, known: &[&'static str]) {
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
        self.error(code, path, message).help(help);
    }

    pub(super) fn string(&mut self, v: Option<&Value>, path: &str, example: &str) -> Got<String> {
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
    pub(super) fn boolean(&mut self, v: Option<&Value>, path: &str) -> Got<bool> {
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
                )
                .help(format!("write {b} without quotes"));
                Got::Value(b)
            }
            other => {
                self.wrong_type(other, path, "a boolean", "true or false");
                Got::Skip
            }
        }
    }

    /// A non-negative integer from our own `"akvvm"` objects (strict: JSON numbers only).
    pub(super) fn integer(
        &mut self,
        v: Option<&Value>,
        path: &str,
        min: u64,
        max: u64,
    ) -> Got<u64> {
        let Some(v) = v else { return Got::Absent };
        if self.arm_expression(v, path) {
            return Got::Skip;
        }
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Got::Value(n),
            Some(n) => {
                self.error("out-of-range", path, format!("{n} is out of range"))
                    .help(format!("use a whole number from {min} to {max}"));
                Got::Skip
            }
            None => {
                self.error(
                    "wrong-type",
                    path,
                    format!("expected a whole number, found {}", compact(v)),
                )
                .help(format!(
                    "use a whole number from {min} to {max}, without quotes"
                ));
                Got::Skip
            }
        }
    }

    /// An absolute directory or file path.
    pub(super) fn abs_path(&mut self, v: Option<&Value>, path: &str) -> Got<PathBuf> {
        match self.string(v, path, "\"/etc/ssl/akvvm\"") {
            Got::Value(s) => match check_abs_path(&s) {
                Ok(p) => Got::Value(p),
                Err(why) => {
                    self.error("bad-path", path, format!("{s:?} {why}"))
                        .help("use an absolute path such as \"/etc/ssl/akvvm\"");
                    Got::Skip
                }
            },
            Got::Absent => Got::Absent,
            Got::Skip => Got::Skip,
        }
    }

    pub(super) fn abs_paths(&mut self, v: Option<&Value>, path: &str) -> Got<Vec<PathBuf>> {
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
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn check_abs_path(s: &str) -> Result<PathBuf, &'static str> {
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
pub(super) fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}
