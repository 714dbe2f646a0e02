//! Reading the validator's input: JSON with helpful errors for what people paste by mistake
//! (documentation placeholders, XML, `"key": value` fragments), and comments (which ARM accepts).

use std::cell::RefCell;
use std::collections::HashSet;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::settings::{Diagnostic, join_index, join_key};

/// Parses `text` as JSON. Comments (`//`, `/* */`) are removed first, with a warning.
/// Keys given twice in one object are reported as warnings (JSON parsers keep the last one).
pub fn parse_json(text: &str) -> Result<(Value, Vec<Diagnostic>), Diagnostic> {
    let first_error = match serde_json::from_str::<Value>(text) {
        Ok(v) => return Ok((v, duplicate_keys(text))),
        Err(e) => e,
    };
    let stripped = strip_comments(text);
    if stripped != text
        && let Ok(v) = serde_json::from_str::<Value>(&stripped)
    {
        let warning = Diagnostic::warning(
                "json-comments",
                "",
                "the file has comments; ARM templates accept them, but the extension's settings and handler files must be plain JSON",
            )
            .with_help("remove the comments if this file is used as settings");
        let mut warnings = vec![warning];
        warnings.extend(duplicate_keys(&stripped));
        return Ok((v, warnings));
    }
    Err(explain(text, &first_error))
}

/// Warnings for keys that appear twice in the same object of `text` (valid JSON).
fn duplicate_keys(text: &str) -> Vec<Diagnostic> {
    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_str(text);
    // The text already parsed as JSON, so walking it again cannot fail.
    let _ = DeserializeSeed::deserialize(
        KeyWalk {
            path: String::new(),
            found: &found,
        },
        &mut de,
    );
    found
        .into_inner()
        .into_iter()
        .map(|(path, key)| {
            Diagnostic::warning(
                "duplicate-json-key",
                join_key(&path, &key),
                format!("{key:?} appears more than once in this object; only the last one counts"),
            )
            .with_help("keep one of them")
        })
        .collect()
}

/// Walks JSON without building it, recording `(object path, key)` for each repeated key.
struct KeyWalk<'a> {
    path: String,
    found: &'a RefCell<Vec<(String, String)>>,
}

