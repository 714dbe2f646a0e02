//! Crash safety at scale: `akvvm sync --once` killed with SIGKILL at random moments of installs
//! and rotations, hundreds of times, in both layouts (the 3.x layout for `web`, the 3.x layout
//! plus certbot's for `api`), each certificate with a reload hook that appends a line per run.
//!
//! Each round rotates both certificates in the local vault, starts the agent, kills it after a
//! random delay, a random fraction (35% to 100%) of the length of an uninterrupted run, so that
//! kills land in the fetch, the decode, the installs, the state save, the hooks and the exit
//! (the tally printed at the end says where they landed), then checks:
//! - every link (`contoso.web`, `contoso.api`, `contoso.api.live`) points to a complete
//!   certificate whose key matches (decoded and key-checked by `akvvm-cert`), either the
//!   previous version or the new one;
//! - the state file loads without a problem.
//!
//! Then it restarts the agent, which must complete the interrupted rotation (both links on the new
//! version) and leave exactly one hook run per version: two only where the kill struck while
//! that version's hook may have been running (its journal entry pending and its link already
//! switched), since a hook killed mid-run is run again (at least once, documented).
//!
//! The same rounds run in the 4.x layout ([`CI_KILLS_V4`] kills, settings with
//! `akvvm.extensionVersion: "4.0"`): after a kill, the `.pem` and `.keyid` links each point to a
//! complete file of the previous or the new version (they may disagree: the kill may fall
//! between the two swaps), and the pair `.luma` names is complete and matching; the restart
//! brings both links and `.luma` to the new version.
//!
//! CI runs [`CI_KILLS`] kills; `AKVVM_CRASH_KILLS=N` runs more (`cargo test -p akvvm-cli --test
//! it crash_safety -- --ignored` runs [`LONG_KILLS`]). `AKVVM_CRASH_SEED` replays a run: the seed
//! is printed at the start and in every failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use akvvm_testkit::harness::{Harness, PEM, PFX};
use assert_cmd::cargo::CommandCargoExt;
use serde_json::json;

/// Kills per CI run.
const CI_KILLS: u64 = 200;
/// Kills per CI run in the 4.x layout.
const CI_KILLS_V4: u64 = 100;

/// The store layout a bed's settings choose.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// 3.x: `contoso.web` and certbot's `contoso.api.live`.
    V3,
    /// 4.x: `contoso.<name>.pem`, `.keyid` and `.luma`.
    V4,
}
/// Kills of the longer, documented run (`--ignored`).
const LONG_KILLS: u64 = 2_000;

/// A small seeded generator (SplitMix64): the same seed, the same delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    fn below(&mut self, max: u64) -> u64 {
        self.next() % (max + 1)
    }
}

/// What the kill interrupted, as seen afterwards: the counts the run prints.
#[derive(Default, Debug)]
struct Tally {
    kills: u64,
    exited_before_kill: u64,
    /// Neither link had moved to the new version.
    before_any_switch: u64,
    /// One certificate's link had moved, the other's had not.
    between_certificates: u64,
    /// Both links on the new version, some hook not yet recorded as run.
    after_switch_before_hook_done: u64,
    /// Both links switched and both hooks recorded.
    after_everything: u64,
    /// Temp debris (`.akvvm-tmp-*`) left by the kill: a write was cut mid-way.
    with_debris: u64,
    /// Hooks run a second time because the kill struck while they may have been running.
    hook_reruns: u64,
}

struct Bed {
    h: Harness,
    layout: Layout,
    settings: PathBuf,
    hook_log: PathBuf,
    seed: u64,
}

const CERTS: [&str; 2] = ["web", "api"];
/// `web`'s `customSymbolicLinkName` in the 3.x bed: it moves before the stable link, so a kill
/// between the two leaves it ahead, and the restart must bring the stable link to it.
const CUSTOM_LINK: &str = "web.pem";

