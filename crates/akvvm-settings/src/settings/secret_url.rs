//! Observed-certificate URLs: `https://<vault>.<vault-dns-suffix>/secrets/<name>[/<version>]`.

use std::fmt;

use url::Url;

/// DNS suffixes of Key Vault in the public and sovereign clouds, with the cloud's name.
pub const KNOWN_VAULT_SUFFIXES: &[(&str, &str)] = &[
    ("vault.azure.net", "Azure public cloud"),
    ("vault.azure.cn", "Azure China"),
    ("vault.usgovcloudapi.net", "Azure US Government"),
    ("vault.microsoftazure.de", "Azure Germany"),
    ("vault.localhost", "akvvm local vault"),
];

/// Longest secret name Key Vault accepts.
pub const MAX_SECRET_NAME_LEN: usize = 127;

/// A validated observed-certificate URL.
///
/// Equality and hashing compare the vault host, the name (case-insensitively, as Key Vault
/// does) and the version.
#[derive(Debug, Clone)]
pub struct SecretUrl {
    /// The URL as written (parsed; the host is lower-cased by parsing).
    pub url: Url,
    /// The vault's base URL, `https://<host>/` (with the port when one was given).
    pub vault_url: Url,
    /// The first DNS label of the host: `myvault` in `myvault.vault.azure.net`.
    pub vault_name: String,
    /// The host, lower case: `myvault.vault.azure.net`.
    pub host: String,
    /// The secret name, as written.
    pub name: String,
    /// A pinned version, installed once and never replaced; `None` follows the latest version.
    pub version: Option<String>,
}

/// Where a vault host lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultHost {
    /// One of [`KNOWN_VAULT_SUFFIXES`]; the cloud's name.
    Known(&'static str),
    /// Any other host: treated as a private endpoint (or a custom DNS name for one).
    PrivateEndpoint,
}

/// Why a string is not a usable observed-certificate URL. `Display` says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretUrlError {
    #[error("{0:?} is not a URL ({1}): write https://<vault>.vault.azure.net/secrets/<name>")]
    NotAUrl(String, url::ParseError),
    #[error("{0:?} uses {1}://; Key Vault is only reached over https: write https://{2}{3}")]
    NotHttps(String, String, String, String),
    #[error("{0:?} has no host name: write https://<vault>.vault.azure.net/secrets/<name>")]
    NoHost(String),
    #[error(
        "{0:?} has an IP address as host; a vault is addressed by its DNS name \
         (map the name to an address with akvvm.resolve instead)"
    )]
    IpHost(String),
    #[error(
        "vault name {0:?} is not valid: Key Vault names are letters, digits and dashes, \
         starting with a letter"
    )]
    BadVaultName(String),
    #[error("{0:?} carries a user name or password; remove it")]
    Credentials(String),
    #[error("{0:?} has a query or fragment; remove everything after the path")]
    QueryOrFragment(String),
    #[error(
        "{0:?} points at /certificates/, which returns only the public certificate; \
         use the /secrets/ URL (the secret carries the private key): {1}"
    )]
    CertificatesPath(String, String),
    #[error(
        "{0:?} points at /keys/; the extension installs certificates from their secret: \
         use https://<vault>/secrets/<certificate name>"
    )]
    KeysPath(String),
    #[error(
        "{0:?} is not a secret URL: the path must be /secrets/<name> or /secrets/<name>/<version>"
    )]
    BadPath(String),
    #[error(
        "secret name {0:?} is not valid: names are 1 to 127 letters, digits and dashes \
         ([0-9a-zA-Z-])"
    )]
    BadName(String),
    #[error(
        "version {0:?} is not valid: a Key Vault version is 32 hexadecimal characters, \
         the last segment of the secret's id"
    )]
    BadVersion(String),
}

impl SecretUrlError {
    /// A stable machine code for the diagnostic.
    pub fn code(&self) -> &'static str {
        match self {
            SecretUrlError::NotAUrl(..) => "url-syntax",
            SecretUrlError::NotHttps(..) => "url-not-https",
            SecretUrlError::NoHost(..) => "url-no-host",
            SecretUrlError::IpHost(..) => "url-ip-host",
            SecretUrlError::BadVaultName(..) => "url-vault-name",
            SecretUrlError::Credentials(..) => "url-credentials",
            SecretUrlError::QueryOrFragment(..) => "url-query",
            SecretUrlError::CertificatesPath(..) => "url-certificates-path",
            SecretUrlError::KeysPath(..) => "url-keys-path",
            SecretUrlError::BadPath(..) => "url-path",
            SecretUrlError::BadName(..) => "url-secret-name",
            SecretUrlError::BadVersion(..) => "url-version",
        }
    }
}

