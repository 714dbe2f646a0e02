//! The validated settings: the types the agent uses once the JSON is read ([`Settings`] and
//! what it holds), each default as a named constant. They import none of the readers; the
//! section files fill them in.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use url::Url;

use super::mode::{ExtensionMode, ModeChoice};
use super::secret_url::SecretUrl;
use crate::identity_id::ManagedIdentityId;

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
    /// The extension version akvvm behaves as, and why ([`mode`](super::mode)).
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

fn display<T: fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

mod duration_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}