impl Bed {
    async fn new(seed: u64, layout: Layout) -> Bed {
        let h = Harness::start().await;
        h.vault("contoso");
        // EC keys and PEM secrets: a rotation costs the local vault no RSA key generation and
        // the agent no PKCS#12 key derivation, so a round is mostly the agent's own work.
        h.certificate("contoso", "web", "EC", PEM);
        h.certificate("contoso", "api", "EC", PEM);
        let hook_log = h.dir.path().join("hook.log");
        let observed = match layout {
            Layout::V3 => vec![
                json!({"url": Harness::url("contoso", "web"), "customSymbolicLinkName": CUSTOM_LINK}),
                json!({"url": Harness::url("contoso", "api"), "akvvm": {"certbotLayout": true}}),
            ],
            Layout::V4 => CERTS
                .iter()
                .map(|name| json!({"url": Harness::url("contoso", name)}))
                .collect(),
        };
        let mut json = h.settings_json(&["contoso"], observed);
        if layout == Layout::V4 {
            json["akvvm"]["extensionVersion"] = json!("4.0");
        }
        json["akvvm"]["reload"] = json!({
            "command": [
                "/bin/sh", "-c",
                format!("echo \"$AKVVM_URL $AKVVM_VERSION\" >> {}", hook_log.display())
            ],
            "timeoutInS": 30
        });
        // Every cycle is a full check (no list short-cut), so each run fetches both secrets.
        json["akvvm"]["fullCheckIntervalInS"] = json!(0);
        let settings = h.settings_file(&json);
        Bed {
            h,
            layout,
            settings,
            hook_log,
            seed,
        }
    }

