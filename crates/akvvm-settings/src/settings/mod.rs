//! The extension's public settings: parsed from the documented JSON, converted once into
//! validated types that cannot hold a bad value.
//!
//! - [`Settings`] is what the agent uses. Get one with [`Settings::load`] (a plain settings file),
//!   [`Settings::from_json_value`], or [`parse`] (which also reports ARM expressions it could not
//!   check, for `akvvm validate`).
//! - [`Diagnostic`]s say what is wrong, where (a JSON path) and what to do; warnings are
//!   returned alongside valid settings.
//!
//! The parser is split by section: `parse.rs` (the settings object and the keys each object
//! accepts), `secrets.rs` (`secretsManagementSettings`), `authentication.rs`
//! (`authenticationSettings`), `logging.rs` (`loggingSettings`) and `own_options.rs` (akvvm's own
//! options beyond Microsoft's documented settings: the top-level and per-certificate `"akvvm"`
//! objects), all reading through `read.rs` (fields, basic types, and the diagnostic builder).
//! This module imports no other module of the crate but `identity_id` (the parsed
//! `msiClientId`) and `trusted` (reading the settings file): settings are the root of the
//! dependency graph.
//!
//! To add a setting: add the field (with its default as a named constant) to the validated type,
//! read it in its section's file (add its key to the key tables in `parse.rs`), and document it
//! in `docs/configuration.md`.

mod authentication;
mod diagnostic;
mod logging;
pub mod mode;
mod own_options;
mod parse;
mod read;
mod secret_url;
mod secrets;
mod v4_rules;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::identity_id::ManagedIdentityId;

pub use diagnostic::{Diagnostic, Severity, did_you_mean, join_index, join_key};
pub use logging::parse_endpoint as parse_log_endpoint;
pub use mode::{ExtensionMode, ExtensionVersion, ModeChoice, VersionOrigin};
pub use parse::{
    ParseOptions, Report, Unresolved, is_arm_expression, known_keys, parse, string_path,
};
pub use secret_url::{
    KNOWN_VAULT_SUFFIXES, SecretUrl, SecretUrlError, VaultHost, is_valid_secret_name,
};
pub use v4_rules::{V4_MAX_POLLING_INTERVAL, V4_MIN_POLLING_INTERVAL};

/// Default `requestTimeoutInS`: the time allowed for one whole HTTP request, from sending to the
/// last byte of the answer (also the HTTP client's default, `akvvm::http`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `pollingIntervalInS`: one hour.
pub const DEFAULT_POLLING_INTERVAL: Duration = Duration::from_secs(3600);
/// Default store directory (`certificateStoreLocation`), the shipped Linux extension's.
pub const DEFAULT_STORE: &str = "/var/lib/waagent/Microsoft.Azure.KeyVault.Store";
/// Default `certificateStoreName` (recorded only on Linux).
pub const DEFAULT_CERTIFICATE_STORE_NAME: &str = "MY";
/// Default managed identity endpoint (IMDS), without `/oauth2/token`.
pub const DEFAULT_MSI_ENDPOINT: &str = "http://169.254.169.254/metadata/identity";
/// Default akvvm state directory (`akvvm.stateDirectory`).
pub const DEFAULT_STATE_DIRECTORY: &str = "/var/lib/akvvm";
/// Default number of versions kept per certificate (`akvvm.keepVersions`).
pub const DEFAULT_KEEP_VERSIONS: NonZeroU32 = NonZeroU32::new(2).expect("2 is not zero");
/// Default attempts of the initial sync before reporting an error (`akvvm.initialSyncRetries`),
/// as the shipped extension does.
pub const DEFAULT_INITIAL_SYNC_RETRIES: u32 = 25;
/// Default Entra ID authority (`akvvm.authorityHost`).
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// Default directory searched for bootstrap certificates (`akvvm.bootstrapCertificateDirectories`):
/// where the platform puts `osProfile.secrets` certificates on Linux.
pub const DEFAULT_BOOTSTRAP_CERTIFICATE_DIRECTORY: &str = "/var/lib/waagent";
/// Default concurrent requests per vault (`akvvm.concurrencyPerVault`).
pub const DEFAULT_CONCURRENCY_PER_VAULT: NonZeroUsize =
    NonZeroUsize::new(4).expect("4 is not zero");
