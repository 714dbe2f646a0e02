//! Crash test of the store's 4.x layout (harness = false), as `crash_store.rs` is of the 3.x
//! one: a child process installs certificates in a loop in a `Layout::V4` store and is killed
//! with SIGKILL at random moments. After every kill, before anything repairs it, every versioned
//! file must be complete (its version's full chain, or its key), every link must point to a
//! complete file, `.luma` must describe a complete pair and the links must not be behind it; the
//! two links may name two installs (a kill between the swaps). After `Store::open_layout` both
//! links must name one pair whose key matches its certificate, `.luma` must name that pair, and
//! no temp file may remain.
//!
//! The same binary is the child: `crash_store_v4 --child STORE FIXTURES`. The number of kills is
//! `AKVVM_CRASH_KILLS` (default 150); on a slow machine the test stops after 30 s once it has
//! done 50. It is a binary of its own for the reasons `crash_store.rs` gives.

mod crash_child;

use std::num::NonZeroU32;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crash_child::{BUNDLES, VERSIONS, version_name};

use akvvm_cert::certificate::{CertificateBundle, decode_pem};
use akvvm_cert::store::{Acl, InstallRequest, Layout, Luma, Store, TEMP_PREFIX};

const NAME: &str = "crash_store_v4";
const DEFAULT_KILLS: u32 = 150;
const TIME_BUDGET: Duration = Duration::from_secs(30);
const MIN_KILLS: u32 = 50;
/// The longest wait between the child's "ready" and its SIGKILL, in installs.
const MAX_DELAY_INSTALLS: u32 = 2;

fn main() -> ExitCode {
    crash_child::main(NAME, child, parent)
}

/// Installs forever, alternating versions, with an ACL every other round.
fn child(store_path: &Path, fixtures: &Path) -> ! {
    let store = Store::open_layout(store_path, Layout::V4).unwrap();
    crash_child::install_forever(&store, fixtures, child_request)
}

fn child_request<'a>(
    version: &'a str,
    bundle: &'a CertificateBundle,
    round: usize,
) -> InstallRequest<'a> {
    static ACLS: std::sync::LazyLock<[Acl; 1]> =
        std::sync::LazyLock::new(|| [Acl::User("4711".into())]);
    InstallRequest {
        vault: "vault",
        name: "cert",
        version,
        bundle,
        link_name: None,
        acls: if round.is_multiple_of(2) { &*ACLS } else { &[] },
        keep: NonZeroU32::new(2).unwrap(),
        certbot_layout: false,
    }
}

/// What each version's two files must hold.
struct Expected {
    pem: String,
    key: String,
    thumbprint: String,
}

/// What one look at the store found.
#[derive(Default)]
struct Seen {
    /// The links name two installs (a kill between the swaps).
    links_apart: bool,
    /// `.luma` names an older pair than the links (a kill before `.luma`).
    luma_behind: bool,
    /// Temp files left (a kill in the middle of a write).
    temps: bool,
    /// The links' common `<version>.<timestamp>`, when they agree.
    pair: Option<(String, String)>,
}

/// `(version, kind, timestamp)` of `vault.cert.<version>.<kind>.<timestamp>`.
fn split_name(name: &str) -> Option<(&str, &str, &str)> {
    let rest = name.strip_prefix("vault.cert.")?;
    let (version, rest) = rest.split_once('.')?;
    let (kind, stamp) = rest.split_once('.')?;
    ((kind == "pem" || kind == "keyid") && stamp.len() == 26).then_some((version, kind, stamp))
}

fn check_file(store: &Path, name: &str, expected: &[Expected]) -> Result<(), String> {
    let (version, kind, _) =
        split_name(name).ok_or_else(|| format!("{name} is not a 4.x file name"))?;
    let index = (0..VERSIONS)
        .find(|&i| version_name(i) == version)
        .ok_or_else(|| format!("{name}: unknown version"))?;
    let want = &expected[index % BUNDLES];
    let text =
        std::fs::read_to_string(store.join(name)).map_err(|e| format!("{name} unreadable: {e}"))?;
    let right = match kind {
        "pem" => text == want.pem,
        _ => text == want.key,
    };
    if !right {
        // Never print the content: it may be a key.
        return Err(format!(
            "{name} is not its version's complete {kind} ({} bytes)",
            text.len()
        ));
    }
    Ok(())
}

