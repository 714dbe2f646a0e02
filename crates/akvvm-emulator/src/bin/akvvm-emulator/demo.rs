//! `akvvm-emulator demo`: the README's first command. Starts the local vault in-process, creates
//! a vault, an identity and a few certificates (RSA and EC, PFX and PEM), runs the akvvm agent
//! (the `akvvm` library's sync engine) against real vault URLs (mapped to loopback through
//! `akvvm.resolve`, trusting the local vault's CA through `akvvm.caCertificates`), shows the
//! installed files and thumbprints, rotates a certificate, syncs again and shows the link move
//! to the new version, then stops. It lives here, not in the `akvvm` binary, so that the agent
//! deployed to VMs does not carry the local vault.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use akvvm::settings::Settings;
use akvvm::sync::{CertOutcome, CycleReport, Engine, EngineOptions};
use akvvm_emulator::{Emulator, EmulatorConfig, IdentitySpec};
use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The demo's vault.
const VAULT: &str = "akvvm-demo";

/// The certificates the demo creates: name, key type, curve or size, secret content type.
const CERTIFICATES: &[(&str, &str, &str)] = &[
    ("web", "RSA", "application/x-pkcs12"),
    ("api", "EC", "application/x-pem-file"),
    ("mail", "EC", "application/x-pkcs12"),
];