/// Default longest random pause of `akvvm run` before its first cycle (`akvvm.startupJitterInS`),
/// so that machines booting together do not reach the vault together. `akvvm sync --once` waits
/// only when the setting is given.
pub const DEFAULT_STARTUP_JITTER: Duration = Duration::from_secs(10);
/// Default time a certificate confirmed by the vault's list stays trusted before a GET checks it
/// again (`akvvm.fullCheckIntervalInS`): one day.
pub const DEFAULT_FULL_CHECK_INTERVAL: Duration = Duration::from_secs(86_400);
/// Default days before expiry at which a certificate is reported (`akvvm.expiryWarningDays`).
pub const DEFAULT_EXPIRY_WARNING_DAYS: u32 = 30;
/// Default reload hook timeout (`reload.timeoutInS`).
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The documented settings shape that was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Shape {
    /// Flat: `observedCertificates` is a list of URL strings sharing one store.
    V1,
    /// `observedCertificates` holds objects (each with its own store, link name and ACLs),
    /// possibly mixed with strings.
    V3,
    /// `KeyVaultForPaaS`: bootstrap-certificate authentication (`clientId` +
    /// `clientCertificateSubjectName`).
    PaaS,
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shape::V1 => "v1 (list of URLs, one store)",
            Shape::V3 => "v3 (certificate objects)",
            Shape::PaaS => "KeyVaultForPaaS (bootstrap certificate)",
        })
    }
}

/// Validated settings: everything the agent needs, with defaults applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    pub shape: Shape,
    /// The extension version akvvm behaves as, and why ([`mode`]).
    pub mode: ModeChoice,
    /// How often every certificate is checked; default [`DEFAULT_POLLING_INTERVAL`].
    #[serde(with = "duration_secs")]
    pub polling_interval: Duration,
    /// Report `transitioning` until every certificate is installed; default false.
    pub require_initial_sync: bool,
    /// Apply `acls` to certificate files; default false.
    pub acl_enabled: bool,
    /// Recorded only: on Linux the stable link always follows renewals.
    pub link_on_renewal: bool,
    /// The store directory for certificates without their own; default [`DEFAULT_STORE`].
    pub store: PathBuf,
    /// Recorded only (a Windows store name); default [`DEFAULT_CERTIFICATE_STORE_NAME`].
    pub certificate_store_name: String,
    pub observed: Vec<ObservedCertificate>,
    pub authentication: Authentication,
    pub logging: Option<LoggingSettings>,
    /// akvvm's own agent-wide options (the top-level `"akvvm"` object).
    pub agent: AgentOptions,
}

/// One certificate to keep installed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedCertificate {
    #[serde(serialize_with = "display")]
    pub url: SecretUrl,
    /// The directory it is installed in (its own `certificateStoreLocation`, or the global one).
    pub store_dir: PathBuf,
    /// `customSymbolicLinkName`: an extra link in `store_dir` to the current version.
    pub link_name: Option<String>,
    /// Who else may read the certificate file (applied only when `acl_enabled`).
    pub acls: Vec<AclEntry>,
    /// Recorded only.
    pub certificate_store_name: String,
    /// akvvm's per-certificate options (the certificate object's `"akvvm"` object).
    pub options: CertificateOptions,
    /// `authenticationOverride.msiClientId` (4.x documents it; accepted in 3.x too): the
    /// user-assigned managed identity this certificate is fetched with, at the top-level
    /// `msiEndpoint`, instead of the identity of `authenticationSettings`.
    pub authentication_override: Option<ManagedIdentityId>,
}

