//! `akvvm cscfg check`: is every certificate a Cloud Services configuration (`.cscfg`) names
//! installed on this machine?
//!
//! A `.cscfg` lists, per role, `<Certificate name="..." thumbprint="..."
//! thumbprintAlgorithm="sha1" />` entries (Microsoft's "Certificates and Key Vault" guide: the
//! thumbprint must match the certificate in Key Vault). A role instance that starts without one
//! of them fails in ways that are hard to trace, so this check compares each thumbprint with
//! what akvvm installed (the state file) and with the certificates the guest agent placed from
//! `osProfile.secrets` (`<THUMBPRINT>.crt` in the bootstrap directories).
//!
//! Thumbprints copied from the Windows certificate dialog often carry an invisible U+200E
//! (left-to-right mark) or spaces; spaces and case are forgiven, any other character is reported
//! with its position, since Azure compares thumbprints exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One `<Certificate>` entry of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CscfgCertificate {
    /// The role's `name`.
    pub role: String,
    /// The certificate's `name` in the role.
    pub name: String,
    /// The `thumbprint` attribute as written.
    pub thumbprint: String,
    /// `thumbprintAlgorithm` (`sha1` when absent).
    pub algorithm: String,
    /// The line of the element in the file.
    pub line: u32,
}

/// Why a `.cscfg` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CscfgError {
    #[error(
        "{path}: not well-formed XML: {message}; a .cscfg is the ServiceConfiguration XML file"
    )]
    Xml { path: PathBuf, message: String },
    #[error(
        "{path}: the root element is <{found}>, not <ServiceConfiguration>; give the service \
         configuration (.cscfg), not the service definition (.csdef)"
    )]
    NotServiceConfiguration { path: PathBuf, found: String },
}

akvvm_cert::error_codes! {
    CscfgError {
        CscfgError::Xml { .. } => "cscfg.not_xml",
        CscfgError::NotServiceConfiguration { .. } => "cscfg.not_service_configuration",
    }
}

/// Reads every role's certificates from the text of a `.cscfg` read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Vec<CscfgCertificate>, CscfgError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let document = roxmltree::Document::parse(text).map_err(|e| CscfgError::Xml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let root = document.root_element();
    if root.tag_name().name() != "ServiceConfiguration" {
        return Err(CscfgError::NotServiceConfiguration {
            path: path.to_path_buf(),
            found: root.tag_name().name().to_string(),
        });
    }
    let mut out = Vec::new();
    for role in root
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "Role")
    {
        let role_name = role.attribute("name").unwrap_or_default().to_string();
        for certificates in role
            .children()
            .filter(|n| n.is_element() && n.tag_name().name() == "Certificates")
        {
            for cert in certificates
                .children()
                .filter(|n| n.is_element() && n.tag_name().name() == "Certificate")
            {
                out.push(CscfgCertificate {
                    role: role_name.clone(),
                    name: cert.attribute("name").unwrap_or_default().to_string(),
                    thumbprint: cert.attribute("thumbprint").unwrap_or_default().to_string(),
                    algorithm: cert
                        .attribute("thumbprintAlgorithm")
                        .unwrap_or("sha1")
                        .to_string(),
                    line: document.text_pos_at(cert.range().start).row,
                });
            }
        }
    }
    Ok(out)
}

/// Why a thumbprint is not 40 hexadecimal digits ([`normalize_thumbprint`]); `position` counts
/// characters from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThumbprintError {
    #[error(
        "character {position} is an invisible U+{code:04X} (copied from the Windows certificate \
         dialog?); delete it, Azure compares thumbprints exactly"
    )]
    Invisible { position: usize, code: u32 },
    #[error("character {position} is {found:?}, not a hexadecimal digit")]
    NotHex { position: usize, found: char },
    #[error("the thumbprint is empty")]
    Empty,
    #[error("{digits} hexadecimal digits, but a SHA-1 thumbprint has 40")]
    WrongLength { digits: usize },
}

