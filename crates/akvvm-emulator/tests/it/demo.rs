//! The README's first command: `akvvm-emulator demo` runs the agent against the local vault,
//! installs every certificate and follows a rotation, without printing a key or a token.

use std::process::Command;

use akvvm_testkit::harness::link_target;

#[test]
fn the_readme_demo_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_akvvm-emulator"))
        .env("RUST_LOG", "akvvm=info,warn")
        .env_remove("NOTIFY_SOCKET")
        .arg("demo")
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("akvvm-emulator runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("Every certificate was installed and the rotation followed."),
        "{stdout}"
    );
    assert!(stdout.contains("nginx-web -> akvvm-demo.web."), "{stdout}");
    assert!(!stdout.contains("PRIVATE KEY") && !stderr.contains("PRIVATE KEY"));
    assert!(!stderr.contains("eyJ"), "no token in the logs");
    // The link moved to the rotated version; the previous one stays.
    let store = dir.path().join("store");
    let target = link_target(&store.join("akvvm-demo.web"));
    let versions: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("akvvm-demo.web."))
        .collect();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(versions.contains(&target));
}