impl ObservedCertificate {
    /// Whether certbot's layout is written for this certificate: its own `certbotLayout`, else
    /// the agent-wide one.
    pub fn certbot_layout(&self, agent: &AgentOptions) -> bool {
        self.options.certbot_layout.unwrap_or(agent.certbot_layout)
    }

    /// The reload hook to run for this certificate: its own, else the agent-wide one.
    pub fn reload_hook<'a>(&'a self, agent: &'a AgentOptions) -> Option<&'a ReloadHook> {
        self.options.reload.as_ref().or(agent.reload.as_ref())
    }

    /// Path of the stable symlink: `<store_dir>/<vault>.<name>`.
    pub fn stable_link(&self) -> PathBuf {
        self.store_dir.join(self.url.stable_name())
    }

    /// Path of the stable link applications read in `mode`: 3.x's `<vault>.<name>` (the chain
    /// and the key), 4.x's `<vault>.<name>.pem` (the chain; the key is behind `.keyid`).
    pub fn stable_link_in(&self, mode: ExtensionMode) -> PathBuf {
        match mode {
            ExtensionMode::V3 => self.stable_link(),
            ExtensionMode::V4 => self
                .store_dir
                .join(format!("{}.pem", self.url.stable_name())),
        }
    }
}

/// A POSIX ACL grant of read access.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AclEntry {
    User(String),
    Group(String),
}

impl fmt::Display for AclEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclEntry::User(u) => write!(f, "user:{u}"),
            AclEntry::Group(g) => write!(f, "group:{g}"),
        }
    }
}

/// How the agent gets tokens for Key Vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Authentication {
    /// Managed identity through IMDS (or Azure Arc, or the local vault's IMDS).
    ManagedIdentity {
        /// `msiEndpoint`; default [`DEFAULT_MSI_ENDPOINT`].
        endpoint: MsiEndpoint,
        /// A user-assigned identity (`msiClientId`: client id, `object_id:<GUID>` or resource id),
        /// parsed once where the setting is validated (the documentation's placeholder is kept
        /// as a client id: IMDS says what it thinks of it); `None` means the system-assigned
        /// identity.
        client_id: Option<ManagedIdentityId>,
    },
    /// `KeyVaultForPaaS`: an Entra app, authenticated with an installed bootstrap certificate.
    BootstrapCertificate {
        client_id: String,
        /// The certificate's subject CN, without `CN=`.
        subject_name: String,
    },
}

impl Authentication {
    /// The system-assigned managed identity at the default IMDS endpoint.
    pub fn default_managed_identity() -> Authentication {
        Authentication::ManagedIdentity {
            endpoint: MsiEndpoint::default(),
            client_id: None,
        }
    }
}

/// `msiEndpoint`: where a managed identity's tokens come from (IMDS, Azure Arc's local endpoint,
/// or the local vault's IMDS). Held as the documented base URL, without `/oauth2/token`, query
/// or fragment; [`MsiEndpoint::token_url`] is the one place the token URL is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MsiEndpoint(Url);

impl MsiEndpoint {
    /// The endpoint `url` names, given as the documented base
    /// (`http://169.254.169.254/metadata/identity`) or with `/oauth2/token` already appended;
    /// a query or fragment is dropped.
    pub fn new(url: &Url) -> MsiEndpoint {
        let mut base = url.clone();
        base.set_query(None);
        base.set_fragment(None);
        let path = base.path().trim_end_matches('/');
        let path = path
            .strip_suffix("/oauth2/token")
            .unwrap_or(path)
            .to_owned();
        base.set_path(&path);
        MsiEndpoint(base)
    }

    /// The base URL, as `msiEndpoint` is documented (without `/oauth2/token`).
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The token URL: `<endpoint>/oauth2/token`.
    pub fn token_url(&self) -> Url {
        let mut url = self.0.clone();
        url.set_path(&format!(
            "{}/oauth2/token",
            self.0.path().trim_end_matches('/')
        ));
        url
    }

    /// Whether this is Azure Arc's identity endpoint (`localhost:40342`), which serves only the
    /// machine's system-assigned identity.
    pub fn is_arc(&self) -> bool {
        matches!(self.0.host_str(), Some("localhost" | "127.0.0.1")) && self.0.port() == Some(40342)
    }
}

