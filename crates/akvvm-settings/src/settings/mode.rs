//! Which version of the shipped extension akvvm behaves as: 3.x (every deployment made before
//! 2026) or 4.x (what Microsoft documents today), chosen the way the real extension is chosen:
//! by its version.
//!
//! Where the version comes from, first found wins:
//! 1. the guest agent: the handler's version (`AZURE_GUEST_AGENT_EXTENSION_VERSION`, or the
//!    `Microsoft.Azure.KeyVault.KeyVaultForLinux-<version>` directory holding
//!    `HandlerEnvironment.json`); for `akvvm validate` of an extension resource, its
//!    `typeHandlerVersion`. Both arrive as [`ParseOptions::extension_version`];
//! 2. the top-level `akvvm.extensionVersion` setting (`"3"`, `"3.0"`, `"4"`, `"4.0"`, ...), for
//!    akvvm run outside the guest agent;
//! 3. otherwise 3.x, so that nothing installed today changes.
//!
//! A setting that disagrees with the guest agent's version is a warning and loses: under the
//! guest agent the version installed is the version that runs.
//!
//! [`ParseOptions::extension_version`]: super::ParseOptions::extension_version

use std::fmt;

use serde::Serialize;

/// The behaviour akvvm follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub enum ExtensionMode {
    /// Version 3.x (and the 1.x/2.x flat settings it still accepts): `<vault>.<cert>` links to a
    /// file with the chain and the key.
    #[default]
    #[serde(rename = "3.x")]
    V3,
    /// Version 4.x: `.pem`, `.keyid` and `.luma` files, ACLs always, clamped polling.
    #[serde(rename = "4.x")]
    V4,
}

impl fmt::Display for ExtensionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExtensionMode::V3 => "3.x",
            ExtensionMode::V4 => "4.x",
        })
    }
}

impl ExtensionMode {
    /// The store layout this mode writes and reads: 3.x's `<vault>.<cert>` files, or 4.x's
    /// `.pem`/`.keyid`/`.luma` (a 3.x store in the same directory is left as it is).
    pub fn store_layout(self) -> akvvm_cert::store::Layout {
        match self {
            ExtensionMode::V3 => akvvm_cert::store::Layout::V3,
            ExtensionMode::V4 => akvvm_cert::store::Layout::V4,
        }
    }
}

/// Where an extension version came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum VersionOrigin {
    /// `AZURE_GUEST_AGENT_EXTENSION_VERSION`, set by the guest agent for every handler command.
    GuestAgentVariable,
    /// The extension's directory name, `<publisher>.<type>-<version>`.
    HandlerDirectory,
    /// The extension resource's `typeHandlerVersion` (`akvvm validate`).
    TypeHandlerVersion,
    /// The `akvvm.extensionVersion` setting.
    Setting,
    /// Nothing said: the 3.x default.
    Default,
}

impl fmt::Display for VersionOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VersionOrigin::GuestAgentVariable => {
                "the guest agent's AZURE_GUEST_AGENT_EXTENSION_VERSION"
            }
            VersionOrigin::HandlerDirectory => "the extension's directory name",
            VersionOrigin::TypeHandlerVersion => "the extension's typeHandlerVersion",
            VersionOrigin::Setting => "akvvm.extensionVersion",
            VersionOrigin::Default => "no extension version given: the default",
        })
    }
}

/// An extension version and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionVersion {
    /// As written, e.g. `4.0` or `3.2.0.1`.
    pub version: String,
    pub origin: VersionOrigin,
}

impl ExtensionVersion {
    pub fn new(version: impl Into<String>, origin: VersionOrigin) -> Self {
        ExtensionVersion {
            version: version.into(),
            origin,
        }
    }
}

/// The mode the settings were read in, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModeChoice {
    pub mode: ExtensionMode,
    /// The version that decided it (`None` for the default).
    pub version: Option<String>,
    pub origin: VersionOrigin,
}

impl Default for ModeChoice {
    fn default() -> Self {
        ModeChoice {
            mode: ExtensionMode::V3,
            version: None,
            origin: VersionOrigin::Default,
        }
    }
}

impl fmt::Display for ModeChoice {
    /// `4.x (typeHandlerVersion 4.0)`, `3.x (the default ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(version) => write!(f, "{} (version {version}, from {})", self.mode, self.origin),
            None => write!(f, "{} ({})", self.mode, self.origin),
        }
    }
}

/// Why a version names no mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionError {
    /// Not `major[.minor[.build[.revision]]]`.
    Malformed,
    /// A major version akvvm does not implement (5 and up, or 0).
    Unknown(u64),
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionError::Malformed => f.write_str(
                "not a version: write the major version, optionally with its minor one, such as \"3.0\" or \"4.0\"",
            ),
            VersionError::Unknown(major) => write!(
                f,
                "version {major} is not one akvvm implements: it behaves as 3.x (and the 1.x and 2.x settings it accepts) or 4.x"
            ),
        }
    }
}

/// The mode of an extension version: 1.x to 3.x are [`ExtensionMode::V3`], 4.x is
/// [`ExtensionMode::V4`]. `4.x`/`3.X` (a wildcard minor) are accepted as written in docs.
pub fn mode_of_version(version: &str) -> Result<ExtensionMode, VersionError> {
    let version = version.trim();
    let mut parts = version.split('.');
    let major = parts
        .next()
        .and_then(|m| m.parse::<u64>().ok())
        .ok_or(VersionError::Malformed)?;
    let rest: Vec<&str> = parts.collect();
    let wildcard = rest.len() == 1 && rest[0].eq_ignore_ascii_case("x");
    if !wildcard
        && (rest.len() > 3
            || rest
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())))
    {
        return Err(VersionError::Malformed);
    }
    match major {
        1..=3 => Ok(ExtensionMode::V3),
        4 => Ok(ExtensionMode::V4),
        other => Err(VersionError::Unknown(other)),
    }
}

/// The version in an extension directory's name: `Microsoft.Azure.KeyVault.KeyVaultForLinux-4.0.1`
/// gives `4.0.1`; a name without a version gives `None`.
pub fn version_of_directory(name: &str) -> Option<&str> {
    let (_, version) = name.rsplit_once('-')?;
    (!version.is_empty() && version.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        .then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_modes() {
        for v in [
            "1", "1.0", "2.0", "3", "3.0", "3.2.1", "3.0.0.1", " 3.0 ", "3.x",
        ] {
            assert_eq!(mode_of_version(v), Ok(ExtensionMode::V3), "{v}");
        }
        for v in ["4", "4.0", "4.1.2", "4.X"] {
            assert_eq!(mode_of_version(v), Ok(ExtensionMode::V4), "{v}");
        }
        for v in ["", "four", "4.", "4..0", "4.0.0.0.0", "v4", "4.0-beta"] {
            assert_eq!(mode_of_version(v), Err(VersionError::Malformed), "{v}");
        }
        assert_eq!(mode_of_version("5.0"), Err(VersionError::Unknown(5)));
        assert_eq!(mode_of_version("0.9"), Err(VersionError::Unknown(0)));
    }

    #[test]
    fn the_version_is_read_from_the_directory_name() {
        assert_eq!(
            version_of_directory("Microsoft.Azure.KeyVault.KeyVaultForLinux-4.0.1"),
            Some("4.0.1")
        );
        assert_eq!(
            version_of_directory("Microsoft.Azure.KeyVault.KeyVaultForLinux-3.0"),
            Some("3.0")
        );
        assert_eq!(version_of_directory("kv"), None);
        assert_eq!(version_of_directory("my-extension"), None);
        assert_eq!(version_of_directory("x-"), None);
    }
}