impl<'de> DeserializeSeed<'de> for KeyWalk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyWalk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = join_key(&self.path, &key);
            if !seen.insert(key.clone()) {
                self.found.borrow_mut().push((self.path.clone(), key));
            }
            map.next_value_seed(KeyWalk {
                path: child,
                found: self.found,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq
            .next_element_seed(KeyWalk {
                path: join_index(&self.path, i),
                found: self.found,
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A clear error for text that is not JSON.
fn explain(text: &str, err: &serde_json::Error) -> Diagnostic {
    let trimmed = text.trim_start();
    let at = format!("line {}, column {}", err.line(), err.column());
    if trimmed.is_empty() {
        return Diagnostic::error("not-json", "", "the file is empty")
            .with_help("give a settings object, an extension resource, an ARM template or a handler settings file");
    }
    if trimmed.starts_with('<') {
        return Diagnostic::error("not-json", "", format!("this is XML, not JSON ({at}: {err})"))
            .with_help("a .cscfg/.csdef snippet is not extension settings; akvvm validate checks JSON settings, extension resources and ARM templates");
    }
    if let Some(snippets) = markdown_json_snippets(text) {
        let message = match snippets.as_slice() {
            [] => "this is a Markdown document, not JSON".to_string(),
            lines => format!(
                "this is a Markdown document, not JSON; its JSON snippets start at line{} {}",
                if lines.len() == 1 { "" } else { "s" },
                lines
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        return Diagnostic::error("not-json", "", message).with_help(
            "copy the snippet you mean to deploy into a file of its own, fill in its placeholders, and validate that file",
        );
    }
    if let Some(placeholder) = placeholder_near(text, err.line(), err.column()) {
        return Diagnostic::error(
            "not-json",
            "",
            format!("not JSON: documentation placeholder {placeholder} at {at}"),
        )
        .with_help("replace every <...> placeholder with a real JSON value, such as \"3600\" or \"https://myvault.vault.azure.net/secrets/mycert\"");
    }
    if let Some((n, _)) = text
        .lines()
        .enumerate()
        .find(|(_, l)| matches!(l.trim(), "..." | "...," | "…"))
    {
        return Diagnostic::error(
            "not-json",
            "",
            format!("not JSON: line {} is a documentation elision (...)", n + 1),
        )
        .with_help("replace ... with the remaining settings, or remove it");
    }
    if trimmed.starts_with('"') && serde_json::from_str::<Value>(&format!("{{{text}}}")).is_ok() {
        return Diagnostic::error("not-json", "", format!("not JSON: this is an object member (\"key\": value) without the surrounding braces ({at}: {err})"))
            .with_help("wrap it in { and } to make it a JSON object");
    }
    Diagnostic::error("not-json", "", format!("not JSON: {err}")).with_help(
        "fix the JSON syntax at that position (a missing comma, quote or brace is the usual cause)",
    )
}

/// When `text` is a Markdown document (YAML front matter, a heading first, or fenced code blocks),
/// the first lines of its JSON code blocks (1-based).
fn markdown_json_snippets(text: &str) -> Option<Vec<usize>> {
    let first = text.lines().find(|l| !l.trim().is_empty())?.trim_end();
    let fences = text.lines().any(|l| l.trim_start().starts_with("```"));
    let markdown = first == "---" || first.starts_with("# ") || fences;
    if !markdown {
        return None;
    }
    Some(
        text.lines()
            .enumerate()
            .filter(|(_, l)| {
                let l = l.trim_start().to_ascii_lowercase();
                l.starts_with("```json")
            })
            .map(|(i, _)| i + 2)
            .collect(),
    )
}

/// The `<...>` placeholder at or just before the error position, if there is one.
fn placeholder_near(text: &str, line: usize, column: usize) -> Option<String> {
    let line_text = text.lines().nth(line.checked_sub(1)?)?;
    let col = column.min(line_text.len());
    let before = line_text.get(..col)?;
    let start = before.rfind('<').or_else(|| {
        line_text
            .get(col.saturating_sub(1)..)?
            .find('<')
            .map(|i| i + col.saturating_sub(1))
    })?;
    let rest = &line_text[start..];
    let end = rest.find('>')?;
    let placeholder: String = rest[..=end].chars().take(80).collect();
    Some(placeholder)
}

/// Removes `//` and `/* */` comments outside strings.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                    }
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_warned_with_their_path() {
        let (_, warnings) =
            parse_json(r#"{"a": [{"x": 1, "y": 2, "x": 3}], "b": 1, "b": 2}"#).unwrap();
        let found: Vec<(&str, &str)> = warnings.iter().map(|w| (w.code, w.path.as_str())).collect();
        assert_eq!(
            found,
            [
                ("duplicate-json-key", "a[0].x"),
                ("duplicate-json-key", "b")
            ]
        );
    }

    #[test]
    fn comments_are_stripped_with_a_warning() {
        let (v, warnings) = parse_json("{\n // c\n \"a\": \"//x\" /* y */ }").unwrap();
        assert_eq!(v, serde_json::json!({"a": "//x"}));
        assert_eq!(warnings[0].code, "json-comments");
    }

    #[test]
    fn placeholders_xml_and_fragments_are_explained() {
        let e = parse_json("{\n \"pollingIntervalInS\": <string specifying polling interval>,\n}")
            .unwrap_err();
        assert!(
            e.message
                .contains("placeholder <string specifying polling interval> at line 2"),
            "{}",
            e.message
        );
        let e = parse_json("<Certificate name=\"x\" />").unwrap_err();
        assert!(e.message.starts_with("this is XML"), "{}", e.message);
        let e = parse_json("\"identity\": {\"type\": \"UserAssigned\"}").unwrap_err();
        assert!(
            e.message.contains("without the surrounding braces"),
            "{}",
            e.message
        );
        assert_eq!(parse_json("   ").unwrap_err().message, "the file is empty");
    }
}
