//! Local privilege boundaries (issue 11, standing defence 6): an unprivileged user, created by
//! the test (`useradd`, removed when it ends), against akvvm running as root. That user cannot
//! read an installed key, cannot plant a link or a FIFO in the store or the state directory,
//! cannot get a hook run by planting files (`HandlerEnvironment.json` in the working directory or
//! the extension directory, settings, the hook journal `hooks.json`, a hook program or a link on
//! its way), and a FIFO it plants in place of a file akvvm reads does not hang akvvm.
//!
//! These tests need root (CI runs as root) and fail, saying so, without it. Files "planted by the
//! user" are made by root and handed to the user with `chown` where only ownership matters;
//! what the user *tries* (reading, linking, making FIFOs) runs as the user through `setpriv`.
//!
//! The store's path (finding 4): a store under a directory the user owns or planted (or through
//! its link) is refused, and a user who can write the store's parent only after akvvm opened it
//! cannot redirect a prune by swapping the store for a link. A state directory the user owns is
//! refused.

use crate::agent_command::akvvm_logging;
use crate::extension_dir::write_handler_settings;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use akvvm_testkit::harness::{Harness, PFX, cycle};
use serde_json::json;

fn require_root() {
    let euid = std::fs::metadata("/proc/self")
        .expect("/proc is mounted")
        .uid();
    assert_eq!(
        euid, 0,
        "the local privilege tests must run as root (CI does): they create a user and act as \
         it; run `sudo -E cargo test -p akvvm-cli --test it privilege`"
    );
}

/// A system user made for one test, deleted when dropped.
struct User {
    name: String,
    uid: u32,
    gid: u32,
}

impl User {
    fn create() -> User {
        require_root();
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "akvt{}x{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let status = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(&name)
            .status()
            .expect("useradd runs");
        assert!(status.success(), "useradd {name} failed");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        assert_ne!(uid, 0);
        User { name, uid, gid }
    }

    /// Runs `program args` as this user (no supplementary groups).
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Output {
        Command::new("setpriv")
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .args(["--clear-groups", "--"])
            .arg(program)
            .args(args)
            .output()
            .expect("setpriv runs")
    }

    /// A directory the user owns (mode 0755), as one of its own under /tmp would be.
    fn own_dir(&self, path: &Path) {
        std::fs::create_dir_all(path).unwrap();
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Hands `path` to the user, as if the user had made it.
    fn give(&self, path: &Path) {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid)).unwrap();
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

fn akvvm() -> Command {
    akvvm_logging("warn")
}

/// Runs a command off the async runtime (the local vault runs on it), killed after 60 s: a hang
/// is a failure, not a stuck test.
async fn output(mut command: Command) -> Output {
    command.stdin(std::process::Stdio::null());
    let mut command = assert_cmd::Command::from_std(command);
    command.timeout(Duration::from_secs(60));
    let out = tokio::task::spawn_blocking(move || command.output().expect("akvvm runs"))
        .await
        .unwrap();
    assert!(
        out.status.code().is_some(),
        "akvvm was killed (hung for 60 s?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// Every regular file under `dir` (as root sees it).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.extend(files_under(&path));
        } else if meta.is_file() {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unprivileged_user_cannot_read_keys_or_plant_links_and_fifos_in_the_store_or_state() {
    let user = User::create();
    let h = Harness::start().await;
    // Let the user reach the store and state directories: their own modes must keep it out.
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["akvvm"]["certbotLayout"] = json!(true);
    let settings = h.settings_file(&json);
    let mut sync = akvvm();
    sync.args(["sync", "--once", "--settings"]).arg(&settings);
    let out = output(sync).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let keys: Vec<PathBuf> = files_under(&h.store())
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "pfx")
                || std::fs::read_to_string(p).is_ok_and(|t| t.contains("PRIVATE KEY"))
        })
        .collect();
    assert!(
        keys.len() >= 3,
        "the version file, privkey.pem and cert.pfx: {keys:?}"
    );
    for key in &keys {
        let mode = std::fs::metadata(key).unwrap().mode() & 0o777;
        assert_eq!(
            mode & 0o077,
            0,
            "{} is {mode:o}: others could read the key",
            key.display()
        );
        let out = user.run("cat", &[key.as_os_str()]);
        assert!(!out.status.success(), "the user read {}", key.display());
        assert!(
            out.stdout.is_empty(),
            "the user got bytes of {}",
            key.display()
        );
    }
    // Through the stable link too.
    let out = user.run("cat", &[h.store().join("contoso.web").as_os_str()]);
    assert!(
        !out.status.success(),
        "the user read the key through the link"
    );