/// A thumbprint as compared: 40 upper-case hex digits. Spaces and case are forgiven; anything
/// else is an error that says which character, where.
pub fn normalize_thumbprint(raw: &str) -> Result<String, ThumbprintError> {
    let mut out = String::with_capacity(40);
    for (i, c) in raw.chars().enumerate() {
        match c {
            ' ' | '\t' => {}
            c if c.is_ascii_hexdigit() => out.push(c.to_ascii_uppercase()),
            '\u{200e}' | '\u{200f}' | '\u{feff}' | '\u{200b}' => {
                return Err(ThumbprintError::Invisible {
                    position: i + 1,
                    code: u32::from(c),
                });
            }
            c => {
                return Err(ThumbprintError::NotHex {
                    position: i + 1,
                    found: c,
                });
            }
        }
    }
    if raw.trim().is_empty() {
        return Err(ThumbprintError::Empty);
    }
    if out.len() != 40 {
        return Err(ThumbprintError::WrongLength { digits: out.len() });
    }
    Ok(out)
}

/// Where a certificate with a given thumbprint is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// The observed Key Vault URL it came from, when akvvm installed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Installed certificates by upper-case thumbprint.
#[derive(Debug, Clone, Default)]
pub struct Installed(BTreeMap<String, Vec<Location>>);

impl Installed {
    /// Records a certificate.
    pub fn add(&mut self, thumbprint: &str, location: Location) {
        self.0
            .entry(thumbprint.to_ascii_uppercase())
            .or_default()
            .push(location);
    }

    /// The certificates akvvm installed, from its state file (`akvvm::sync::state`):
    /// `(url, thumbprint, file)` of each entry with both.
    pub fn add_state<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, &'a str, &'a Path)>,
    ) {
        for (url, thumbprint, file) in entries {
            self.add(
                thumbprint,
                Location {
                    file: file.to_path_buf(),
                    url: Some(url.to_string()),
                },
            );
        }
    }

    /// The guest agent's `<THUMBPRINT>.crt` files in `directory` (missing directories are empty).
    pub fn add_bootstrap_directory(&mut self, directory: &Path) {
        let Ok(entries) = std::fs::read_dir(directory) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".crt"))
                .map(str::to_string)
            else {
                continue;
            };
            if stem.len() == 40 && stem.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.add(
                    &stem,
                    Location {
                        file: path,
                        url: None,
                    },
                );
            }
        }
    }

    fn find(&self, thumbprint: &str) -> &[Location] {
        self.0.get(thumbprint).map_or(&[], Vec::as_slice)
    }
}

/// The verdict for one `<Certificate>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Verdict {
    /// Installed at these places.
    Installed { locations: Vec<Location> },
    /// Not installed anywhere akvvm knows of.
    Missing,
    /// The thumbprint cannot match anything.
    BadThumbprint { reason: String },
    /// Not a SHA-1 thumbprint.
    UnsupportedAlgorithm,
}

/// One `<Certificate>` and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    #[serde(flatten)]
    pub certificate: CscfgCertificate,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Finding {
    pub fn is_installed(&self) -> bool {
        matches!(self.verdict, Verdict::Installed { .. })
    }
}

