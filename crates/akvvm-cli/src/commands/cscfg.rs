//! `akvvm cscfg check FILE.cscfg`: is every certificate a Cloud Services configuration names
//! installed here (by akvvm, from Key Vault, or by the guest agent from `osProfile.secrets`)?

use std::path::PathBuf;
use std::process::ExitCode;

use akvvm::cscfg::{self, Finding, Installed, Verdict};
use akvvm::settings::DEFAULT_BOOTSTRAP_CERTIFICATE_DIRECTORY;
use akvvm::sync::state::StateFile;
use anyhow::Context;

use super::run::SettingsSource;
use super::status::render_table;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct CscfgArgs {
    #[command(subcommand)]
    command: CscfgCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CscfgCommand {
    /// Check that every <Certificate thumbprint=...> of every role is installed on this machine.
    /// Exit 0 when all are, 1 when one is missing or its thumbprint cannot match, 2 when the
    /// file cannot be read.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The service configuration (.cscfg).
    file: PathBuf,

    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,

    /// akvvm's state directory (default: the settings' `akvvm.stateDirectory`, else
    /// /var/lib/akvvm).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Where the guest agent puts `<THUMBPRINT>.crt` files (repeatable; default: the settings'
    /// `akvvm.bootstrapCertificateDirectories`, else /var/lib/waagent).
    #[arg(long = "bootstrap-dir", value_name = "DIR")]
    bootstrap_dirs: Vec<PathBuf>,

    #[command(flatten)]
    source: SettingsSource,
}

impl CscfgArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            CscfgCommand::Check(args) => args.run(),
        }
    }
}

impl CheckArgs {
    fn run(self) -> anyhow::Result<ExitCode> {
        let text = match std::fs::read_to_string(&self.file) {
            Ok(text) => text,
            Err(e) => {
                output::print_error_chain(
                    &anyhow::Error::new(e).context(format!("cannot read {}", self.file.display())),
                );
                return Ok(ExitCode::from(2));
            }
        };
        let certificates = match cscfg::parse(&self.file, &text) {
            Ok(certificates) => certificates,
            Err(e) => {
                output::print_error_chain(&anyhow::Error::new(e));
                return Ok(ExitCode::from(2));
            }
        };

        let (settings, state_directory) = self
            .source
            .optional_with_state_dir(self.state_dir.as_deref())?;
        let bootstrap_dirs = match (self.bootstrap_dirs.is_empty(), &settings) {
            (false, _) => self.bootstrap_dirs.clone(),
            (true, Some(settings)) => settings.agent.bootstrap_certificate_directories.clone(),
            (true, None) => vec![PathBuf::from(DEFAULT_BOOTSTRAP_CERTIFICATE_DIRECTORY)],
        };
        let state_path = akvvm::sync::state_file_in(&state_directory);
        let state = StateFile::load(&state_path)
            .with_context(|| format!("cannot read akvvm's state file {}", state_path.display()))?;
        let mut installed = Installed::default();
        installed.add_state(state.entries().filter_map(|(url, entry)| {
            Some((url, entry.thumbprint.as_deref()?, entry.file.as_deref()?))
        }));
        for dir in &bootstrap_dirs {
            installed.add_bootstrap_directory(dir);
        }

        let findings = cscfg::check(&certificates, &installed);
        if self.json {
            output::line(serde_json::to_string_pretty(&findings)?);
        } else {
            print_findings(&self.file, &findings);
        }
        Ok(if findings.iter().all(Finding::is_installed) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

fn print_findings(file: &std::path::Path, findings: &[Finding]) {
    if findings.is_empty() {
        output::line(format!(
            "{}: no role names a certificate; nothing to check",
            file.display()
        ));
        return;
    }
    let header = ["ROLE", "CERTIFICATE", "THUMBPRINT", "RESULT"];
    let rows: Vec<[String; 4]> = findings
        .iter()
        .map(|f| {
            let c = &f.certificate;
            let result = match &f.verdict {
                Verdict::Installed { locations } => {
                    let l = &locations[0];
                    match &l.url {
                        Some(url) => format!("installed: {} (from {url})", l.file.display()),
                        None => format!("installed: {} (guest agent)", l.file.display()),
                    }
                }
                Verdict::Missing => "MISSING: no installed certificate has this thumbprint; \
                                     observe its Key Vault URL, or check the thumbprint in Key Vault"
                    .to_string(),
                Verdict::BadThumbprint { reason } => {
                    format!("BAD THUMBPRINT (line {}): {reason}", c.line)
                }
                Verdict::UnsupportedAlgorithm => format!(
                    "UNSUPPORTED (line {}): thumbprintAlgorithm {:?}; Cloud Services and akvvm use sha1",
                    c.line, c.algorithm
                ),
            };
            [c.role.clone(), c.name.clone(), c.thumbprint.clone(), result]
        })
        .collect();
    output::line(render_table(&header, &rows));
    let missing = findings.iter().filter(|f| !f.is_installed()).count();
    output::line(if missing == 0 {
        format!("all {} certificates are installed", findings.len())
    } else {
        format!(
            "{missing} of {} certificates are not installed",
            findings.len()
        )
    });
}