    fn sync_once(&self) -> Command {
        let mut command = Command::cargo_bin("akvvm").expect("the akvvm binary");
        command
            .args(["sync", "--once", "--settings"])
            .arg(&self.settings)
            .env("RUST_LOG", "error")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Runs the agent to completion; panics unless it succeeds.
    fn complete(&self, round: u64) -> Duration {
        let started = Instant::now();
        let out = self.sync_once().output().expect("akvvm runs");
        assert!(
            out.status.success(),
            "seed {}: round {round}: the restart did not complete: {}",
            self.seed,
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed()
    }

    fn store(&self) -> PathBuf {
        self.h.store()
    }

    /// The hook runs per (certificate name, version).
    fn hook_runs(&self) -> BTreeMap<(String, String), u64> {
        let text = std::fs::read_to_string(&self.hook_log).unwrap_or_default();
        let mut runs = BTreeMap::new();
        for line in text.lines() {
            let (url, version) = line.split_once(' ').expect("url version");
            let name = url.rsplit('/').next().unwrap().to_owned();
            *runs.entry((name, version.to_owned())).or_default() += 1;
        }
        runs
    }

    /// Whether the hook journal shows `name`'s hook pending for `version`.
    fn hook_pending(&self, name: &str, version: &str) -> bool {
        let path = self.h.state_dir().join("hooks.json");
        let Ok(text) = std::fs::read_to_string(path) else {
            return false;
        };
        let journal: serde_json::Value = serde_json::from_str(&text).expect("the hook journal");
        let record = &journal[Harness::url("contoso", name)];
        record["version"] == version && record["state"] == "pending"
    }
}

/// The version a link's target names (`contoso.web.<version>` or `contoso.api.<version>.d`).
fn linked_version(link: &Path, name: &str) -> String {
    let target = std::fs::read_link(link)
        .unwrap_or_else(|e| panic!("{} is not a link: {e}", link.display()));
    let file = target.file_name().unwrap().to_string_lossy().into_owned();
    let file = file.strip_suffix(".d").unwrap_or(&file).to_owned();
    file.strip_prefix(&format!("contoso.{name}."))
        .unwrap_or_else(|| panic!("{} points to {file}", link.display()))
        .to_owned()
}

/// Panics unless `text` is a complete certificate whose key matches.
fn assert_complete(what: &str, text: &str, seed: u64, round: u64) {
    if let Err(e) = akvvm_cert::certificate::decode_secret(Some(PEM), text) {
        panic!(
            "seed {seed}: round {round}: {what} is not a complete certificate with its key: [{}] {e}",
            e.code()
        );
    }
}

/// Checks every link after a kill and returns the version each certificate's readers get (the
/// stable link's in 3.x, `.luma`'s in 4.x). In 4.x, also the versions of the `.pem` and `.keyid`
/// links, which a kill between the two swaps leaves apart.
fn check_links(bed: &Bed, round: u64) -> BTreeMap<&'static str, String> {
    match bed.layout {
        Layout::V3 => check_links_v3(bed, round),
        Layout::V4 => check_links_v4(bed, round).0,
    }
}

/// The version in a 4.x file name: `contoso.<name>.<version>.pem.<ts>`.
fn v4_version(file: &str, name: &str, round: u64, seed: u64) -> String {
    let rest = file
        .strip_prefix(&format!("contoso.{name}."))
        .unwrap_or_else(|| panic!("seed {seed}: round {round}: {file} is not {name}'s"));
    rest.split('.').next().unwrap().to_owned()
}

type LinkVersions = BTreeMap<&'static str, (String, String)>;

/// 4.x: `.luma`'s pair is complete and matching, each link points to a complete file; returns
/// `.luma`'s version and the links' (`.pem`, `.keyid`) versions per certificate.
fn check_links_v4(bed: &Bed, round: u64) -> (BTreeMap<&'static str, String>, LinkVersions) {
    let store = bed.store();
    let seed = bed.seed;
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("seed {seed}: round {round}: {}: {e}", path.display()))
    };
    let mut luma_versions = BTreeMap::new();
    let mut link_versions = BTreeMap::new();
    for name in CERTS {
        let luma_path = store.join(format!("contoso.{name}.luma"));
        let luma = akvvm_cert::store::Luma::parse(read(&luma_path).as_bytes())
            .unwrap_or_else(|| panic!("seed {seed}: round {round}: {name}'s .luma does not parse"));
        let pair = format!(
            "{}{}",
            read(&store.join(&luma.pem)),
            read(&store.join(&luma.keyid))
        );
        assert_complete(
            &format!("the pair {name}'s .luma names"),
            &pair,
            seed,
            round,
        );
        luma_versions.insert(name, luma.version.clone());
        let mut versions = Vec::new();
        for ext in ["pem", "keyid"] {
            let link = store.join(format!("contoso.{name}.{ext}"));
            let target = std::fs::read_link(&link)
                .unwrap_or_else(|e| panic!("seed {seed}: round {round}: {}: {e}", link.display()));
            let file = target.file_name().unwrap().to_string_lossy().into_owned();
            read(&link);
            versions.push(v4_version(&file, name, round, seed));
        }
        // Each link's file is complete: the pair of the `.pem` link's version decodes with the
        // key of the `.keyid` link's when they agree.
        if versions[0] == versions[1] {
            let pair = format!(
                "{}{}",
                read(&store.join(format!("contoso.{name}.pem"))),
                read(&store.join(format!("contoso.{name}.keyid")))
            );
            assert_complete(
                &format!("{name}'s .pem and .keyid links"),
                &pair,
                seed,
                round,
            );
        }
        let keyid = versions.pop().unwrap();
        let pem = versions.pop().unwrap();
        link_versions.insert(name, (pem, keyid));
    }
    (luma_versions, link_versions)
}

