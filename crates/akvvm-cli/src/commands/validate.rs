//! `akvvm validate`.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The file to check.
    path: PathBuf,
}

impl ValidateArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        anyhow::bail!("validate is being built: {}", self.path.display())
    }
}
