//! `akvvm status`: per certificate, the installed version, thumbprint, expiry, last check and
//! last error, from the state file. A table, or `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use akvvm::status::format_timestamp;
use akvvm::sync::state::{StateEntry, StateFile};
use serde::Serialize;

use super::run::SettingsSource;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,

    /// The state directory (default: the settings' `akvvm.stateDirectory`, else /var/lib/akvvm).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    #[command(flatten)]
    source: SettingsSource,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    url: String,
    #[serde(flatten)]
    entry: StateEntry,
}

impl StatusArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let (settings, state_directory) = self
            .source
            .optional_with_state_dir(self.state_dir.as_deref())?;
        let state = StateFile::load(&akvvm::sync::state_file_in(&state_directory))?;
        let mut rows: Vec<Row> = match &settings {
            Some(settings) => settings
                .observed
                .iter()
                .map(|c| {
                    let url = c.url.to_string();
                    let entry = state.entry(&url).cloned().unwrap_or_default();
                    Row { url, entry }
                })
                .collect(),
            None => state
                .entries()
                .map(|(url, e)| Row {
                    url: url.to_string(),
                    entry: e.clone(),
                })
                .collect(),
        };
        rows.sort_by(|a, b| a.url.cmp(&b.url));
        if self.json {
            output::line(serde_json::to_string_pretty(&rows)?);
        } else {
            print_table(&rows);
        }
        let healthy = rows
            .iter()
            .all(|r| r.entry.installed_version.is_some() && r.entry.last_error.is_none());
        Ok(if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

fn print_table(rows: &[Row]) {
    if rows.is_empty() {
        output::line("no certificates recorded yet");
        return;
    }
    let header = [
        "CERTIFICATE",
        "VERSION",
        "THUMBPRINT",
        "EXPIRES",
        "LAST CHECK",
        "LAST ERROR",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let e = &r.entry;
            [
                r.url.clone(),
                e.installed_version
                    .clone()
                    .unwrap_or_else(|| "(not installed)".into()),
                e.thumbprint.clone().unwrap_or_else(|| "-".into()),
                e.not_after
                    .map(format_timestamp)
                    .unwrap_or_else(|| "-".into()),
                e.last_check
                    .map(format_timestamp)
                    .unwrap_or_else(|| "-".into()),
                e.last_error
                    .as_ref()
                    .map(|err| format!("[{}] {}", err.code, err.message))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::line(render_table(&header, &cells));
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn render_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let render_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        line.trim_end().to_string()
    };
    let mut lines = vec![render_row(header.to_vec())];
    for row in rows {
        lines.push(render_row(row.iter().map(String::as_str).collect()));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::render_table;

    #[test]
    fn columns_are_aligned() {
        let table = render_table(
            &["A", "BB", "C"],
            &[
                [
                    "long-value".to_string(),
                    "x".to_string(),
                    "last".to_string(),
                ],
                ["s".to_string(), "yyy".to_string(), "".to_string()],
            ],
        );
        assert_eq!(
            table,
            "A           BB   C\nlong-value  x    last\ns           yyy"
        );
    }
}