/// Whether `name` is a valid Key Vault object name (`^[0-9a-zA-Z-]{1,127}$`).
pub fn is_valid_secret_name(name: &str) -> bool {
    (1..=MAX_SECRET_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_valid_version(version: &str) -> bool {
    version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit())
}

impl SecretUrl {
    /// Parses and checks an observed-certificate URL.
    pub fn parse(text: &str) -> Result<SecretUrl, SecretUrlError> {
        if text
            .split_once("://")
            .is_some_and(|(_, rest)| rest.starts_with('/'))
        {
            // `https:///x/...` would otherwise parse with `x` as the host.
            return Err(SecretUrlError::NoHost(text.to_string()));
        }
        let url = Url::parse(text).map_err(|e| SecretUrlError::NotAUrl(text.to_string(), e))?;
        let host = match url.host() {
            None => return Err(SecretUrlError::NoHost(text.to_string())),
            Some(url::Host::Domain("")) => {
                return Err(SecretUrlError::NoHost(text.to_string()));
            }
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(_) => return Err(SecretUrlError::IpHost(text.to_string())),
        };
        if url.scheme() != "https" {
            return Err(SecretUrlError::NotHttps(
                text.to_string(),
                url.scheme().to_string(),
                host,
                url.path().to_string(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SecretUrlError::Credentials(text.to_string()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(SecretUrlError::QueryOrFragment(text.to_string()));
        }
        let path = url.path().to_string();
        let mut segments: Vec<&str> = path.split('/').skip(1).collect();
        if segments.last() == Some(&"") {
            segments.pop();
        }
        let collection = segments.first().copied().unwrap_or("");
        if collection.eq_ignore_ascii_case("certificates") {
            let mut fixed = url.clone();
            let rest: Vec<&str> = segments[1..].to_vec();
            fixed.set_path(&format!("/secrets/{}", rest.join("/")));
            return Err(SecretUrlError::CertificatesPath(
                text.to_string(),
                fixed.to_string(),
            ));
        }
        if collection.eq_ignore_ascii_case("keys") {
            return Err(SecretUrlError::KeysPath(text.to_string()));
        }
        if collection != "secrets" || !(2..=3).contains(&segments.len()) {
            return Err(SecretUrlError::BadPath(text.to_string()));
        }
        let name = segments[1];
        if !is_valid_secret_name(name) {
            return Err(SecretUrlError::BadName(name.to_string()));
        }
        let version = segments.get(2).map(|v| v.to_string());
        if let Some(v) = &version
            && !is_valid_version(v)
        {
            return Err(SecretUrlError::BadVersion(v.clone()));
        }
        let mut vault_url = url.clone();
        vault_url.set_path("/");
        let vault_name = host.split('.').next().unwrap_or_default().to_string();
        let known_suffix = KNOWN_VAULT_SUFFIXES
            .iter()
            .any(|(suffix, _)| host.ends_with(&format!(".{suffix}")));
        let name_ok = vault_name.starts_with(|c: char| c.is_ascii_alphabetic())
            && vault_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if known_suffix && !name_ok {
            return Err(SecretUrlError::BadVaultName(vault_name));
        }
        Ok(SecretUrl {
            url,
            vault_url,
            vault_name,
            host,
            name: name.to_string(),
            version,
        })
    }

    /// A pinned URL names a version: it is installed once and never replaced.
    pub fn is_pinned(&self) -> bool {
        self.version.is_some()
    }

    /// Which cloud the vault host belongs to, or that it is treated as a private endpoint.
    pub fn vault_host(&self) -> VaultHost {
        KNOWN_VAULT_SUFFIXES
            .iter()
            .find(|(suffix, _)| {
                self.host
                    .strip_suffix(suffix)
                    .is_some_and(|label| label.ends_with('.') && label.len() > 1)
            })
            .map_or(VaultHost::PrivateEndpoint, |(_, cloud)| {
                VaultHost::Known(cloud)
            })
    }

    /// The same secret without a version: what the agent polls for a new version.
    pub fn latest_url(&self) -> Url {
        let mut url = self.vault_url.clone();
        url.set_path(&format!("/secrets/{}", self.name));
        url
    }

    /// `<vault>.<name>`: the stable symlink's name in the store, as the shipped extension names it.
    pub fn stable_name(&self) -> String {
        format!("{}.{}", self.vault_name, self.name)
    }

    /// Whether two URLs name the same secret (same host, same name, ignoring case and version).
    pub fn same_secret(&self, other: &SecretUrl) -> bool {
        self.vault_url == other.vault_url && self.name.eq_ignore_ascii_case(&other.name)
    }
}

impl PartialEq for SecretUrl {
    fn eq(&self, other: &Self) -> bool {
        self.same_secret(other) && self.version == other.version
    }
}

impl Eq for SecretUrl {}

impl std::hash::Hash for SecretUrl {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.vault_url.hash(state);
        self.name.to_ascii_lowercase().hash(state);
        self.version.hash(state);
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = SecretUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretUrl::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSION: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_latest_and_pinned() {
        let u = SecretUrl::parse("https://MyVault.vault.azure.net/secrets/web-cert").unwrap();
        assert_eq!(u.host, "myvault.vault.azure.net");
        assert_eq!(u.vault_name, "myvault");
        assert_eq!(u.vault_url.as_str(), "https://myvault.vault.azure.net/");
        assert_eq!(u.name, "web-cert");
        assert_eq!(u.version, None);
        assert!(!u.is_pinned());
        assert_eq!(u.vault_host(), VaultHost::Known("Azure public cloud"));
        assert_eq!(u.stable_name(), "myvault.web-cert");

        let p = SecretUrl::parse(&format!("https://v.vault.azure.cn/secrets/c/{VERSION}")).unwrap();
        assert_eq!(p.version.as_deref(), Some(VERSION));
        assert!(p.is_pinned());
        assert_eq!(
            p.latest_url().as_str(),
            "https://v.vault.azure.cn/secrets/c"
        );
    }

    #[test]
    fn private_endpoint_hosts_are_accepted() {
        let u = SecretUrl::parse("https://kv.internal.example.com/secrets/c").unwrap();
        assert_eq!(u.vault_host(), VaultHost::PrivateEndpoint);
        let bare = SecretUrl::parse("https://vault.azure.net/secrets/c").unwrap();
        assert_eq!(bare.vault_host(), VaultHost::PrivateEndpoint);
    }

    #[test]
    fn rejects_with_specific_errors() {
        let code = |s: &str| SecretUrl::parse(s).unwrap_err().code();
        assert_eq!(code("http://v.vault.azure.net/secrets/c"), "url-not-https");
        assert_eq!(
            code("https://v.vault.azure.net/certificates/c"),
            "url-certificates-path"
        );
        assert_eq!(code("https://v.vault.azure.net/keys/c"), "url-keys-path");
        assert_eq!(
            code("https://v.vault.azure.net/secrets/a_b"),
            "url-secret-name"
        );
        assert_eq!(
            code("https://v.vault.azure.net/secrets/c/xyz"),
            "url-version"
        );
        assert_eq!(code("https://v.vault.azure.net/secrets"), "url-path");
        assert_eq!(code("https://v.vault.azure.net/secrets/c?x=1"), "url-query");
        assert_eq!(code("https://10.0.0.1/secrets/c"), "url-ip-host");
        assert_eq!(code("v.vault.azure.net/secrets/c"), "url-syntax");
        assert_eq!(
            code("https://my_vault.vault.azure.net/secrets/c"),
            "url-vault-name"
        );
        assert_eq!(
            code("https://user:pw@v.vault.azure.net/secrets/c"),
            "url-credentials"
        );
        assert_eq!(code("https:///secrets/c"), "url-no-host");
        let long = format!("https://v.vault.azure.net/secrets/{}", "a".repeat(128));
        assert_eq!(code(&long), "url-secret-name");
    }

    #[test]
    fn certificates_error_shows_the_secrets_url() {
        let err = SecretUrl::parse("https://v.vault.azure.net/certificates/web").unwrap_err();
        assert!(
            err.to_string()
                .contains("https://v.vault.azure.net/secrets/web"),
            "{err}"
        );
    }
}