impl Default for MsiEndpoint {
    /// [`DEFAULT_MSI_ENDPOINT`], IMDS on Azure VMs.
    fn default() -> Self {
        MsiEndpoint(Url::parse(DEFAULT_MSI_ENDPOINT).expect("default endpoint is a URL"))
    }
}

impl fmt::Display for MsiEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authentication::ManagedIdentity {
                endpoint,
                client_id: None,
            } => {
                write!(f, "managed identity (system-assigned) at {endpoint}")
            }
            Authentication::ManagedIdentity {
                endpoint,
                client_id: Some(id),
            } => {
                write!(f, "managed identity (user-assigned, {id}) at {endpoint}")
            }
            Authentication::BootstrapCertificate {
                client_id,
                subject_name,
            } => write!(
                f,
                "bootstrap certificate CN={subject_name} for Entra app {client_id}"
            ),
        }
    }
}

/// `loggingSettings`: forward the agent's log records to Fluentd (see `akvvm::logship`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggingSettings {
    /// `endpoint`: where the collector listens.
    pub endpoint: LogEndpoint,
    /// `servicename`: the Fluentd tag of every record; default [`DEFAULT_LOG_TAG`].
    pub tag: String,
}

/// The tag of forwarded records when `loggingSettings` has no `servicename`: the value of the
/// documented example.
pub const DEFAULT_LOG_TAG: &str = "akvvm_service";

/// `loggingSettings.endpoint`: `tcp://host:port` or `unix:///absolute/path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LogEndpoint {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl fmt::Display for LogEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogEndpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            LogEndpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            LogEndpoint::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// akvvm's own agent-wide options: the top-level `"akvvm"` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentOptions {
    /// `stateDirectory`: where the state file lives; default [`DEFAULT_STATE_DIRECTORY`].
    pub state_directory: PathBuf,
    /// `keepVersions`: versions kept per certificate, current included; default
    /// [`DEFAULT_KEEP_VERSIONS`].
    pub keep_versions: NonZeroU32,
    /// `initialSyncRetries`: attempts before `requireInitialSync` reports an error; default
    /// [`DEFAULT_INITIAL_SYNC_RETRIES`].
    pub initial_sync_retries: u32,
    /// `caCertificates`: extra trusted CA roots (PEM files); default none.
    pub ca_certificates: Vec<PathBuf>,
    /// `resolve`: host name (lower case) to address, bypassing DNS; default none.
    pub resolve: BTreeMap<String, ResolveTarget>,
    /// `authorityHost`: Entra ID; default [`DEFAULT_AUTHORITY_HOST`].
    pub authority_host: Url,
    /// `bootstrapCertificateDirectories`: where `<THUMBPRINT>.crt`/`.prv` pairs are searched;
    /// default [`DEFAULT_BOOTSTRAP_CERTIFICATE_DIRECTORY`].
    pub bootstrap_certificate_directories: Vec<PathBuf>,
    /// `concurrencyPerVault`: requests in flight per vault; default
    /// [`DEFAULT_CONCURRENCY_PER_VAULT`].
    pub concurrency_per_vault: NonZeroUsize,
    /// `startupJitterInS`: `akvvm run` waits a random time up to this long before its first
    /// cycle; default [`DEFAULT_STARTUP_JITTER`] for `akvvm run`, none for `akvvm sync --once`
    /// (`None`: not given).
    pub startup_jitter: Option<Duration>,
    /// `requestTimeoutInS`: the time one HTTP request (IMDS, Entra ID, Key Vault) may take, from
    /// sending to the last byte of the answer, before it is abandoned (and retried as its
    /// policy says); default [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// `fullCheckIntervalInS`: how long a certificate that the vault's secret list showed
    /// unchanged goes without a GET of its own; zero turns the list off (one GET per certificate
    /// per cycle). Default [`DEFAULT_FULL_CHECK_INTERVAL`].
    pub full_check_interval: Duration,
    /// `expiryWarningDays`: report certificates this close to expiry; default
    /// [`DEFAULT_EXPIRY_WARNING_DAYS`].
    pub expiry_warning_days: u32,
    /// `reload`: run after any certificate gets a new version (unless it has its own hook).
    pub reload: Option<ReloadHook>,
    /// `certbotLayout`: also write certbot's `cert.pem`, `chain.pem`, `fullchain.pem` and
    /// `privkey.pem` for every certificate (unless it says otherwise); default false.
    pub certbot_layout: bool,
    /// `metricsAddress`: where `akvvm run` serves Prometheus metrics (`GET /metrics`); default
    /// none (no listener).
    pub metrics_address: Option<SocketAddr>,
    /// `webhook`: the Event Grid webhook of `akvvm run`; default none.
    pub webhook: Option<WebhookSettings>,
    /// `pruneRemovedCertificates`: when a certificate is no longer in `observedCertificates`,
    /// remove its files and links at the next start; default false (they stay, as the extension
    /// leaves them).
    pub prune_removed_certificates: bool,
    /// `batchReload`: run once per cycle after all of that cycle's installs, when there was at
    /// least one, besides the per-certificate hooks; default none.
    pub batch_reload: Option<ReloadHook>,
    /// `waagentConfig`: the guest agent's configuration, whose `HttpProxy.Host`/`HttpProxy.Port`
    /// are used for Key Vault and Entra ID when `HTTPS_PROXY` is not set; default
    /// [`DEFAULT_WAAGENT_CONFIG`].
    pub waagent_config: PathBuf,
}