    // Planting: a link to a file root would then write, a FIFO where akvvm reads or writes.
    let before: Vec<_> = files_under(&h.store());
    for (dir, name) in [
        (h.store(), "contoso.web"),
        (h.store(), "contoso.web.evil"),
        (h.state_dir(), "state.json"),
        (h.state_dir(), "hooks.json"),
        (h.state_dir(), "new"),
    ] {
        let target = dir.join(name);
        let out = user.run("ln", &[os("-sfn"), os("/etc/shadow"), target.as_os_str()]);
        assert!(
            !out.status.success(),
            "the user linked {}",
            target.display()
        );
        let out = user.run("mkfifo", &[target.as_os_str()]);
        assert!(
            !out.status.success(),
            "the user made a FIFO at {}",
            target.display()
        );
    }
    assert_eq!(files_under(&h.store()), before);

    // The state file and the hook journal are root's alone.
    for file in files_under(&h.state_dir()) {
        let out = user.run("cat", &[file.as_os_str()]);
        assert!(!out.status.success(), "the user read {}", file.display());
    }
}

/// The root-owned settings a hook of which touches `marker`, run by `program` (its arguments
/// after).
fn settings_with_hook(h: &Harness, command: Vec<String>, state_dir: &Path) -> serde_json::Value {
    let mut json = h.settings_json(
        &["contoso"],
        vec![json!({"url": Harness::url("contoso", "web"), "akvvm": {"reload": {"command": command}}})],
    );
    json["akvvm"]["stateDirectory"] = json!(state_dir.display().to_string());
    json
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_cannot_get_a_hook_run_through_the_hook_journal_or_hang_the_agent_with_a_fifo() {
    let user = User::create();
    let h = Harness::start().await;
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    h.vault("contoso");
    let version = h.certificate("contoso", "web", "RSA", PFX);
    // The state directory is root's, in a directory the user owns (an administrator pointed
    // stateDirectory under one the user had made first).
    let shared = h.dir.path().join("shared");
    user.own_dir(&shared);
    let state = shared.join("state");
    std::fs::create_dir(&state).unwrap();
    let marker = h.dir.path().join("hook-ran");
    let json = settings_with_hook(
        &h,
        vec!["/usr/bin/touch".into(), marker.display().to_string()],
        &state,
    );
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete());
    assert!(marker.exists(), "the first install runs the hook");
    std::fs::remove_file(&marker).unwrap();
    drop(engine);

    // The user cannot write the journal in root's state directory, so it moves the directory
    // away and puts one of its own in its place, with a journal saying the hook of the installed
    // version did not finish: a restart would run it again, as root.
    let journal = state.join("hooks.json");
    let planted = serde_json::to_vec(&json!({
        Harness::url("contoso", "web"): {"version": version, "state": "pending", "at": "2026-12-01T00:00:00Z"}
    }))
    .unwrap();
    let staged = shared.join("hooks.json");
    std::fs::write(&staged, &planted).unwrap();
    user.give(&staged);
    let out = user.run("cp", &[staged.as_os_str(), journal.as_os_str()]);
    assert!(!out.status.success(), "the user wrote root's journal");
    let out = user.run("mv", &[state.as_os_str(), shared.join("moved").as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = user.run("mkdir", &[state.as_os_str()]);
    assert!(out.status.success());
    let out = user.run("mv", &[staged.as_os_str(), journal.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&journal).unwrap().uid(), user.uid);
    let settings = h.settings(&json);
    let error = akvvm::sync::Engine::new(
        settings.clone(),
        akvvm::sync::EngineOptions::for_settings(&settings),
    )
    .err()
    .expect("a state directory of the user is refused");
    assert_eq!(error.code(), "state.unsafe_owner", "{error}");
    assert!(
        error.to_string().contains(&format!("uid {}", user.uid)),
        "{error}"
    );
    assert!(!marker.exists(), "the planted journal's hook ran");

    // A FIFO in its place: nothing hangs, nothing runs, the directory is refused.
    std::fs::remove_file(&journal).unwrap();
    let out = user.run("mkfifo", &[journal.as_os_str()]);
    assert!(out.status.success());
    let settings = h.settings_file(&json);
    let mut sync = akvvm();
    sync.args(["sync", "--once", "--settings"]).arg(&settings);
    let out = output(sync).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a state directory of the user: {stderr}"
    );
    assert!(stderr.contains("the state directory"), "{stderr}");
    assert!(
        stderr.contains(&format!("belongs to uid {}", user.uid)),
        "{stderr}"
    );
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn files_a_user_plants_are_not_acted_on() {
    let user = User::create();
    let h = Harness::start().await;
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    let planted = h.dir.path().join("planted");
    user.own_dir(&planted);
    let marker = h.dir.path().join("hook-ran");

    // An extension layout with a hook, all the user's.
    let config = planted.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let environment = planted.join("HandlerEnvironment.json");
    std::fs::write(
        &environment,
        serde_json::to_vec(&json!([{
            "name": "Microsoft.Azure.KeyVault.KeyVaultForLinux", "version": 1.0,
            "handlerEnvironment": {"logFolder": planted, "configFolder": config, "statusFolder": planted}
        }]))
        .unwrap(),
    )
    .unwrap();
    let public = settings_with_hook(
        &h,
        vec!["/usr/bin/touch".into(), marker.display().to_string()],
        &h.state_dir(),
    );
    write_handler_settings(&config, 0, &public);
    let settings = planted.join("settings.json");
    std::fs::write(&settings, serde_json::to_vec(&public).unwrap()).unwrap();
    for path in [&config, &environment, &config.join("0.settings"), &settings] {
        user.give(path);
    }
    let fifo = planted.join("fifo");
    assert!(user.run("mkfifo", &[fifo.as_os_str()]).status.success());

    let attempts: Vec<(&str, Command, &str)> = vec![
        (
            "HandlerEnvironment.json in the working directory",
            {
                let mut c = akvvm();
                c.args(["sync", "--once"]).current_dir(&planted);
                c
            },
            "no HandlerEnvironment.json found",
        ),
        (
            "the extension directory named by the guest agent's variable",
            {
                let mut c = akvvm();
                c.args(["sync", "--once"])
                    .env("AZURE_GUEST_AGENT_EXTENSION_PATH", &planted);
                c
            },
            "owned by uid",
        ),
        (
            "--handler-environment",
            {
                let mut c = akvvm();
                c.args(["sync", "--once", "--handler-environment"])
                    .arg(&environment);
                c
            },
            "owned by uid",
        ),
        (
            "--settings",
            {
                let mut c = akvvm();
                c.args(["sync", "--once", "--settings"]).arg(&settings);
                c
            },
            "owned by uid",
        ),
        (
            "--settings naming a FIFO",
            {
                let mut c = akvvm();
                c.args(["sync", "--once", "--settings"]).arg(&fifo);
                c
            },
            "not a regular file",
        ),
    ];
    for (what, command, expected) in attempts {
        let out = output(command).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: akvvm used it: {stderr}");
        assert!(stderr.contains(expected), "{what}: {stderr}");
    }
    assert!(!marker.exists(), "a planted hook ran");
    assert!(!h.state_dir().exists(), "refused settings were acted on");

    // Root's own settings, whose hook program the user can reach: the user's script, a root
    // script in the user's directory, a root link to the user's script. Never run.
    let script = planted.join("reload.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root_script = planted.join("root-reload.sh");
    std::fs::copy(&script, &root_script).unwrap();
    user.give(&script);
    let link = h.dir.path().join("reload-link");
    std::os::unix::fs::symlink(&script, &link).unwrap();
    for (what, program, code) in [
        ("the user's script", &script, "owned by uid"),
        (
            "a root script in the user's directory",
            &root_script,
            "owned by uid",
        ),
        ("a root link to the user's script", &link, "owned by uid"),
    ] {
        let json = settings_with_hook(&h, vec![program.display().to_string()], &h.state_dir());
        let engine = h.engine(&json);
        let report = cycle(&engine).await;
        let hook = format!("{:?}", report.certificates[0].hook);
        assert!(hook.contains(code), "{what}: {hook}");
        assert!(!marker.exists(), "{what}: the hook ran");
        // The next version would try again: make the certificate new for the next program.
        std::fs::remove_dir_all(h.store()).unwrap();
        std::fs::remove_dir_all(h.state_dir()).unwrap();
    }

    // A FIFO the user made where root's settings put the store: refused (the user's directory
    // already is, and a FIFO in a directory of root's is not a directory), nothing hangs.
    let fifo_store = planted.join("store");
    assert!(
        user.run("mkfifo", &[fifo_store.as_os_str()])
            .status
            .success()
    );
    let root_fifo = h.dir.path().join("fifo-store");
    assert!(
        Command::new("mkfifo")
            .arg(&root_fifo)
            .status()
            .unwrap()
            .success()
    );
    for (store, expected) in [
        (&fifo_store, "on the way to the certificate store"),
        (&root_fifo, "is not a directory"),
    ] {
        let mut json = settings_with_hook(&h, vec!["/bin/true".into()], &h.state_dir());
        json["secretsManagementSettings"]["certificateStoreLocation"] =
            json!(store.display().to_string());
        let root_settings = h.settings_file(&json);
        let mut sync = akvvm();
        sync.args(["sync", "--once", "--settings"])
            .arg(&root_settings);
        let out = output(sync).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a FIFO as the store: {stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }

    // A webhook secret file that is the user's FIFO: `run` refuses it (and keeps polling
    // without the webhook), and does not hang on it.
    let mut json = settings_with_hook(&h, vec!["/bin/true".into()], &h.state_dir());
    json["akvvm"]["webhook"] =
        json!({"address": "127.0.0.1:0", "secretFile": fifo.display().to_string()});
    let root_settings = h.settings_file(&json);
    let log = h.dir.path().join("run.stderr");
    let mut run = akvvm()
        .args(["run", "--settings"])
        .arg(&root_settings)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let link = h.store().join("contoso.web");
    let refused = akvvm_testkit::harness::eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("not a regular file"))
            && link.exists()
    })
    .await;
    Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || run.wait().unwrap())
        .await
        .unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        refused,
        "run names the FIFO secret file and still installs: {stderr}"
    );
    assert!(stderr.contains(&fifo.display().to_string()), "{stderr}");
    assert!(status.success(), "run stops cleanly: {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_under_a_directory_the_user_controls_is_refused() {
    let user = User::create();
    let h = Harness::start().await;
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);

    // A directory of the user's: it could rename the store away and put a link in its place.
    let theirs = h.dir.path().join("theirs");
    user.own_dir(&theirs);
    // A sticky directory writable by all, as /tmp: the user made `certs` there first, and a link
    // to a directory of root's.
    let sticky = h.dir.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let certs = sticky.join("certs");
    assert!(user.run("mkdir", &[certs.as_os_str()]).status.success());
    let victim = h.dir.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = sticky.join("link");
    let out = user.run("ln", &[os("-s"), victim.as_os_str(), link.as_os_str()]);
    assert!(out.status.success());

    for (store, expected) in [
        (
            theirs.join("store"),
            format!("{} on the way to the certificate store", theirs.display()),
        ),
        (certs.join("store"), format!("is owned by uid {}", user.uid)),
        (
            link.join("store"),
            format!("{} on the way to the certificate store", link.display()),
        ),
        (link.clone(), "is a symbolic link".to_string()),
    ] {
        let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
        json["secretsManagementSettings"]["certificateStoreLocation"] =
            json!(store.display().to_string());
        let settings = h.settings_file(&json);
        let mut sync = akvvm();
        sync.args(["sync", "--once", "--settings"]).arg(&settings);
        let out = output(sync).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: {stderr}", store.display());
        assert!(stderr.contains(&expected), "{}: {stderr}", store.display());
    }
    assert!(std::fs::read_dir(&theirs).unwrap().next().is_none());
    assert!(std::fs::read_dir(&certs).unwrap().next().is_none());
    assert!(std::fs::read_dir(&victim).unwrap().next().is_none());
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o7777, 0o755);

    // Root's directory in the sticky one is fine, and the user can neither move nor replace it.
    let ours = sticky.join("ours");
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["secretsManagementSettings"]["certificateStoreLocation"] =
        json!(ours.join("store").display().to_string());
    let settings = h.settings_file(&json);
    let mut sync = akvvm();
    sync.args(["sync", "--once", "--settings"]).arg(&settings);
    let out = output(sync).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ours.join("store/contoso.web").exists());
    let out = user.run("mv", &[ours.as_os_str(), sticky.join("moved").as_os_str()]);
    assert!(
        !out.status.success(),
        "the user moved root's directory out of the sticky one"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_who_can_write_the_stores_parent_after_open_cannot_redirect_a_prune() {
    let user = User::create();
    let h = Harness::start().await;
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    h.vault("contoso");
    let v1 = h.certificate("contoso", "web", "RSA", PFX);
    let parent = h.dir.path().join("parent");
    std::fs::create_dir(&parent).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = parent.join("store");
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["secretsManagementSettings"]["certificateStoreLocation"] =
        json!(store.display().to_string());
    json["akvvm"]["certbotLayout"] = json!(true);
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete());
    h.certificate("contoso", "web", "RSA", PFX);
    assert!(cycle(&engine).await.complete());

    // Root's files that look like v1 in a directory of root's.
    let victim = h.dir.path().join("victim");
    let victim_dir = victim.join(format!("contoso.web.{v1}.d"));
    std::fs::create_dir_all(&victim_dir).unwrap();
    std::fs::write(victim_dir.join("privkey.pem"), b"root's").unwrap();
    std::fs::write(victim.join(format!("contoso.web.{v1}")), b"root's").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Now the parent becomes writable by the user (a chmod, a shared mount). The user moves the
    // store away and puts a link to the victim in its place while the agent runs.
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o777)).unwrap();
    let moved = parent.join("moved");
    let out = user.run("mv", &[store.as_os_str(), moved.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = user.run("ln", &[os("-s"), victim.as_os_str(), store.as_os_str()]);
    assert!(out.status.success());

    // A third version prunes v1: in the store the agent opened, never through the link.
    let v3 = h.certificate("contoso", "web", "RSA", PFX);
    let report = cycle(&engine).await;
    assert!(report.complete(), "{report:?}");
    assert!(
        victim_dir.join("privkey.pem").exists(),
        "the prune followed the link"
    );
    assert!(victim.join(format!("contoso.web.{v1}")).exists());
    assert!(moved.join(format!("contoso.web.{v3}")).exists());
    assert!(!moved.join(format!("contoso.web.{v1}.d")).exists());

    // A new start refuses the parent.
    drop(engine);
    let settings = h.settings(&json);
    let error = akvvm::sync::Engine::new(
        settings.clone(),
        akvvm::sync::EngineOptions::for_settings(&settings),
    )
    .err()
    .expect("a parent writable by others is refused");
    assert_eq!(error.code(), "store.unsafe_path", "{error}");
}
