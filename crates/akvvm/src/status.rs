//! The VM extension status file: `<statusFolder>/<seq>.status`.
//!
//! The guest agent reads this file and reports it to Azure. It is a JSON array with one element:
//! `{"version":1.0,"timestampUTC":..,"status":{"name","operation","status","code",
//! "formattedMessage":{"lang":"en-US","message"},"substatus":[..]}}`, with one substatus per
//! observed certificate URL. [`render`] produces those bytes within the documented limits (at
//! most [`MAX_STATUS_BYTES`] in all, messages at most [`MAX_MESSAGE_CHARS`] characters);
//! [`StatusFile`] writes them atomically.
//!
//! To report something new, build a [`Report`] (the sync engine does, once per change) and hand it
//! to [`StatusFile::write`]. While a report is `transitioning` the caller rewrites it at least every
//! [`TRANSITIONING_REWRITE_INTERVAL`] so the guest agent sees a fresh timestamp.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::macros::format_description;

/// The handler name reported in the status file.
pub use akvvm_settings::handler::HANDLER_NAME;

/// The largest status file the guest agent accepts: 128 KiB.
pub const MAX_STATUS_BYTES: usize = 128 * 1024;

/// The longest message (in characters) the guest agent accepts in `formattedMessage`.
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// How often a `transitioning` status is rewritten, at the latest.
pub const TRANSITIONING_REWRITE_INTERVAL: Duration = Duration::from_secs(120);

/// The file mode of the status file: the guest agent runs as root, but the file holds no secret.
const STATUS_FILE_MODE: u32 = 0o644;

/// The status value of the whole handler or of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Still working towards the goal (`requireInitialSync` before the first complete sync).
    Transitioning,
    /// Everything requested is in place.
    Success,
    /// Something failed; the message says what.
    Error,
    /// Working, with something worth attention (an expiring certificate, a failed reload hook).
    Warning,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Transitioning => "transitioning",
            State::Success => "success",
            State::Error => "error",
            State::Warning => "warning",
        })
    }
}

/// The numeric `code` the status file carries: 0 unless something failed.
pub const CODE_OK: i32 = 0;
/// The numeric `code` of a failure; the machine-readable reason is in the message, in brackets.
pub const CODE_FAILED: i32 = 1;

/// One certificate's line in the status file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substatus {
    /// The observed certificate URL.
    pub name: String,
    pub state: State,
    pub code: i32,
    pub message: String,
}

/// Everything the status file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The operation being reported (`Enable`, `Disable`, ...).
    pub operation: String,
    pub state: State,
    pub code: i32,
    pub message: String,
    pub substatus: Vec<Substatus>,
}

impl Report {
    /// A report without substatus.
    pub fn new(operation: &str, state: State, message: impl Into<String>) -> Self {
        let code = if state == State::Error {
            CODE_FAILED
        } else {
            CODE_OK
        };
        Report {
            operation: operation.to_string(),
            state,
            code,
            message: message.into(),
            substatus: Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct StatusEnvelope<'a> {
    version: f64,
    #[serde(rename = "timestampUTC")]
    timestamp_utc: String,
    status: StatusBody<'a>,
}

#[derive(Serialize)]
struct StatusBody<'a> {
    name: &'a str,
    operation: &'a str,
    status: State,
    code: i32,
    #[serde(rename = "formattedMessage")]
    formatted_message: FormattedMessage,
    substatus: Vec<SubstatusBody<'a>>,
}

#[derive(Serialize)]
struct SubstatusBody<'a> {
    name: &'a str,
    status: State,
    code: i32,
    #[serde(rename = "formattedMessage")]
    formatted_message: FormattedMessage,
}

#[derive(Serialize)]
struct FormattedMessage {
    lang: &'static str,
    message: String,
}

impl FormattedMessage {
    fn new(message: &str, max_chars: usize) -> Self {
        FormattedMessage {
            lang: "en-US",
            message: truncate_chars(message, max_chars),
        }
    }
}

/// Shortens `text` to at most `max_chars` characters, ending with `...` when it was cut.
pub fn truncate_chars(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    const ELLIPSIS: &str = "...";
    let keep = max_chars.saturating_sub(ELLIPSIS.len());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(ELLIPSIS);
    out
}