/// Checks each certificate against what is installed.
pub fn check(certificates: &[CscfgCertificate], installed: &Installed) -> Vec<Finding> {
    certificates
        .iter()
        .map(|c| {
            let verdict = if !c.algorithm.eq_ignore_ascii_case("sha1") {
                Verdict::UnsupportedAlgorithm
            } else {
                match normalize_thumbprint(&c.thumbprint) {
                    Err(reason) => Verdict::BadThumbprint {
                        reason: reason.to_string(),
                    },
                    Ok(thumbprint) => match installed.find(&thumbprint) {
                        [] => Verdict::Missing,
                        found => Verdict::Installed {
                            locations: found.to_vec(),
                        },
                    },
                }
            };
            Finding {
                certificate: c.clone(),
                verdict,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSCFG: &str = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>
<ServiceConfiguration serviceName=\"Contoso\" xmlns=\"http://schemas.microsoft.com/ServiceHosting/2008/10/ServiceConfiguration\" osFamily=\"6\" osVersion=\"*\" schemaVersion=\"2015-04.2.6\">
  <Role name=\"WebRole1\">
    <Instances count=\"2\" />
    <Certificates>
      <Certificate name=\"ssl\" thumbprint=\"9f1c3a5e0d2b4c6f8a1e3d5b7c9f0a2b4d6e8f01\" thumbprintAlgorithm=\"sha1\" />
      <Certificate name=\"copied\" thumbprint=\"\u{200e}9F1C3A5E0D2B4C6F8A1E3D5B7C9F0A2B4D6E8F01\" thumbprintAlgorithm=\"sha1\" />
    </Certificates>
  </Role>
  <Role name=\"Worker\">
    <Certificates>
      <Certificate name=\"api\" thumbprint=\"AB CD EF 01 23 45 67 89 AB CD EF 01 23 45 67 89 AB CD EF 01\" />
      <Certificate name=\"sha256\" thumbprint=\"00\" thumbprintAlgorithm=\"sha256\" />
    </Certificates>
  </Role>
</ServiceConfiguration>
";

    #[test]
    fn roles_and_certificates_are_read_with_their_lines() {
        let certs = parse(Path::new("c.cscfg"), CSCFG).unwrap();
        let summary: Vec<(&str, &str, u32)> = certs
            .iter()
            .map(|c| (c.role.as_str(), c.name.as_str(), c.line))
            .collect();
        assert_eq!(
            summary,
            [
                ("WebRole1", "ssl", 6),
                ("WebRole1", "copied", 7),
                ("Worker", "api", 12),
                ("Worker", "sha256", 13)
            ]
        );
        assert_eq!(certs[2].algorithm, "sha1", "the default");
    }

    #[test]
    fn each_certificate_gets_its_verdict() {
        let certs = parse(Path::new("c.cscfg"), CSCFG).unwrap();
        let mut installed = Installed::default();
        installed.add(
            "9F1C3A5E0D2B4C6F8A1E3D5B7C9F0A2B4D6E8F01",
            Location {
                file: "/store/v.ssl.1".into(),
                url: Some("https://v.vault.azure.net/secrets/ssl".into()),
            },
        );
        let findings = check(&certs, &installed);
        assert!(findings[0].is_installed());
        let Verdict::BadThumbprint { reason } = &findings[1].verdict else {
            panic!("{:?}", findings[1])
        };
        assert!(
            reason.contains("character 1 is an invisible U+200E"),
            "{reason}"
        );
        assert_eq!(findings[2].verdict, Verdict::Missing, "spaces forgiven");
        assert_eq!(findings[3].verdict, Verdict::UnsupportedAlgorithm);
    }

    #[test]
    fn thumbprints_that_cannot_match_say_why() {
        for (raw, expected) in [
            ("", "the thumbprint is empty"),
            (
                "9F1C",
                "4 hexadecimal digits, but a SHA-1 thumbprint has 40",
            ),
            ("9F1C:3A", "character 5 is ':', not a hexadecimal digit"),
        ] {
            let reason = normalize_thumbprint(raw).unwrap_err().to_string();
            assert!(reason.contains(expected), "{raw:?}: {reason}");
        }
    }

    #[test]
    fn not_a_service_configuration() {
        let error = parse(Path::new("x.csdef"), "<ServiceDefinition name=\"x\"/>").unwrap_err();
        assert!(
            error.to_string().contains("not <ServiceConfiguration>"),
            "{error}"
        );
        let error = parse(Path::new("x.cscfg"), "<ServiceConfiguration>").unwrap_err();
        assert!(error.to_string().contains("not well-formed XML"), "{error}");
    }
}
