//! What the machine running the tests can do, and the one way a test skips when it cannot.
//!
//! `cargo test --workspace` (the fast tier) passes for an unprivileged user on any Linux
//! machine: a test that needs root, a tool such as `openssl`, or a file system feature such as
//! user extended attributes asks [`require`] first. Without it the test prints one line saying
//! why and returns; with `AKVVM_REQUIRE_ROOT=1` in the environment (CI sets it) the test fails
//! instead, so that CI never skips anything.

use std::io::Write as _;

/// The environment variable that turns every skip into a failure.
pub const REQUIRE_ENV: &str = "AKVVM_REQUIRE_ROOT";

/// Whether a test may go on: `true` when `available` holds. Otherwise the test should return
/// at once: one `SKIPPED` line naming `test` and `what` it needs goes to the terminal (written
/// past the test harness's capture, so it shows for a passing test), or, under
/// `AKVVM_REQUIRE_ROOT=1`, the test panics with that line.
#[track_caller]
pub fn require(available: bool, test: &str, what: &str) -> bool {
    if available {
        return true;
    }
    let line = format!("SKIPPED {test}: needs {what}");
    if std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1") {
        panic!("{line} ({REQUIRE_ENV}=1 forbids skipping)");
    }
    // `io::stderr()` is not captured by libtest, unlike `eprintln!`.
    let _ = writeln!(
        std::io::stderr(),
        "{line} (set {REQUIRE_ENV}=1 to fail instead)"
    );
    false
}

/// [`require`] root (an effective uid of 0).
#[track_caller]
pub fn require_root(test: &str) -> bool {
    require(
        rustix::process::geteuid().is_root(),
        test,
        "root (it changes owners or needs privileges)",
    )
}

/// [`require`] a program on `PATH` that runs with `args` (such as `--version`).
#[track_caller]
pub fn require_program(test: &str, program: &str, args: &[&str]) -> bool {
    let runs = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    require(
        runs,
        test,
        &format!("the `{program}` program (install it, as .ci/run does)"),
    )
}

/// [`require`] user extended attributes on the file system of `dir` (tmpfs and ext4 have them;
/// some overlay and network file systems do not).
#[track_caller]
pub fn require_user_xattrs(test: &str, dir: &std::path::Path) -> bool {
    let probe = dir.join(".xattr-probe");
    let supported = std::fs::write(&probe, b"").is_ok()
        && rustix::fs::setxattr(&probe, "user.probe", b"1", rustix::fs::XattrFlags::empty())
            .is_ok();
    let _ = std::fs::remove_file(&probe);
    require(
        supported,
        test,
        &format!("user extended attributes under {}", dir.display()),
    )
}
