//! `akvvm inspect FILE|URL`: what a PFX, a PEM bundle, a base64 secret value, a saved Key Vault
//! secret answer (JSON) or a store entry holds; or, given a Key Vault secret URL, what the vault
//! holds right now (fetched with the identity of the settings, installed nowhere).

use std::path::PathBuf;
use std::process::ExitCode;

use akvvm_cert::certificate::{self, Certificate, CertificateBundle};
use anyhow::Context as _;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::output;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// A PFX (binary or base64, as a Key Vault secret value), a PEM bundle, a saved secret
    /// answer (`az keyvault secret show` JSON), or a store entry; or a Key Vault secret URL
    /// (`https://myvault.vault.azure.net/secrets/web[/version]`), read with the identity of
    /// --settings.
    path: PathBuf,

    #[command(flatten)]
    source: super::run::SettingsSource,

    /// The PFX password; Key Vault's own PFX files have none (the default).
    #[arg(long, default_value = "", hide_default_value = true)]
    password: String,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl std::fmt::Debug for InspectArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InspectArgs")
            .field("path", &self.path)
            .field(
                "password",
                &format_args!("<{} bytes redacted>", self.password.len()),
            )
            .field("json", &self.json)
            .field("source", &self.source)
            .finish()
    }
}

/// What names and identifies one certificate (the leaf's, at the top of the report, and each
/// of the chain's).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    subject: String,
    issuer: String,
    sans: Vec<String>,
    serial: String,
    thumbprint: String,
    sha256: String,
    not_before: String,
    not_after: String,
}

impl Identity {
    fn of(cert: &Certificate) -> Identity {
        Identity {
            subject: cert.subject.clone(),
            issuer: cert.issuer.clone(),
            sans: cert.sans.iter().map(ToString::to_string).collect(),
            serial: cert.serial.clone(),
            thumbprint: cert.thumbprint(),
            sha256: cert.sha256_fingerprint(),
            not_before: timestamp(cert.not_before),
            not_after: timestamp(cert.not_after),
        }
    }
}

/// One certificate of the chain, leaf first.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CertReport {
    role: &'static str,
    #[serde(flatten)]
    id: Identity,
    key_type: String,
    is_ca: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    file: String,
    format: &'static str,
    #[serde(flatten)]
    leaf: Identity,
    expired: bool,
    key_type: String,
    chain: Vec<CertReport>,
    warnings: Vec<String>,
}

