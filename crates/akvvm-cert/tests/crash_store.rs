//! Crash test of the store (harness = false): a child process installs certificates in a loop
//! and is killed with SIGKILL at random moments, hundreds of times. After every kill each link
//! in the store must resolve to a complete file whose key matches its certificate, and after
//! `Store::open` no temp file may remain.
//!
//! The same binary is the child: `crash_store --child STORE FIXTURES`. The number of kills is
//! `AKVVM_CRASH_KILLS` (default 300); on a slow machine the test stops after 50 s once it has
//! done 100.
//!
//! Why this is not a module of `tests/it` like every other test of the crate: the child must be a
//! process that starts installing at once and whose first line on stdout is `ready`, which a
//! libtest binary does not give (it prints its own header and would need a test that only exists
//! to be the child); and the parent times installs to spread its kills, which the other tests of
//! a shared binary, running beside it in the same process, would disturb for its 50 s.

mod crash_child;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crash_child::{BUNDLES, VERSIONS, version_name};

use akvvm_cert::certificate::{CertificateBundle, decode_pem};
use akvvm_cert::store::{Acl, InstallRequest, Store, TEMP_PREFIX};

const DEFAULT_KILLS: u32 = 300;
/// On a slow or busy machine the test stops after this long, once it has done `MIN_KILLS`.
const TIME_BUDGET: Duration = Duration::from_secs(50);
const MIN_KILLS: u32 = 100;
/// The longest wait between the child's "ready" and its SIGKILL, in installs (the parent times a
/// few installs first, so that kills spread over several installs on slow and fast disks alike).
const MAX_DELAY_INSTALLS: u32 = 2;

fn main() -> ExitCode {
    crash_child::main("crash_store", child, parent)
}

/// Installs forever, alternating versions, with every kind of link and an ACL.
fn child(store_path: &Path, fixtures: &Path) -> ! {
    let store = Store::open(store_path).unwrap();
    crash_child::install_forever(&store, fixtures, child_request)
}

/// What the child installs in a round: every kind of link, and an ACL every other round.
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
        link_name: Some("web.pem"),
        acls: if round.is_multiple_of(2) { &*ACLS } else { &[] },
        keep: NonZeroU32::new(2).unwrap(),
        certbot_layout: true,
    }
}

struct Expected {
    full: String,
    leaf: String,
    chain: String,
    key: String,
    thumbprint: String,
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
    let mut expected = BTreeMap::new();
    let mut bundle_expectations = Vec::new();
    for i in 0..BUNDLES {
        let generated =
            akvvm_testkit::certs::generate(&format!("host{i}.example.com"), 30 + i as i64);
        std::fs::write(fixtures.join(format!("{i}.pem")), &generated.pem)
            .map_err(|e| e.to_string())?;
        let bundle = &generated.bundle;
        bundle_expectations.push(Expected {
            full: bundle.to_pem().to_string(),
            leaf: bundle.leaf_pem(),
            chain: bundle.chain_pem(),
            key: bundle.key_pem().to_string(),
            thumbprint: bundle.thumbprint(),
        });
    }
    for index in 0..VERSIONS {
        expected.insert(version_name(index), index % BUNDLES);
    }
    let store_path = root.path().join("store");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let install_time = crash_child::time_installs(
        &Store::open(&root.path().join("calibration")).map_err(|e| e.to_string())?,
        &fixtures,
        child_request,
    )?;
    let max_delay = install_time * MAX_DELAY_INSTALLS;

    let started = Instant::now();
    let mut mid_write = 0;
    let mut before_link = 0;
    let mut links_seen: Vec<String> = Vec::new();
    let mut done = 0;
    for kill in 0..kills {
        if kill >= MIN_KILLS && started.elapsed() > TIME_BUDGET {
            break;
        }
        done += 1;
        crash_child::run_and_kill(&exe, &store_path, &fixtures, max_delay, kill)?;

        let temps = temp_entries(&store_path)?;
        if !temps.is_empty() {
            mid_write += 1;
        }
        if newest_file_is_not_linked(&store_path) {
            before_link += 1;
        }
        let links = check_store(&store_path, &expected, &bundle_expectations)
            .map_err(|e| format!("after kill {kill}: {e}"))?;
        for link in &links_seen {
            if !links.contains(link) {
                return Err(format!("after kill {kill}: the link {link} disappeared"));
            }
        }
        links_seen = links;

        Store::open(&store_path).map_err(|e| format!("after kill {kill}: {e}"))?;
        let left = temp_entries(&store_path)?;
        if !left.is_empty() {
            return Err(format!(
                "after kill {kill} and Store::open, temp files remain: {left:?}"
            ));
        }
    }
    for link in ["vault.cert", "web.pem", "vault.cert.live"] {
        if !links_seen.iter().any(|l| l == link) {
            return Err(format!(
                "the link {link} was never created: the child never finished an install"
            ));
        }
    }
    // The kills must have landed where the crash safety matters, or the test showed nothing.
    if mid_write == 0 || before_link == 0 {
        return Err(format!(
            "of {done} kills, {mid_write} landed mid-write and {before_link} between a new file \
             and its link: the kills missed the windows this test is for (their spread follows \
             the calibrated install time, {install_time:?})"
        ));
    }
    Ok(format!(
        "crash_store: one install takes {:.1} ms; {done} SIGKILLs in {:.1} s; {mid_write} landed mid-write (temp files left \
         behind), {before_link} after a new file but before its link moved; every link resolved to \
         a complete certificate whose key matches it",
        install_time.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64()
    ))
}

