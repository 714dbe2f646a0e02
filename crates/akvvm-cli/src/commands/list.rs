//! `akvvm list`: the observed certificates, where each is installed, and its reload hook.

use std::process::ExitCode;

use serde::Serialize;

use super::run::SettingsSource;
use super::status::render_table;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    source: SettingsSource,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    url: String,
    pinned_version: Option<String>,
    link: String,
    custom_link: Option<String>,
    reload: Option<Vec<String>>,
}

impl ListArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let settings = self.source.load()?.settings;
        let rows: Vec<Row> = settings
            .observed
            .iter()
            .map(|c| Row {
                url: c.url.to_string(),
                pinned_version: c.url.version.clone(),
                link: c.stable_link_in(settings.mode.mode).display().to_string(),
                custom_link: c
                    .link_name
                    .as_ref()
                    .map(|l| c.store_dir.join(l).display().to_string()),
                reload: c
                    .options
                    .reload
                    .as_ref()
                    .or(settings.agent.reload.as_ref())
                    .map(|h| h.command.clone()),
            })
            .collect();
        if self.json {
            output::line(serde_json::to_string_pretty(&rows)?);
            return Ok(ExitCode::SUCCESS);
        }
        let cells: Vec<[String; 4]> = rows
            .iter()
            .map(|r| {
                [
                    r.url.clone(),
                    match &r.custom_link {
                        Some(custom) => format!("{} (and {custom})", r.link),
                        None => r.link.clone(),
                    },
                    r.pinned_version
                        .clone()
                        .map(|v| format!("pinned {v}"))
                        .unwrap_or_else(|| "latest".into()),
                    r.reload
                        .as_ref()
                        .map(|c| c.join(" "))
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        output::line(render_table(
            &["CERTIFICATE", "LINK", "VERSION", "RELOAD"],
            &cells,
        ));
        Ok(ExitCode::SUCCESS)
    }
}