#[derive(Debug, clap::Args)]
pub struct Demo {
    /// Keep the demo's files (settings, CA, store, state) in DIR instead of a temp directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl Demo {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let temp;
        let dir = match &self.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("failed to create {}", dir.display()))?;
                std::fs::canonicalize(dir)
                    .with_context(|| format!("failed to resolve {}", dir.display()))?
            }
            None => {
                temp = tempfile::Builder::new()
                    .prefix("akvvm-demo-")
                    .tempdir()
                    .context("failed to create a temp directory")?;
                temp.path().to_path_buf()
            }
        };
        let complete = demo(&dir).await?;
        if self.dir.is_some() {
            line(format!("\nThe files stay in {}.", dir.display()));
        }
        Ok(if complete {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

/// Prints a line of the demo's output to stdout (its logs go to stderr).
#[allow(clippy::print_stdout)]
fn line(text: impl std::fmt::Display) {
    println!("{text}");
}

fn policy(kty: &str, content_type: &str, name: &str) -> serde_json::Value {
    akvvm_emulator::certs::self_signed_policy(kty, content_type, &format!("CN={name}.demo.example"))
}

async fn demo(dir: &Path) -> anyhow::Result<bool> {
    line("akvvm demo: the local vault, the agent, a rotation.\n");
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .context("failed to start the local vault")?;
    let port = emulator.https_addr().port();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, emulator.ca_pem())
        .with_context(|| format!("failed to write {}", ca.display()))?;
    line(format!(
        "1. Local vault (Key Vault, Entra ID, IMDS) on https://127.0.0.1:{port} and {}; its CA is {}",
        emulator.imds_url(),
        ca.display()
    ));

    let identity = emulator
        .set_system_identity(IdentitySpec::default())
        .map_err(|e| anyhow::anyhow!("failed to create the managed identity: {e:?}"))?;
    emulator
        .add_vault(VAULT)
        .map_err(|e| anyhow::anyhow!("failed to create the vault: {e:?}"))?;
    emulator
        .assign_roles(VAULT, "system", &["Key Vault Secrets User"])
        .map_err(|e| anyhow::anyhow!("failed to assign the role: {e:?}"))?;
    line(format!(
        "2. Vault https://{VAULT}.vault.azure.net; the VM's managed identity (object id {}) has the \"Key Vault Secrets User\" role",
        identity.object_id
    ));
    for (name, kty, content_type) in CERTIFICATES {
        let created = emulator
            .create_certificate(VAULT, name, &policy(kty, content_type, name))
            .map_err(|e| anyhow::anyhow!("failed to create certificate {name}: {e:?}"))?;
        line(format!(
            "   certificate {name:<5} {kty} key, secret {content_type:<22} version {}  thumbprint {}",
            created.version, created.thumbprint
        ));
    }

    let store = dir.join("store");
    let settings_json = json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": "3600",
            "certificateStoreLocation": store.display().to_string(),
            "observedCertificates": [
                { "url": format!("https://{VAULT}.vault.azure.net/secrets/web"), "customSymbolicLinkName": "nginx-web" },
                format!("https://{VAULT}.vault.azure.net/secrets/api"),
                format!("https://{VAULT}.vault.azure.net/secrets/mail"),
            ]
        },
        "authenticationSettings": { "msiEndpoint": emulator.imds_url() },
        "akvvm": {
            "stateDirectory": dir.join("state").display().to_string(),
            "caCertificates": [ca.display().to_string()],
            "resolve": { format!("{VAULT}.vault.azure.net"): format!("127.0.0.1:{port}") }
        }
    });
    let settings_path = dir.join("settings.json");
    std::fs::write(&settings_path, serde_json::to_vec_pretty(&settings_json)?)
        .with_context(|| format!("failed to write {}", settings_path.display()))?;
    line(format!(
        "3. Settings {} observe https://{VAULT}.vault.azure.net/secrets/{{web,api,mail}}; akvvm.resolve maps the vault to 127.0.0.1:{port}",
        settings_path.display()
    ));

    let settings = Settings::load(&settings_path)?;
    let engine = Engine::new(settings.clone(), EngineOptions::for_settings(&settings))
        .context("failed to start the sync engine")?;
    let cancel = CancellationToken::new();

    line("\n4. Sync (as `akvvm sync --once --settings settings.json` would):");
    let first = engine.cycle(|_| true, &cancel).await;
    print_cycle(&first);
    line(format!("\n   The store {}:", store.display()));
    print_store(&store)?;

    let rotated = emulator
        .rotate_certificate(VAULT, "web")
        .map_err(|e| anyhow::anyhow!("failed to rotate certificate web: {e:?}"))?;
    line(format!(
        "\n5. Rotated certificate web in the vault: new version {}, thumbprint {}",
        rotated.version, rotated.thumbprint
    ));
    let link = store.join(format!("{VAULT}.web"));
    let before = std::fs::read_link(&link).ok();
    line("\n6. Sync again: only the new version is fetched, decoded and installed:");
    let second = engine.cycle(|_| true, &cancel).await;
    print_cycle(&second);
    let after = std::fs::read_link(&link).ok();
    line(format!(
        "\n   {} -> {} (was {})",
        link.display(),
        after
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(missing)".into()),
        before
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(missing)".into()),
    ));
    line(format!("\n   The store {}:", store.display()));
    print_store(&store)?;

    emulator.shutdown();
    let moved = after.is_some() && before != after;
    line(format!(
        "\n7. Stopped the local vault. {}",
        if first.complete() && second.complete() && moved {
            "Every certificate was installed and the rotation followed."
        } else {
            "Something did not go as expected: see the lines above."
        }
    ));
    Ok(first.complete() && second.complete() && moved)
}

fn print_cycle(report: &CycleReport) {
    for cert in &report.certificates {
        let text = match &cert.outcome {
            CertOutcome::Installed(info) => format!(
                "   installed {}  version {}  thumbprint {}",
                cert.url,
                info.version,
                info.thumbprint.as_deref().unwrap_or("-")
            ),
            CertOutcome::Unchanged(info) => {
                format!(
                    "   current   {}  version {} (nothing written)",
                    cert.url, info.version
                )
            }
            CertOutcome::Failed { code, message, .. } => {
                format!("   FAILED    {}  [{code}] {message}", cert.url)
            }
        };
        line(text);
    }
}

/// Each entry of the store: links with their targets, files with their mode and size.
fn print_store(store: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut entries: Vec<_> = std::fs::read_dir(store)
        .with_context(|| format!("failed to list {}", store.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(entry.path())
            .with_context(|| format!("failed to stat {}", entry.path().display()))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            line(format!("     {name} -> {}", target.display()));
        } else {
            line(format!(
                "     {name}  ({:o}, {} bytes)",
                meta.permissions().mode() & 0o777,
                meta.len()
            ));
        }
    }
    Ok(())
}