/// 3.x: every link names a complete certificate with its key.
fn check_links_v3(bed: &Bed, round: u64) -> BTreeMap<&'static str, String> {
    let store = bed.store();
    let seed = bed.seed;
    let mut versions = BTreeMap::new();
    for name in CERTS {
        let link = store.join(format!("contoso.{name}"));
        let text = std::fs::read_to_string(&link)
            .unwrap_or_else(|e| panic!("seed {seed}: round {round}: {}: {e}", link.display()));
        assert_complete(&link.display().to_string(), &text, seed, round);
        versions.insert(name, linked_version(&link, name));
    }
    let custom = store.join(CUSTOM_LINK);
    let text = std::fs::read_to_string(&custom)
        .unwrap_or_else(|e| panic!("seed {seed}: round {round}: {}: {e}", custom.display()));
    assert_complete(&custom.display().to_string(), &text, seed, round);
    versions.insert(CUSTOM_LINK, linked_version(&custom, "web"));
    let live = store.join("contoso.api.live");
    let read = |file: &str| {
        std::fs::read_to_string(live.join(file)).unwrap_or_else(|e| {
            panic!("seed {seed}: round {round}: {}/{file}: {e}", live.display())
        })
    };
    let bundle = format!("{}{}", read("fullchain.pem"), read("privkey.pem"));
    assert_complete(&live.display().to_string(), &bundle, seed, round);
    assert_eq!(
        read("cert.pem").trim(),
        read("fullchain.pem")
            .split_inclusive("-----END CERTIFICATE-----")
            .next()
            .unwrap()
            .trim(),
        "seed {seed}: round {round}: cert.pem is the leaf of fullchain.pem"
    );
    let pfx = std::fs::read(live.join("cert.pfx")).unwrap();
    let pfx_b64 = base64_encode(&pfx);
    if let Err(e) = akvvm_cert::certificate::decode_secret(Some(PFX), &pfx_b64) {
        panic!("seed {seed}: round {round}: cert.pfx: [{}] {e}", e.code());
    }
    versions
}

/// Standard base64 (the PFX secret's encoding), without a dependency for it.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The state file loads without a problem.
fn check_state(bed: &Bed, round: u64) {
    let path = bed.h.state_dir().join("state.json");
    let (_, problem) = akvvm::sync::state::StateFile::load_or_recover(&path);
    if let Some(problem) = problem {
        panic!(
            "seed {}: round {round}: the state file does not load: [{}] {problem}",
            bed.seed,
            problem.code()
        );
    }
}

fn debris(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let e = e.unwrap();
        e.file_name()
            .to_string_lossy()
            .starts_with(akvvm_cert::store::TEMP_PREFIX)
            || (e.file_type().unwrap().is_dir() && e.path() != dir && debris(&e.path()))
    })
}