/// Checks the store as a kill left it.
fn check_raw(store: &Path, expected: &[Expected]) -> Result<Seen, String> {
    let mut seen = Seen::default();
    let Ok(entries) = std::fs::read_dir(store) else {
        return Ok(seen);
    };
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) {
            seen.temps = true;
        } else if entry.file_type().is_ok_and(|t| t.is_file()) && name != "vault.cert.luma" {
            // Every versioned file was renamed into place complete, linked or not.
            check_file(store, &name, expected)?;
        }
    }
    let link = |kind: &str| -> Result<Option<String>, String> {
        match std::fs::read_link(store.join(format!("vault.cert.{kind}"))) {
            Ok(target) => {
                let target = target.to_string_lossy().into_owned();
                check_file(store, &target, expected)
                    .map_err(|e| format!("the .{kind} link: {e}"))?;
                Ok(Some(target))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    };
    let (pem, keyid) = (link("pem")?, link("keyid")?);
    let install = |target: &Option<String>| {
        target
            .as_deref()
            .and_then(split_name)
            .map(|(v, _, s)| (v.to_owned(), s.to_owned()))
    };
    let (pem_install, keyid_install) = (install(&pem), install(&keyid));
    if pem_install == keyid_install {
        seen.pair = pem_install.clone();
    } else {
        seen.links_apart = true;
    }
    match std::fs::read(store.join("vault.cert.luma")) {
        Ok(bytes) => {
            let luma = Luma::parse(&bytes).ok_or(".luma does not parse")?;
            check_file(store, &luma.pem, expected).map_err(|e| format!(".luma's pem: {e}"))?;
            check_file(store, &luma.keyid, expected).map_err(|e| format!(".luma's keyid: {e}"))?;
            let index = (0..VERSIONS)
                .find(|&i| version_name(i) == luma.version)
                .ok_or(".luma names an unknown version")?;
            if expected[index % BUNDLES].thumbprint != luma.thumbprint {
                return Err(".luma's thumbprint is not its version's".into());
            }
            for target in [&pem_install, &keyid_install] {
                match target {
                    Some((_, stamp)) if *stamp >= luma.timestamp => {}
                    _ => return Err(format!("a link is behind .luma ({})", luma.pem)),
                }
            }
            if pem_install
                .as_ref()
                .is_some_and(|(_, s)| *s > luma.timestamp)
            {
                seen.luma_behind = true;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!(".luma unreadable: {e}")),
    }
    Ok(seen)
}

/// Checks the store after `Store::open_layout` repaired it.
fn check_repaired(store: &Path, expected: &[Expected]) -> Result<(), String> {
    let seen = check_raw(store, expected)?;
    if seen.temps {
        return Err("temp files remain".into());
    }
    let Some((version, stamp)) = seen.pair else {
        if seen.links_apart {
            return Err("the links still name two installs".into());
        }
        return Ok(()); // killed before the first install finished its first link
    };
    let read = |name: String| std::fs::read_to_string(store.join(name)).map_err(|e| e.to_string());
    let pem = read(format!("vault.cert.{version}.pem.{stamp}"))?;
    let key = read(format!("vault.cert.{version}.keyid.{stamp}"))?;
    let bundle = decode_pem(&format!("{pem}{key}"))
        .map_err(|e| format!("the linked pair does not decode: {}", e.code()))?;
    let luma = std::fs::read(store.join("vault.cert.luma")).map_err(|e| e.to_string())?;
    let luma = Luma::parse(&luma).ok_or(".luma does not parse")?;
    if (luma.version.as_str(), luma.timestamp.as_str()) != (version.as_str(), stamp.as_str())
        || luma.thumbprint != bundle.thumbprint()
    {
        return Err(format!(
            ".luma names {} and the links {version}.{stamp}",
            luma.pem
        ));
    }
    Ok(())
}

fn parent() -> Result<String, String> {
    let kills: u32 = match std::env::var("AKVVM_CRASH_KILLS") {
        Ok(value) => value
            .parse()
            .map_err(|_| format!("AKVVM_CRASH_KILLS={value:?} is not a number"))?,
        Err(_) => DEFAULT_KILLS,
    };
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let fixtures = root.path().join("fixtures");
    std::fs::create_dir(&fixtures).map_err(|e| e.to_string())?;
    let mut expected = Vec::new();
    for i in 0..BUNDLES {
        let generated =
            akvvm_testkit::certs::generate(&format!("host{i}.example.com"), 30 + i as i64);
        std::fs::write(fixtures.join(format!("{i}.pem")), &generated.pem)
            .map_err(|e| e.to_string())?;
        let bundle = &generated.bundle;
        expected.push(Expected {
            pem: bundle.fullchain_pem(),
            key: bundle.key_pem().to_string(),
            thumbprint: bundle.thumbprint(),
        });
    }
    let store_path = root.path().join("store");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let install_time = crash_child::time_installs(
        &Store::open_layout(&root.path().join("calibration"), Layout::V4)
            .map_err(|e| e.to_string())?,
        &fixtures,
        child_request,
    )?;
    let max_delay = install_time * MAX_DELAY_INSTALLS;

    let started = Instant::now();
    let (mut done, mut mid_write, mut apart, mut behind, mut installed) = (0, 0, 0, 0, 0);
    for kill in 0..kills {
        if kill >= MIN_KILLS && started.elapsed() > TIME_BUDGET {
            break;
        }
        done += 1;
        crash_child::run_and_kill(&exe, &store_path, &fixtures, max_delay, kill)?;
        let seen =
            check_raw(&store_path, &expected).map_err(|e| format!("after kill {kill}: {e}"))?;
        mid_write += u32::from(seen.temps);
        apart += u32::from(seen.links_apart);
        behind += u32::from(seen.luma_behind);
        Store::open_layout(&store_path, Layout::V4)
            .map_err(|e| format!("after kill {kill}: {e}"))?;
        check_repaired(&store_path, &expected)
            .map_err(|e| format!("after kill {kill} and Store::open_layout: {e}"))?;
        installed += u32::from(store_path.join("vault.cert.luma").exists());
    }
    if installed == 0 {
        return Err("the child never finished an install".into());
    }
    // The kills must have landed where the crash safety matters, or the test showed nothing.
    if mid_write == 0 || apart + behind == 0 {
        return Err(format!(
            "of {done} kills, {mid_write} landed mid-write and {} between the link swaps and \
             .luma: the kills missed the windows this test is for (their spread follows the \
             calibrated install time, {install_time:?})",
            apart + behind
        ));
    }
    Ok(format!(
        "{NAME}: one install takes {:.1} ms; {done} SIGKILLs in {:.1} s; {mid_write} landed \
         mid-write (temp files left), {apart} between the two link swaps, {behind} after the links \
         and before .luma; every file was complete, and each open left both links and .luma on \
         one pair whose key matches its certificate",
        install_time.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64()
    ))
}