/// Where the guest agent keeps its configuration.
pub const DEFAULT_WAAGENT_CONFIG: &str = "/etc/waagent.conf";

/// `akvvm.webhook`: where Event Grid delivers Key Vault's new-version events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookSettings {
    /// `address`: `IP:port` to listen on.
    pub address: SocketAddr,
    /// `path`: the delivery path; default [`DEFAULT_WEBHOOK_PATH`].
    pub path: String,
    /// `certificateFile`: a PEM with the chain and key to serve HTTPS with; plain HTTP without.
    pub certificate_file: Option<PathBuf>,
    /// `secretFile`: a file holding the secret deliveries must carry (`?key=`).
    pub secret_file: Option<PathBuf>,
}

/// The webhook's default delivery path.
pub const DEFAULT_WEBHOOK_PATH: &str = "/eventgrid";

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            state_directory: PathBuf::from(DEFAULT_STATE_DIRECTORY),
            keep_versions: DEFAULT_KEEP_VERSIONS,
            initial_sync_retries: DEFAULT_INITIAL_SYNC_RETRIES,
            ca_certificates: Vec::new(),
            resolve: BTreeMap::new(),
            authority_host: Url::parse(DEFAULT_AUTHORITY_HOST).expect("default authority is a URL"),
            bootstrap_certificate_directories: vec![PathBuf::from(
                DEFAULT_BOOTSTRAP_CERTIFICATE_DIRECTORY,
            )],
            concurrency_per_vault: DEFAULT_CONCURRENCY_PER_VAULT,
            startup_jitter: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            full_check_interval: DEFAULT_FULL_CHECK_INTERVAL,
            expiry_warning_days: DEFAULT_EXPIRY_WARNING_DAYS,
            reload: None,
            certbot_layout: false,
            metrics_address: None,
            webhook: None,
            prune_removed_certificates: false,
            batch_reload: None,
            waagent_config: PathBuf::from(DEFAULT_WAAGENT_CONFIG),
        }
    }
}

/// Where `resolve` sends a host: an address (the URL's port is kept) or an address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ResolveTarget {
    Ip(IpAddr),
    Socket(SocketAddr),
}

impl ResolveTarget {
    /// The address to connect to when the URL's port is `url_port`.
    pub fn socket_addr(&self, url_port: u16) -> SocketAddr {
        match *self {
            ResolveTarget::Ip(ip) => SocketAddr::new(ip, url_port),
            ResolveTarget::Socket(addr) => addr,
        }
    }
}

