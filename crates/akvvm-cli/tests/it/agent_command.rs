//! The `akvvm` binary as the whole-process tests run it: with a log level, and without what the
//! test runner's own environment might say about a guest agent or systemd.

use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;

/// `akvvm` logging at `rust_log`, without `NOTIFY_SOCKET` and the guest agent's variables
/// (`ConfigSequenceNumber`, `AZURE_GUEST_AGENT_EXTENSION_PATH`, `..._VERSION`).
pub fn akvvm_logging(rust_log: &str) -> Command {
    let mut command = Command::cargo_bin("akvvm").expect("the akvvm binary");
    command
        .env("RUST_LOG", rust_log)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("ConfigSequenceNumber")
        .env_remove("AZURE_GUEST_AGENT_EXTENSION_PATH")
        .env_remove("AZURE_GUEST_AGENT_EXTENSION_VERSION");
    command
}

/// Runs `command` to its end off the async runtime (the local vault runs on it).
pub async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("akvvm runs"))
        .await
        .unwrap()
}
