//! `akvvm validate PATH [--parameters FILE] [--json]`: lint settings, an extension resource, an
//! ARM template or a handler settings file before deploying it.
//!
//! Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage error or unreadable file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The file to check: settings JSON, a VM/scale-set/Cloud Services extension, an ARM
    /// template, or a handler `<seq>.settings` file.
    path: PathBuf,

    /// An ARM parameters file (`{"parameters": {"name": {"value": ...}}}`) used to resolve
    /// `[parameters('name')]` expressions.
    #[arg(long, short = 'p', value_name = "FILE")]
    parameters: Option<PathBuf>,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl ValidateArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let report = akvvm::validate::validate_file(&self.path, self.parameters.as_deref())
            .with_context(|| format!("cannot validate {}", self.path.display()))?;
        if self.json {
            let json = serde_json::to_string_pretty(&report)
                .context("failed to render the report as JSON")?;
            output::line(json);
        } else {
            output::line(report.render_text().trim_end());
        }
        Ok(ExitCode::from(report.exit_code()))
    }
}