/// Whether the newest version file is not (yet) the stable link's target: the kill came after
/// the file was complete and before the link moved.
fn newest_file_is_not_linked(store: &Path) -> bool {
    let Ok(target) = std::fs::read_link(store.join("vault.cert")) else {
        return false;
    };
    let newest = std::fs::read_dir(store)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.file_name().to_string_lossy().starts_with("vault.cert."))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.file_name())))
        .max();
    newest.is_some_and(|(_, name)| name != target.as_os_str())
}

/// The temp entries in the store and in its certbot-style directories.
fn temp_entries(store: &Path) -> Result<Vec<String>, String> {
    let mut temps = Vec::new();
    let Ok(entries) = std::fs::read_dir(store) else {
        return Ok(temps);
    };
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) {
            temps.push(name);
        } else if name.ends_with(".d") && entry.file_type().is_ok_and(|t| t.is_dir()) {
            // The certbot-style directories get their files through temp files too.
            for inner in temp_entries(&entry.path())? {
                temps.push(format!("{name}/{inner}"));
            }
        }
    }
    Ok(temps)
}

/// Checks every link and every version file; returns the names of the links.
fn check_store(
    store: &Path,
    expected: &BTreeMap<String, usize>,
    bundles: &[Expected],
) -> Result<Vec<String>, String> {
    let mut links = Vec::new();
    let Ok(entries) = std::fs::read_dir(store) else {
        return Ok(links);
    };
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| e.to_string())?;
        if file_type.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| e.to_string())?;
            let target = target.to_string_lossy().into_owned();
            let (version, is_dir) = match target.strip_suffix(".d") {
                Some(version) => (version, true),
                None => (target.as_str(), false),
            };
            let version = version
                .strip_prefix("vault.cert.")
                .ok_or_else(|| format!("{name} points to {target}, outside the layout"))?;
            let index = *expected
                .get(version)
                .ok_or_else(|| format!("{name} points to unknown version {version}"))?;
            if is_dir {
                check_certbot_dir(&path, &bundles[index]).map_err(|e| format!("{name}: {e}"))?;
            } else {
                check_full_file(&path, &bundles[index]).map_err(|e| format!("{name}: {e}"))?;
            }
            links.push(name);
        } else if file_type.is_file() {
            // Every version file was renamed into place complete, linked or not.
            let version = name
                .strip_prefix("vault.cert.")
                .ok_or_else(|| format!("unexpected file {name}"))?;
            let index = *expected
                .get(version)
                .ok_or_else(|| format!("unexpected version file {name}"))?;
            check_full_file(&path, &bundles[index]).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    links.sort();
    Ok(links)
}

fn check_full_file(path: &PathBuf, expected: &Expected) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("unreadable: {e}"))?;
    if text != expected.full {
        return Err(format!(
            "content differs from the installed bundle ({} bytes, expected {})",
            text.len(),
            expected.full.len()
        ));
    }
    let bundle = decode_pem(&text).map_err(|e| format!("does not decode: {} ({})", e.code(), e))?;
    if !bundle.key.matches(&bundle.leaf) || bundle.thumbprint() != expected.thumbprint {
        return Err("the key does not match the certificate".into());
    }
    Ok(())
}

fn check_certbot_dir(dir: &Path, expected: &Expected) -> Result<(), String> {
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file)).map_err(|e| format!("{file} unreadable: {e}"))
    };
    let (cert, chain, fullchain, key) = (
        read("cert.pem")?,
        read("chain.pem")?,
        read("fullchain.pem")?,
        read("privkey.pem")?,
    );
    if cert != expected.leaf
        || chain != expected.chain
        || fullchain != format!("{}{}", expected.leaf, expected.chain)
        || key != expected.key
    {
        return Err("a certbot file differs from the installed bundle".into());
    }
    let pair = decode_pem(&format!("{cert}{key}"))
        .map_err(|e| format!("cert.pem + privkey.pem do not decode: {}", e.code()))?;
    if !pair.key.matches(&pair.leaf) {
        return Err("privkey.pem does not match cert.pem".into());
    }
    Ok(())
}