/// Formats a time the way the guest agent expects: `2026-11-22T10:00:00Z`.
pub fn format_timestamp(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

/// Renders a report as the status file's bytes, within [`MAX_STATUS_BYTES`].
///
/// Messages are cut to [`MAX_MESSAGE_CHARS`]. When the substatus list is still too large (a very
/// long list of certificates), substatus messages are shortened further, and as a last resort the
/// trailing substatus entries are replaced by one that says how many were left out.
pub fn render(report: &Report, at: OffsetDateTime) -> Vec<u8> {
    let timestamp = format_timestamp(at);
    for max_chars in [MAX_MESSAGE_CHARS, 256, 64] {
        let bytes = render_with(report, &timestamp, max_chars, report.substatus.len());
        if bytes.len() <= MAX_STATUS_BYTES {
            return bytes;
        }
    }
    // Drop entries from the end until it fits (binary search on how many to keep).
    let (mut low, mut high) = (0, report.substatus.len());
    while low < high {
        let mid = (low + high).div_ceil(2);
        if render_with(report, &timestamp, 64, mid).len() <= MAX_STATUS_BYTES {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    render_with(report, &timestamp, 64, low)
}

fn render_with(report: &Report, timestamp: &str, max_chars: usize, keep: usize) -> Vec<u8> {
    let omitted = report.substatus.len() - keep;
    let omitted_message = format!(
        "{omitted} more certificates are not listed: the status file is limited to 128 KiB"
    );
    let mut substatus: Vec<SubstatusBody<'_>> = report.substatus[..keep]
        .iter()
        .map(|sub| SubstatusBody {
            name: &sub.name,
            status: sub.state,
            code: sub.code,
            formatted_message: FormattedMessage::new(&sub.message, max_chars),
        })
        .collect();
    if omitted > 0 {
        substatus.push(SubstatusBody {
            name: "omitted",
            status: State::Warning,
            code: CODE_OK,
            formatted_message: FormattedMessage::new(&omitted_message, MAX_MESSAGE_CHARS),
        });
    }
    let envelope = [StatusEnvelope {
        version: 1.0,
        timestamp_utc: timestamp.to_string(),
        status: StatusBody {
            name: HANDLER_NAME,
            operation: &report.operation,
            status: report.state,
            code: report.code,
            formatted_message: FormattedMessage::new(&report.message, MAX_MESSAGE_CHARS),
            substatus,
        },
    }];
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Errors writing the status file.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot write the status file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: akvvm_cert::store::StoreError,
    },
}

akvvm_cert::error_codes! {
    StatusError {
        StatusError::Write { .. } => "status.write",
    }
}

/// The status file of one configuration sequence number.
#[derive(Debug, Clone)]
pub struct StatusFile {
    path: PathBuf,
}

impl StatusFile {
    /// `<status_folder>/<sequence>.status`.
    pub fn new(status_folder: &Path, sequence: u64) -> Self {
        StatusFile {
            path: status_folder.join(format!("{sequence}.status")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `report`, stamped with `at`, atomically.
    pub fn write(&self, report: &Report, at: OffsetDateTime) -> Result<(), StatusError> {
        let bytes = render(report, at);
        akvvm_cert::store::write_atomic(&self.path, &bytes, STATUS_FILE_MODE, None).map_err(
            |source| StatusError::Write {
                path: self.path.clone(),
                source,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn parse(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("status is JSON")
    }

    #[test]
    fn renders_the_documented_shape() {
        let report = Report {
            operation: "Enable".into(),
            state: State::Transitioning,
            code: CODE_OK,
            message: "1 of 2 certificates installed".into(),
            substatus: vec![
                Substatus {
                    name: "https://v.vault.azure.net/secrets/a".into(),
                    state: State::Success,
                    code: CODE_OK,
                    message: "installed version 0123".into(),
                },
                Substatus {
                    name: "https://v.vault.azure.net/secrets/b".into(),
                    state: State::Error,
                    code: CODE_FAILED,
                    message: "[vault.forbidden] no right".into(),
                },
            ],
        };
        let value = parse(&render(&report, datetime!(2026-11-22 10:00:00 UTC)));
        let expected = serde_json::json!([{
            "version": 1.0,
            "timestampUTC": "2026-11-22T10:00:00Z",
            "status": {
                "name": "Microsoft.Azure.KeyVault.KeyVaultForLinux",
                "operation": "Enable",
                "status": "transitioning",
                "code": 0,
                "formattedMessage": { "lang": "en-US", "message": "1 of 2 certificates installed" },
                "substatus": [
                    { "name": "https://v.vault.azure.net/secrets/a", "status": "success", "code": 0,
                      "formattedMessage": { "lang": "en-US", "message": "installed version 0123" } },
                    { "name": "https://v.vault.azure.net/secrets/b", "status": "error", "code": 1,
                      "formattedMessage": { "lang": "en-US", "message": "[vault.forbidden] no right" } }
                ]
            }
        }]);
        assert_eq!(value, expected);
        // The version is written as the number 1.0, as the guest agent's own files have it.
        let text = String::from_utf8(render(&report, datetime!(2026-11-22 10:00:00 UTC))).unwrap();
        assert!(
            text.starts_with(r#"[{"version":1.0,"timestampUTC":"2026-11-22T10:00:00Z""#),
            "{text}"
        );
    }

    #[test]
    fn long_messages_are_cut_to_1024_characters() {
        let mut report = Report::new("Enable", State::Error, "é".repeat(5000));
        report.substatus.push(Substatus {
            name: "u".into(),
            state: State::Error,
            code: CODE_FAILED,
            message: "x".repeat(2000),
        });
        let value = parse(&render(&report, OffsetDateTime::UNIX_EPOCH));
        let message = value[0]["status"]["formattedMessage"]["message"]
            .as_str()
            .unwrap();
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(message.ends_with("..."));
        let sub = value[0]["status"]["substatus"][0]["formattedMessage"]["message"]
            .as_str()
            .unwrap();
        assert_eq!(sub.chars().count(), MAX_MESSAGE_CHARS);
        assert_eq!(value[0]["status"]["code"], 1);
    }

    #[test]
    fn short_messages_are_kept_whole() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "...");
        assert_eq!(truncate_chars("abcdef", 5), "ab...");
    }

    #[test]
    fn huge_substatus_lists_fit_in_128_kib() {
        let mut report = Report::new("Enable", State::Success, "all installed");
        for i in 0..2000 {
            report.substatus.push(Substatus {
                name: format!("https://vault{i}.vault.azure.net/secrets/certificate-{i}"),
                state: State::Success,
                code: CODE_OK,
                message: format!("installed version {} {}", i, "y".repeat(900)),
            });
        }
        let bytes = render(&report, OffsetDateTime::UNIX_EPOCH);
        assert!(bytes.len() <= MAX_STATUS_BYTES, "{} bytes", bytes.len());
        let value = parse(&bytes);
        let subs = value[0]["status"]["substatus"].as_array().unwrap();
        assert!(subs.len() < 2001);
        let last = subs.last().unwrap();
        assert_eq!(last["name"], "omitted");
        let note = last["formattedMessage"]["message"].as_str().unwrap();
        assert!(
            note.starts_with(&format!("{} more certificates", 2000 - (subs.len() - 1))),
            "{note}"
        );
    }

    #[test]
    fn moderately_long_lists_keep_every_entry_with_shorter_messages() {
        let mut report = Report::new("Enable", State::Success, "ok");
        for i in 0..300 {
            report.substatus.push(Substatus {
                name: format!("https://v.vault.azure.net/secrets/c{i}"),
                state: State::Success,
                code: CODE_OK,
                message: "z".repeat(1000),
            });
        }
        let bytes = render(&report, OffsetDateTime::UNIX_EPOCH);
        assert!(bytes.len() <= MAX_STATUS_BYTES);
        let value = parse(&bytes);
        assert_eq!(
            value[0]["status"]["substatus"].as_array().unwrap().len(),
            300
        );
    }

    #[test]
    fn writes_seq_dot_status_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let file = StatusFile::new(dir.path(), 7);
        assert_eq!(file.path(), dir.path().join("7.status"));
        file.write(
            &Report::new("Enable", State::Success, "done"),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap();
        let value = parse(&std::fs::read(file.path()).unwrap());
        assert_eq!(value[0]["status"]["status"], "success");
        assert_eq!(value[0]["timestampUTC"], "1970-01-01T00:00:00Z");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["7.status".to_string()],
            "no temp file left behind"
        );
    }

    #[test]
    fn write_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = StatusFile::new(&dir.path().join("missing"), 1);
        let err = file
            .write(
                &Report::new("Enable", State::Success, "done"),
                OffsetDateTime::UNIX_EPOCH,
            )
            .unwrap_err();
        assert_eq!(err.code(), "status.write");
        assert!(err.to_string().contains("missing/1.status"), "{err}");
    }
}
