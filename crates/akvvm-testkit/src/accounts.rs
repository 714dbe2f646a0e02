//! Linux users and groups made for one test (`useradd`/`groupadd`, removed when dropped): the
//! principals that `acls` entries and per-certificate ownership name. Needs root (CI runs as
//! root); without it, creating one fails saying so.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn id_of(args: &[&str]) -> u32 {
    let out = Command::new("getent")
        .args(args)
        .output()
        .expect("getent runs");
    let line = String::from_utf8_lossy(&out.stdout);
    line.split(':')
        .nth(2)
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("getent {args:?} found nothing"))
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    assert!(
        status.success(),
        "{program} {args:?} failed (these tests need root, as CI has)"
    );
}

/// A system user without a home, deleted when dropped.
pub struct TempUser {
    pub name: String,
    pub uid: u32,
}

impl TempUser {
    /// A new user named `<prefix><pid>x<n>`, or the exact `name` if given (deleted first if a
    /// previous run left it).
    pub fn create(prefix: &str, exact: Option<&str>) -> TempUser {
        let name = exact.map_or_else(|| unique(prefix), str::to_owned);
        if exact.is_some() {
            let _ = Command::new("userdel")
                .arg(&name)
                .stderr(std::process::Stdio::null())
                .status();
        }
        run(
            "useradd",
            &[
                "--system",
                "--no-create-home",
                "--no-user-group",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ],
        );
        let uid = id_of(&["passwd", &name]);
        TempUser { name, uid }
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// A system group, deleted when dropped.
pub struct TempGroup {
    pub name: String,
    pub gid: u32,
}

impl TempGroup {
    /// A new group named `<prefix><pid>x<n>`, or the exact `name` if given (deleted first if a
    /// previous run left it).
    pub fn create(prefix: &str, exact: Option<&str>) -> TempGroup {
        let name = exact.map_or_else(|| unique(prefix), str::to_owned);
        if exact.is_some() {
            let _ = Command::new("groupdel")
                .arg(&name)
                .stderr(std::process::Stdio::null())
                .status();
        }
        run("groupadd", &["--system", &name]);
        let gid = id_of(&["group", &name]);
        TempGroup { name, gid }
    }
}

impl Drop for TempGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).status();
    }
}
