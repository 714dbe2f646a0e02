//! The end-to-end harness (the agent's and the CLI's tests): the local vault in-process on
//! 127.0.0.1:0 (HTTPS with its generated CA, IMDS on http, Entra), and settings that keep real
//! vault URLs (`https://<vault>.vault.azure.net/...`) mapped to loopback through `akvvm.resolve`.
//! Every test gets its own temp store and state directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use akvvm::agent::{Agent, AgentOptions};
use akvvm::settings::Settings;
use akvvm::sync::{CycleReport, Engine, EngineOptions};
use akvvm_emulator::{Emulator, EmulatorConfig, IdentitySpec, RunningEmulator};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The role a certificate reader needs.
pub const READER_ROLE: &str = "Key Vault Secrets User";

pub struct Harness {
    pub emulator: RunningEmulator,
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
}

/// A Key Vault certificate policy for a self-signed certificate.
pub fn policy(kty: &str, content_type: &str, subject: &str) -> Value {
    akvvm_emulator::certs::self_signed_policy(kty, content_type, &format!("CN={subject}"))
}

pub const PFX: &str = "application/x-pkcs12";
pub const PEM: &str = "application/x-pem-file";

impl Harness {
    /// Starts the local vault with a system-assigned identity.
    pub async fn start() -> Harness {
        Harness::start_with(true).await
    }

    /// Starts the local vault, with or without a system-assigned identity.
    pub async fn start_with(system_identity: bool) -> Harness {
        let emulator = Emulator::start(EmulatorConfig::default())
            .await
            .expect("local vault starts");
        if system_identity {
            emulator
                .set_system_identity(IdentitySpec::default())
                .expect("system identity");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, emulator.ca_pem()).expect("write CA");
        Harness { emulator, dir, ca }
    }

    /// A vault the system identity may read.
    pub fn vault(&self, name: &str) {
        self.emulator.add_vault(name).expect("create vault");
        self.emulator
            .assign_roles(name, "system", &[READER_ROLE])
            .expect("role assignment");
    }

    /// A self-signed certificate; returns its first version.
    pub fn certificate(&self, vault: &str, name: &str, kty: &str, content_type: &str) -> String {
        self.emulator
            .create_certificate(vault, name, &policy(kty, content_type, name))
            .expect("create certificate")
            .version
    }

    pub fn url(vault: &str, name: &str) -> String {
        format!("https://{vault}.vault.azure.net/secrets/{name}")
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Settings JSON observing `observed` (URL strings or certificate objects) in `vaults`,
    /// polling every second, with the local vault's CA, resolve map and IMDS, and no startup
    /// jitter.
    pub fn settings_json(&self, vaults: &[&str], observed: Vec<Value>) -> Value {
        let port = self.emulator.https_addr().port();
        let mut resolve = serde_json::Map::new();
        for vault in vaults {
            resolve.insert(
                format!("{vault}.vault.azure.net"),
                json!(format!("127.0.0.1:{port}")),
            );
        }
        resolve.insert("localhost".into(), json!(format!("127.0.0.1:{port}")));
        json!({
            "secretsManagementSettings": {
                "pollingIntervalInS": "1",
                "certificateStoreLocation": self.store().display().to_string(),
                "observedCertificates": observed,
            },
            "authenticationSettings": {
                "msiEndpoint": self.emulator.imds_url(),
            },
            "akvvm": {
                "stateDirectory": self.state_dir().display().to_string(),
                "caCertificates": [self.ca.display().to_string()],
                "resolve": resolve,
                "authorityHost": self.emulator.authority_host(),
                "startupJitterInS": 0,
            }
        })
    }

    pub fn settings(&self, json: &Value) -> Settings {
        match Settings::from_json_value(json) {
            Ok((settings, _)) => settings,
            Err(diagnostics) => panic!("invalid test settings: {diagnostics:?}"),
        }
    }

    /// A fresh engine (as after a restart) for `json`.
    pub fn engine(&self, json: &Value) -> Engine {
        let settings = self.settings(json);
        let options = EngineOptions::for_settings(&settings);
        Engine::new(settings, options).expect("engine starts")
    }

    /// The start most sync tests share: vault `contoso` with an RSA PFX certificate `web`, an
    /// engine observing it, and one complete cycle. Returns the engine and the installed version.
    pub async fn web_installed(&self) -> (Engine, String) {
        self.vault("contoso");
        let version = self.certificate("contoso", "web", "RSA", PFX);
        let json = self.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
        let engine = self.engine(&json);
        assert!(
            cycle(&engine).await.complete(),
            "the first cycle installs web"
        );
        (engine, version)
    }

    /// Writes `json` as a settings file and returns its path.
    pub fn settings_file(&self, json: &Value) -> PathBuf {
        let path = self.dir.path().join("settings.json");
        std::fs::write(&path, serde_json::to_vec_pretty(json).unwrap()).unwrap();
        path
    }
}

/// One cycle over every certificate.
pub async fn cycle(engine: &Engine) -> CycleReport {
    engine.cycle(|_| true, &CancellationToken::new()).await
}

/// The target of a symbolic link, as a file name.
pub fn link_target(link: &Path) -> String {
    std::fs::read_link(link)
        .unwrap_or_else(|e| panic!("{} is not a link: {e}", link.display()))
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// (inode, mtime in ns) of a path, without following links.
pub fn identity_of(path: &Path) -> (u64, i128) {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (
        meta.ino(),
        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
    )
}

/// Every entry of a directory with its identity, sorted.
pub fn snapshot(dir: &Path) -> Vec<(String, (u64, i128))> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                identity_of(&e.path()),
            )
        })
        .collect();
    entries.sort();
    entries
}

/// Polls `check` every 50 ms until it is true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// The push path as `akvvm run` wires it ([`akvvm::agent`]): the Event Grid webhook of the
/// engine's settings (`akvvm.webhook`), and the daemon that takes what it queues, both running
/// until `cancel`. Returns the webhook's address and a task that ends when both have stopped.
pub async fn start_push(
    engine: Arc<Engine>,
    cancel: &CancellationToken,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let agent = Agent::start_with_engine(
        engine,
        AgentOptions::default(),
        cancel.clone(),
        Arc::new(Notify::new()),
    )
    .await
    .expect("the agent starts");
    let address = agent.webhook_address().expect("the webhook starts");
    (address, tokio::spawn(agent.stopped()))
}