async fn crash_rounds(kills: u64, layout: Layout) {
    let seed = std::env::var("AKVVM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!(
        "crash safety ({layout:?}): seed {seed} (replay with AKVVM_CRASH_SEED={seed}), {kills} kills"
    );
    let mut rng = Rng(seed);
    let bed = Bed::new(seed, layout).await;
    let h = &bed.h;
    // An uninterrupted run installs the first versions and gives the length of a run.
    let mut full = bed.complete(0);
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut round = 0;
    while tally.kills < kills {
        round += 1;
        let before = check_links(&bed, round);
        let new: BTreeMap<&str, String> = CERTS
            .iter()
            .map(|name| {
                let version = h
                    .emulator
                    .rotate_certificate("contoso", name)
                    .unwrap()
                    .version;
                (*name, version)
            })
            .collect();

        // A fraction of a run's length from 35% to 100%: the first third is the process
        // starting and asking for a token, where nothing is written.
        let fraction = 350 + rng.below(650);
        let delay = full * u32::try_from(fraction).unwrap() / 1000;
        let mut child = bed.sync_once().stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        let exited = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        if exited {
            tally.exited_before_kill += 1;
        } else {
            tally.kills += 1;
        }

        // After the kill: complete certificates behind every link, a readable state file.
        let after = check_links(&bed, round);
        check_state(&bed, round);
        if let Some(v) = after.get(CUSTOM_LINK) {
            assert!(
                *v == before["web"] || *v == new["web"],
                "seed {seed}: round {round}: {CUSTOM_LINK} links to {v}, neither the previous nor the new version"
            );
        }
        if layout == Layout::V4 {
            for (name, (pem, keyid)) in check_links_v4(&bed, round).1 {
                for v in [&pem, &keyid] {
                    assert!(
                        *v == before[name] || *v == new[name],
                        "seed {seed}: round {round}: a link of {name} is on {v}, neither the previous nor the new version"
                    );
                }
            }
        }
        let mut switched = 0;
        let mut pending_switched: Vec<&str> = Vec::new();
        for name in CERTS {
            let v = &after[name];
            assert!(
                *v == before[name] || *v == new[name],
                "seed {seed}: round {round}: {name} links to {v}, neither the previous nor the new version"
            );
            if *v == new[name] {
                switched += 1;
                if bed.hook_pending(name, &new[name]) {
                    pending_switched.push(name);
                }
            }
        }
        if !exited {
            if debris(&bed.store()) {
                tally.with_debris += 1;
            }
            let runs = bed.hook_runs();
            let hooks_done = CERTS
                .iter()
                .all(|n| runs.contains_key(&((*n).to_owned(), new[n].clone())))
                && pending_switched.is_empty();
            match switched {
                0 => tally.before_any_switch += 1,
                1 => tally.between_certificates += 1,
                _ if hooks_done => tally.after_everything += 1,
                _ => tally.after_switch_before_hook_done += 1,
            }
        }

        // A restart completes the rotation and runs each hook once.
        let took = bed.complete(round);
        // The length of a run drifts (the hook log grows, the machine is busy): follow it.
        full = (full * 3 + took) / 4;
        let restarted = check_links(&bed, round);
        if let Some(v) = restarted.get(CUSTOM_LINK) {
            assert_eq!(
                *v, new["web"],
                "seed {seed}: round {round}: the restart left {CUSTOM_LINK} behind the stable link"
            );
        }
        if layout == Layout::V4 {
            for (name, (pem, keyid)) in check_links_v4(&bed, round).1 {
                assert!(
                    pem == new[name] && keyid == new[name],
                    "seed {seed}: round {round}: after the restart {name}'s links are on {pem} and {keyid}, not {}",
                    new[name]
                );
            }
        }
        let runs = bed.hook_runs();
        for name in CERTS {
            assert_eq!(
                restarted[name], new[name],
                "seed {seed}: round {round}: the restart did not complete {name}'s rotation"
            );
            let count = runs
                .get(&(name.to_owned(), new[name].clone()))
                .copied()
                .unwrap_or(0);
            let may_rerun = pending_switched.contains(&name);
            if count == 2 && may_rerun {
                tally.hook_reruns += 1;
            } else {
                assert_eq!(
                    count, 1,
                    "seed {seed}: round {round}: {name}'s hook ran {count} times for version {} \
                     (pending with its link switched at the kill: {may_rerun}); {tally:?}",
                    new[name]
                );
            }
        }
        assert!(
            !debris(&bed.store()),
            "seed {seed}: round {round}: the restart left temp debris in the store"
        );
    }
    eprintln!(
        "crash safety ({layout:?}): seed {seed}: {} kills in {round} rounds, {:.1} s: {tally:?}",
        tally.kills,
        started.elapsed().as_secs_f64()
    );
    assert!(
        tally.before_any_switch > 0
            && tally.after_switch_before_hook_done + tally.between_certificates > 0,
        "seed {seed}: the kills did not land both before and during installs: {tally:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_installs_and_rotations() {
    let kills = std::env::var("AKVVM_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_KILLS);
    crash_rounds(kills, Layout::V3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_installs_and_rotations_in_the_4x_layout() {
    let kills = std::env::var("AKVVM_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_KILLS_V4);
    crash_rounds(kills, Layout::V4).await;
}

/// The longer run documented in docs/security.md: `cargo test -p akvvm-cli --test it
/// crash_safety -- --ignored`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "the long run: thousands of kills, minutes"]
async fn sigkill_thousands_of_times() {
    crash_rounds(LONG_KILLS, Layout::V3).await;
    crash_rounds(LONG_KILLS, Layout::V4).await;
}

/// First installs per round of [`sigkill_during_first_installs`].
const FIRST_INSTALLS: usize = 8;
/// Kills of [`sigkill_during_first_installs`] in CI.
const FIRST_INSTALL_KILLS: u64 = 60;

/// A first sync (fresh store and state each round, [`FIRST_INSTALLS`] certificates, one with a
/// custom link) killed with SIGKILL at random moments. First installs are written without fsyncs
/// and made durable per batch (docs/store.md, "First installs"): after the kill every link there
/// is must resolve to a complete certificate, the state file must load, and the restart must
/// install every certificate and leave no batch marker on the store. (A SIGKILL keeps the page
/// cache; what a power loss could leave is checked at the store's level,
/// `akvvm_cert::store::tests::open_repairs_what_a_power_loss_in_the_middle_of_a_batch_could_leave`.)
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_first_installs() {
    let seed = std::env::var("AKVVM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("first installs: seed {seed} (replay with AKVVM_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let h = Harness::start().await;
    h.vault("contoso");
    let names: Vec<String> = (0..FIRST_INSTALLS).map(|i| format!("c{i}")).collect();
    let mut observed = Vec::new();
    for (i, name) in names.iter().enumerate() {
        h.certificate("contoso", name, "EC", PEM);
        observed.push(if i == 0 {
            json!({"url": Harness::url("contoso", name), "customSymbolicLinkName": "first.pem"})
        } else {
            json!(Harness::url("contoso", name))
        });
    }
    let mut json = h.settings_json(&["contoso"], observed);
    json["akvvm"]["fullCheckIntervalInS"] = json!(0);
    let settings = h.settings_file(&json);
    let bed = Bed {
        layout: Layout::V3,
        settings,
        hook_log: h.dir.path().join("hook.log"),
        seed,
        h,
    };
    let store = bed.store();
    // The batch marker is a user extended attribute: where there are none, its check below would
    // pass for nothing.
    let xattrs = akvvm_cert::machine::require_user_xattrs(
        "sigkill_during_first_installs: the batch marker check",
        bed.h.dir.path(),
    );
    let fresh = || {
        for dir in [bed.store(), bed.h.state_dir()] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).unwrap();
            }
        }
    };
    fresh();
    let mut full = bed.complete(0);
    let (mut kills, mut partial, mut round) = (0, 0, 0);
    while kills < FIRST_INSTALL_KILLS {
        round += 1;
        fresh();
        let fraction = 350 + rng.below(650);
        let delay = full * u32::try_from(fraction).unwrap() / 1000;
        let mut child = bed.sync_once().stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            kills += 1;
        }
        let _ = child.kill();
        let _ = child.wait();

        let mut linked = 0;
        for name in names
            .iter()
            .map(|n| format!("contoso.{n}"))
            .chain(["first.pem".into()])
        {
            let link = store.join(&name);
            if std::fs::symlink_metadata(&link).is_err() {
                continue;
            }
            let text = std::fs::read_to_string(&link)
                .unwrap_or_else(|e| panic!("seed {seed}: round {round}: {name}: {e}"));
            assert_complete(&name, &text, seed, round);
            linked += 1;
        }
        if linked > 0 && linked < FIRST_INSTALLS + 1 {
            partial += 1;
        }
        check_state(&bed, round);

        let took = bed.complete(round);
        full = (full * 3 + took) / 4;
        for name in names
            .iter()
            .map(|n| format!("contoso.{n}"))
            .chain(["first.pem".into()])
        {
            let text = std::fs::read_to_string(store.join(&name)).unwrap_or_else(|e| {
                panic!("seed {seed}: round {round}: {name} after the restart: {e}")
            });
            assert_complete(&name, &text, seed, round);
        }
        let mut marker = [0u8; 8];
        let read = rustix::fs::getxattr(&store, akvvm_cert::store::UNSYNCED_XATTR, &mut marker[..]);
        assert!(
            !xattrs || read == Err(rustix::io::Errno::NODATA),
            "seed {seed}: round {round}: a completed sync left its batch marker on the store \
             ({read:?})"
        );
        assert!(!debris(&store), "seed {seed}: round {round}: temp debris");
    }
    eprintln!(
        "first installs: seed {seed}: {kills} kills in {round} rounds, {partial} with some certificates linked and others not"
    );
    assert!(
        partial > 0,
        "seed {seed}: no kill landed among the installs"
    );
}
