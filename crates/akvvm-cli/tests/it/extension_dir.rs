//! What the guest agent lays out for an extension, made for a test: the extension directory with
//! its `config`, `status` and `log` folders and `HandlerEnvironment.json`, the handler settings
//! (`config/<seq>.settings`), and a guard that stops the daemon a handler command detached.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

/// An extension directory as the guest agent makes it.
pub struct ExtensionDir {
    pub config: PathBuf,
    pub status: PathBuf,
    /// `HandlerEnvironment.json`, naming the three folders above.
    pub environment: PathBuf,
}

impl ExtensionDir {
    /// Creates `<parent>/<name>` (`name` may carry a version, as the guest agent's
    /// `Microsoft.Azure.KeyVault.KeyVaultForLinux-4.0.0` does), its folders and its
    /// `HandlerEnvironment.json`.
    pub fn create(parent: &Path, name: &str) -> ExtensionDir {
        let dir = parent.join(name);
        let (config, status, log) = (dir.join("config"), dir.join("status"), dir.join("log"));
        for d in [&config, &status, &log] {
            std::fs::create_dir_all(d).unwrap();
        }
        let environment = dir.join("HandlerEnvironment.json");
        std::fs::write(
            &environment,
            serde_json::to_vec(&json!([{
                "name": "Microsoft.Azure.KeyVault.KeyVaultForLinux", "version": 1.0,
                "handlerEnvironment": {
                    "logFolder": log, "configFolder": config, "statusFolder": status,
                    "heartbeatFile": dir.join("heartbeat.log")
                }
            }]))
            .unwrap(),
        )
        .unwrap();
        ExtensionDir {
            config,
            status,
            environment,
        }
    }

    /// Writes `config/<sequence>.settings` holding `public` as the public settings.
    pub fn write_settings(&self, sequence: u64, public: &Value) {
        write_handler_settings(&self.config, sequence, public);
    }

    /// The status file of `sequence`.
    pub fn status_file(&self, sequence: u64) -> PathBuf {
        self.status.join(format!("{sequence}.status"))
    }
}

/// Writes `<config>/<sequence>.settings` as the guest agent does, `public` as the public
/// settings.
pub fn write_handler_settings(config: &Path, sequence: u64, public: &Value) {
    std::fs::write(
        config.join(format!("{sequence}.settings")),
        serde_json::to_vec(
            &json!({"runtimeSettings": [{"handlerSettings": {"publicSettings": public}}]}),
        )
        .unwrap(),
    )
    .unwrap();
}

/// Stops a detached daemon named by its pid file when the test ends, whatever happened.
pub struct DaemonGuard(pub PathBuf);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        }
    }
}

/// The `status` object of a status file, when it exists and parses.
pub fn read_status(path: &Path) -> Option<Value> {
    let value: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    Some(value[0]["status"].clone())
}
