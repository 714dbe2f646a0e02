//! Local attackers against the `akvvm` binary (issue 11): a `HandlerEnvironment.json` planted in
//! the working directory is never used, and settings that someone but root could have written
//! are refused before anything in them is acted on.

use crate::agent_command::akvvm_logging;
use crate::extension_dir::write_handler_settings;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use assert_cmd::Command;
use serde_json::json;

fn akvvm() -> Command {
    Command::from_std(akvvm_logging("warn"))
}

/// A complete extension layout in `dir` whose settings run `marker`-creating hook: what a local
/// user would plant in `/tmp`.
fn plant_extension(dir: &std::path::Path, marker: &std::path::Path) {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        dir.join("HandlerEnvironment.json"),
        serde_json::to_vec(&json!([{
            "name": "Microsoft.Azure.KeyVault.KeyVaultForLinux", "version": 1.0,
            "handlerEnvironment": {"logFolder": dir, "configFolder": config, "statusFolder": dir}
        }]))
        .unwrap(),
    )
    .unwrap();
    let public = json!({
        "secretsManagementSettings": {
            "observedCertificates": [{
                "url": "https://contoso.vault.azure.net/secrets/web",
                "certificateStoreLocation": dir.join("store"),
                "akvvm": {"reload": {"command": ["/bin/touch", marker]}}
            }]
        },
        "akvvm": {"stateDirectory": dir.join("state")}
    });
    write_handler_settings(&config, 0, &public);
}

#[test]
fn a_handler_environment_in_the_working_directory_is_not_used() {
    let planted = tempfile::tempdir().unwrap();
    let marker = planted.path().join("ran-as-root");
    plant_extension(planted.path(), &marker);
    for args in [&["sync", "--once"][..], &["list"], &["run"]] {
        let out = akvvm()
            .args(args)
            .current_dir(planted.path())
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "akvvm {args:?} used the planted file: {stderr}"
        );
        assert!(
            stderr.contains("no HandlerEnvironment.json found"),
            "akvvm {args:?}: {stderr}"
        );
        assert!(stderr.contains("--handler-environment"), "{stderr}");
    }
    assert!(!marker.exists(), "the planted hook ran");
    assert!(!planted.path().join("state").exists());
    // The planted files are valid: named explicitly (by root), they would be used.
    let out = akvvm()
        .args(["list", "--handler-environment"])
        .arg(planted.path().join("HandlerEnvironment.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("contoso.vault.azure.net/secrets/web"));
}

#[test]
fn settings_that_others_can_write_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    plant_extension(dir.path(), &marker);
    let environment = dir.path().join("HandlerEnvironment.json");
    let handler_settings = dir.path().join("config/0.settings");

    // The handler settings, group-writable.
    std::fs::set_permissions(&handler_settings, std::fs::Permissions::from_mode(0o664)).unwrap();
    let out = akvvm()
        .args(["sync", "--once", "--handler-environment"])
        .arg(&environment)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("file.writable_by_others") || stderr.contains("chmod go-w"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&handler_settings.display().to_string()),
        "{stderr}"
    );

    // The handler environment, writable by others.
    std::fs::set_permissions(&handler_settings, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&environment, std::fs::Permissions::from_mode(0o646)).unwrap();
    let out = akvvm()
        .args(["sync", "--once", "--handler-environment"])
        .arg(&environment)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("chmod go-w"), "{stderr}");
    assert!(
        stderr.contains(&environment.display().to_string()),
        "{stderr}"
    );

    // A plain settings file owned by another user (only root can make one here).
    let plain = dir.path().join("settings.json");
    let public: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&handler_settings).unwrap()).unwrap();
    std::fs::write(
        &plain,
        serde_json::to_vec(&public["runtimeSettings"][0]["handlerSettings"]["publicSettings"])
            .unwrap(),
    )
    .unwrap();
    if std::fs::metadata(&plain).unwrap().uid() == 0 {
        std::os::unix::fs::chown(&plain, Some(4242), None).unwrap();
        let out = akvvm()
            .args(["sync", "--once", "--settings"])
            .arg(&plain)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("owned by uid 4242"), "{stderr}");
        assert!(stderr.contains("chown root:"), "{stderr}");
    }
    assert!(!marker.exists(), "a hook ran from refused settings");
    assert!(!dir.path().join("state").exists());
}

/// The hardening every unit must carry (issue 11): bounded descriptors, the capabilities
/// ownership and ACLs need and no more, the system calls of an ordinary service, no other
/// users' processes, no writable and executable memory.
const UNIT_HARDENING: [&str; 6] = [
    "LimitNOFILE=1024",
    "CapabilityBoundingSet=CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_KILL",
    "SystemCallFilter=@system-service",
    "ProtectProc=invisible",
    "MemoryDenyWriteExecute=yes",
    "NoNewPrivileges=yes",
];

#[test]
fn both_units_are_hardened_and_systemd_accepts_them() {
    let exe = env!("CARGO_BIN_EXE_akvvm");
    let packaged = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/akvvm.service"),
    )
    .unwrap()
    .replace("/usr/bin/akvvm", exe);
    let rendered = akvvm::handler::UnitSpec {
        executable: exe.into(),
        arguments: vec!["run".into()],
        writable_paths: vec!["/var/lib/akvvm".into()],
    }
    .render();
    assert!(packaged.contains("\nStateDirectoryMode=0700\n"));
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("packaged", &packaged), ("rendered", &rendered)] {
        for line in UNIT_HARDENING {
            assert!(
                text.lines().any(|l| l == line),
                "the {name} unit lacks {line}"
            );
        }
        let path = dir.path().join(format!("akvvm-{name}.service"));
        std::fs::write(&path, text).unwrap();
        // systemd's own check (systemd is on every machine the unit is for, and .ci/run
        // installs it).
        if !akvvm_cert::machine::require_program(
            &format!("systemd-analyze verify of the {name} unit"),
            "systemd-analyze",
            &["--version"],
        ) {
            continue;
        }
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the {name} unit: {stderr}");
        assert!(
            stderr.trim().is_empty(),
            "systemd-analyze has remarks on the {name} unit: {stderr}"
        );
    }
}