impl fmt::Display for ResolveTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveTarget::Ip(ip) => write!(f, "{ip}"),
            ResolveTarget::Socket(addr) => write!(f, "{addr}"),
        }
    }
}

/// akvvm's per-certificate options: the certificate object's `"akvvm"` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CertificateOptions {
    /// `reload`: run after this certificate gets a new version (instead of the agent-wide hook).
    pub reload: Option<ReloadHook>,
    /// `certbotLayout`: write certbot's layout for this certificate; `None` follows the agent-wide
    /// `certbotLayout`. Use [`ObservedCertificate::certbot_layout`] for the effective value.
    pub certbot_layout: Option<bool>,
    /// `owner`, `group` and `mode` (octal string) of the installed files, applied to every new
    /// version; unset parts keep root and 0600.
    pub files: akvvm_cert::store::FileAccess,
}

/// A command run after a new version is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadHook {
    /// `command`: the program and its arguments (an argv, never a shell string); non-empty.
    pub command: Vec<String>,
    /// `timeoutInS`; default [`DEFAULT_RELOAD_TIMEOUT`].
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
}

/// Why settings could not be loaded from a file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to read settings file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("settings file {} is not JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("settings file {} is not valid:\n{}", path.display(), render(diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    /// The file names hooks run as root: only root may be able to write it.
    #[error(transparent)]
    Untrusted(#[from] crate::trusted::Untrusted),
}