impl InspectArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if let Some(url) = self.path.to_str().filter(|p| p.contains("://")) {
            return self.run_url(url);
        }
        if self.path.is_dir() {
            anyhow::bail!("{}", directory_hint(&self.path));
        }
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("failed to read {}", self.path.display()))?;
        let (format, decoded) = decode(&bytes, &self.password);
        let bundle = decoded.map_err(|err| {
            // A file on disk (unlike a Key Vault secret) may well have a password.
            let hint = match (&err, format) {
                (akvvm_cert::CertError::PfxBadPassword { .. }, "PFX" | "base64 PFX")
                    if self.password.is_empty() =>
                {
                    "; give it with --password"
                }
                _ => "",
            };
            anyhow::anyhow!(
                "{} is not a usable certificate ({format}): {err}{hint} [{}]",
                self.path.display(),
                err.code()
            )
        })?;
        let report = report(&self.path, format, &bundle);
        if self.json {
            output::line(serde_json::to_string_pretty(&report)?);
        } else {
            print_text(&report);
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl InspectArgs {
    /// Fetches the secret at `url` with the identity of the settings and reports it.
    fn run_url(&self, url: &str) -> anyhow::Result<ExitCode> {
        let secret_url = akvvm::settings::SecretUrl::parse(url)
            .map_err(|e| anyhow::anyhow!("{url} is not a Key Vault secret URL: {e}"))?;
        if self.source.settings.is_none() && self.source.handler_environment.is_none() {
            anyhow::bail!(
                "reading {url} needs an identity: give --settings FILE (its authenticationSettings, \
                 caCertificates and resolve are used) or --handler-environment PATH"
            );
        }
        let settings = self.source.load()?.settings;
        let client = akvvm::sync::connect::vault_client(&settings, &secret_url.vault_url)
            .with_context(|| format!("cannot set up a client for {}", secret_url.vault_url))?;
        let runtime = super::runtime()?;
        let secret = runtime
            .block_on(async {
                match &secret_url.version {
                    Some(version) => client.get_version(&secret_url.name, version).await,
                    None => client.get_latest(&secret_url.name).await,
                }
            })
            .map_err(|e| anyhow::anyhow!("{e} [{}]", e.code()))?;
        let bundle = certificate::decode_secret(secret.content_type.as_deref(), &secret.value)
            .map_err(|err| {
                anyhow::anyhow!(
                    "{url} (version {}) is not a usable certificate: {err} [{}]",
                    secret.version,
                    err.code()
                )
            })?;
        let format = match secret.content_type.as_deref() {
            Some("application/x-pem-file") => "Key Vault secret, PEM",
            Some("application/x-pkcs12") => "Key Vault secret, PFX",
            _ => "Key Vault secret",
        };
        let location = format!(
            "{}/secrets/{}/{}",
            secret_url.vault_url.as_str().trim_end_matches('/'),
            secret_url.name,
            secret.version
        );
        let report = report(std::path::Path::new(&location), format, &bundle);
        if self.json {
            output::line(serde_json::to_string_pretty(&report)?);
        } else {
            print_text(&report);
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// What to say when given a directory (a store, most likely): name the certificates in it.
fn directory_hint(dir: &std::path::Path) -> String {
    let mut links: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.ends_with(".live"))
        .collect();
    links.sort();
    match links.as_slice() {
        [] => format!(
            "{} is a directory; give a certificate file (a PFX, PEM or store entry) instead",
            dir.display()
        ),
        names => format!(
            "{} is a directory; inspect one of the certificates in it: {}",
            dir.display(),
            names
                .iter()
                .take(10)
                .map(|n| dir.join(n).display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Recognises the file's form and decodes it.
fn decode(
    bytes: &[u8],
    password: &str,
) -> (
    &'static str,
    Result<CertificateBundle, akvvm_cert::CertError>,
) {
    if bytes.first() == Some(&0x30) {
        return ("PFX", certificate::decode_pfx(bytes, password));
    }
    let text = String::from_utf8_lossy(bytes);
    // Text saved by a Windows tool may start with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if text.trim_start().starts_with('{') {
        return ("Key Vault secret answer", decode_secret_answer(text));
    }
    if text.contains("-----BEGIN ") {
        return ("PEM", certificate::decode_pem(text));
    }
    match certificate::pfx_base64(text) {
        Ok(der) => ("base64 PFX", certificate::decode_pfx(&der, password)),
        Err(err) => ("unknown", Err(err)),
    }
}

/// A saved `GET /secrets/{name}` answer (`az keyvault secret show` prints the same): its `value`,
/// decoded by its `contentType` as the agent would.
fn decode_secret_answer(text: &str) -> Result<CertificateBundle, akvvm_cert::CertError> {
    let not_an_answer = |reason: String| akvvm_cert::CertError::NotACertificate { reason };
    let answer: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| not_an_answer(format!("the file starts with {{ but is not JSON: {e}")))?;
    let value = answer
        .get("value")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            not_an_answer(
                "JSON without a \"value\" string; give a Key Vault secret answer \
             ({\"value\": ..., \"contentType\": ...}, as az keyvault secret show prints it) or \
             the value itself"
                    .into(),
            )
        })?;
    let content_type = answer.get("contentType").and_then(|v| v.as_str());
    certificate::decode_secret(content_type, value)
}

fn timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn cert_report(role: &'static str, cert: &Certificate) -> CertReport {
    CertReport {
        role,
        id: Identity::of(cert),
        key_type: cert.key_type.to_string(),
        is_ca: cert.is_ca,
    }
}

fn report(path: &std::path::Path, format: &'static str, bundle: &CertificateBundle) -> Report {
    let leaf = &bundle.leaf;
    let mut chain = vec![cert_report("leaf", leaf)];
    let last = bundle.chain.len().saturating_sub(1);
    for (i, cert) in bundle.chain.iter().enumerate() {
        let role = if i == last && cert.is_self_issued() {
            "root"
        } else {
            "intermediate"
        };
        chain.push(cert_report(role, cert));
    }
    Report {
        file: path.display().to_string(),
        format,
        leaf: Identity::of(leaf),
        expired: leaf.not_after < OffsetDateTime::now_utc(),
        key_type: bundle.key.key_type().to_string(),
        chain,
        warnings: bundle.warnings.clone(),
    }
}

fn print_text(r: &Report) {
    let sans = if r.leaf.sans.is_empty() {
        "(none)".to_string()
    } else {
        r.leaf.sans.join(", ")
    };
    output::line(format!("file:        {} ({})", r.file, r.format));
    output::line(format!("subject:     {}", r.leaf.subject));
    output::line(format!("issuer:      {}", r.leaf.issuer));
    output::line(format!("SANs:        {sans}"));
    output::line(format!("serial:      {}", r.leaf.serial));
    output::line(format!("thumbprint:  {}", r.leaf.thumbprint));
    output::line(format!("SHA-256:     {}", r.leaf.sha256));
    output::line(format!("not before:  {}", r.leaf.not_before));
    let expired = if r.expired { " (EXPIRED)" } else { "" };
    output::line(format!("not after:   {}{expired}", r.leaf.not_after));
    output::line(format!("key:         {} (matches the leaf)", r.key_type));
    output::line("chain:");
    for (i, c) in r.chain.iter().enumerate() {
        output::line(format!("  {i}. {:<12} {}", c.role, c.id.subject));
        output::line(format!(
            "     {:<12} thumbprint {}, {}, not after {}",
            "", c.id.thumbprint, c.key_type, c.id.not_after
        ));
    }
    for warning in &r.warnings {
        output::line(format!("warning:     {warning}"));
    }
}