akvvm_cert::error_codes! {
    LoadError {
        LoadError::Read { .. } => "settings.unreadable",
        LoadError::Json { .. } => "settings.not_json",
        LoadError::Invalid { .. } => "settings.invalid",
    }
    passes through {
        LoadError::Untrusted(inner) => inner,
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Settings {
    /// Validates settings JSON (the object holding `secretsManagementSettings`). Returns the
    /// settings and their warnings, or every diagnostic (errors and warnings) when invalid.
    /// Paths in diagnostics start at `settings`.
    pub fn from_json_value(
        value: &serde_json::Value,
    ) -> Result<(Settings, Vec<Diagnostic>), Vec<Diagnostic>> {
        Settings::from_json_value_for(value, None)
    }

    /// Like [`Self::from_json_value`], for the extension version the guest agent runs (which
    /// chooses the mode, [`mode`]).
    pub fn from_json_value_for(
        value: &serde_json::Value,
        extension_version: Option<ExtensionVersion>,
    ) -> Result<(Settings, Vec<Diagnostic>), Vec<Diagnostic>> {
        let options = ParseOptions {
            extension_version,
            ..ParseOptions::default()
        };
        let report = parse(value, &options);
        match report.settings {
            Some(settings) if !report.has_errors() => Ok((settings, report.diagnostics)),
            _ => Err(report.diagnostics),
        }
    }

    /// Reads and validates a plain settings file. Warnings are logged.
    pub fn load(path: &Path) -> Result<Settings, LoadError> {
        let text = crate::trusted::read_to_string("settings file", path).map_err(|e| match e {
            crate::trusted::Read::Io(source) => LoadError::Read {
                path: path.to_path_buf(),
                source,
            },
            crate::trusted::Read::Untrusted(e) => LoadError::Untrusted(e),
        })?;
        let value: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|source| LoadError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        match Settings::from_json_value(&value) {
            Ok((settings, warnings)) => {
                for warning in warnings {
                    tracing::warn!(path = %warning.path, code = warning.code, "{}", warning.message);
                }
                Ok(settings)
            }
            Err(diagnostics) => Err(LoadError::Invalid {
                path: path.to_path_buf(),
                diagnostics,
            }),
        }
    }
}

fn display<T: fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

mod duration_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn design_example_is_valid_v3() {
        let value = json!({
          "secretsManagementSettings": {
            "pollingIntervalInS": "3600",
            "certificateStoreName": "MY",
            "certificateStoreLocation": "/var/lib/waagent/Microsoft.Azure.KeyVault.Store",
            "requireInitialSync": true,
            "aclEnabled": true,
            "observedCertificates": [
              "https://myvault.vault.azure.net/secrets/mycert",
              { "url": "https://myvault.vault.azure.net/secrets/other/0123456789abcdef0123456789abcdef",
                "certificateStoreLocation": "/etc/ssl/kv", "customSymbolicLinkName": "web",
                "acls": [ { "user": "www-data" }, { "group": "ssl-cert" } ] }
            ]
          },
          "authenticationSettings": {
            "msiEndpoint": "http://169.254.169.254/metadata/identity/oauth2/token",
            "msiClientId": "c7373ae5-91c2-4165-8ab6-7381d6e75619"
          }
        });
        let (settings, warnings) = Settings::from_json_value(&value).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(settings.shape, Shape::V3);
        assert_eq!(settings.polling_interval, Duration::from_secs(3600));
        assert!(settings.require_initial_sync);
        assert_eq!(settings.observed.len(), 2);
        let other = &settings.observed[1];
        assert_eq!(other.store_dir, PathBuf::from("/etc/ssl/kv"));
        assert_eq!(other.link_name.as_deref(), Some("web"));
        assert_eq!(
            other.acls,
            vec![
                AclEntry::User("www-data".into()),
                AclEntry::Group("ssl-cert".into())
            ]
        );
        assert!(other.url.is_pinned());
        let endpoint =
            MsiEndpoint::new(&Url::parse("http://169.254.169.254/metadata/identity").unwrap());
        assert_eq!(
            settings.authentication,
            Authentication::ManagedIdentity {
                endpoint: endpoint.clone(),
                client_id: Some(ManagedIdentityId::ClientId(
                    "c7373ae5-91c2-4165-8ab6-7381d6e75619".into()
                )),
            }
        );
        assert_eq!(
            endpoint.token_url().as_str(),
            "http://169.254.169.254/metadata/identity/oauth2/token"
        );
        assert_eq!(settings.agent, AgentOptions::default());
    }

    #[test]
    fn load_error_codes_follow_the_scheme() {
        assert_eq!(
            LoadError::CODES,
            &[
                "settings.unreadable",
                "settings.not_json",
                "settings.invalid"
            ]
        );
        assert!(
            LoadError::CODES
                .iter()
                .all(|c| akvvm_cert::codes::is_well_formed(c))
        );
    }

    #[test]
    fn msi_endpoint_accepts_both_documented_forms() {
        for endpoint in [
            "http://169.254.169.254/metadata/identity",
            "http://169.254.169.254/metadata/identity/",
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "http://169.254.169.254/metadata/identity/oauth2/token?x=y",
        ] {
            let endpoint = MsiEndpoint::new(&Url::parse(endpoint).unwrap());
            assert_eq!(
                endpoint.url().as_str(),
                "http://169.254.169.254/metadata/identity",
                "{endpoint}"
            );
            assert_eq!(
                endpoint.token_url().as_str(),
                "http://169.254.169.254/metadata/identity/oauth2/token",
                "{endpoint}"
            );
            assert!(!endpoint.is_arc());
        }
        assert_eq!(MsiEndpoint::default().url().as_str(), DEFAULT_MSI_ENDPOINT);
    }

    #[test]
    fn msi_endpoint_knows_azure_arc() {
        for arc in [
            "http://localhost:40342/metadata/identity",
            "http://127.0.0.1:40342/metadata/identity/oauth2/token",
        ] {
            assert!(
                MsiEndpoint::new(&Url::parse(arc).unwrap()).is_arc(),
                "{arc}"
            );
        }
        for not_arc in [
            "http://localhost:40343/metadata/identity",
            "http://169.254.169.254:40342/metadata/identity",
        ] {
            assert!(
                !MsiEndpoint::new(&Url::parse(not_arc).unwrap()).is_arc(),
                "{not_arc}"
            );
        }
    }
}
