//! Sync-cycle cost (harness = false): `cargo bench -p akvvm --bench sync_cycle`.
//!
//! Runs the sync engine against the local vault in this process, over real HTTPS on loopback,
//! for N observed certificates spread over a few vaults (100 per vault). For each N it prints:
//!
//! - the first cycle: every certificate new (one GET, decode of the Key Vault PFX, install);
//! - unchanged cycles: one GET per certificate, nothing decoded, no file of the store written
//!   (checked through the local vault's request counters and a snapshot of the store);
//! - a cycle after 10% of the certificates got a new version.
//!
//! Figures: wall time per cycle, the mean per certificate, requests the local vault saw (vault
//! GETs and identity requests), and the process's peak and current resident memory (`VmHWM`,
//! `VmRSS`; the peak is reset before each N through `/proc/self/clear_refs`). The local vault runs
//! in the same process, so memory includes it. Then, when the release binaries are built
//! (`cargo build --release -p akvvm-emulator -p akvvm-cli`), the agent alone: `akvvm sync --once`
//! under `/usr/bin/time -v` against `akvvm-emulator serve` in its own process.
//!
//! Nothing here asserts a timing; the bench stops with a message when the engine does something
//! other than the expected work. docs/benchmarks.md has the figures and what they mean.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use akvvm::cert::certificate::CertificateBundle;
use akvvm::settings::{DEFAULT_CONCURRENCY_PER_VAULT, Settings};
use akvvm::sync::{CertOutcome, CycleReport, Engine, EngineOptions};
use akvvm_emulator::certs::CertificateImport;
use akvvm_emulator::{Emulator, EmulatorConfig, IdentitySpec, RunningEmulator};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Certificates per vault.
const PER_VAULT: usize = 100;
/// The sizes measured.
const SIZES: [usize; 3] = [10, 100, 500];
/// Unchanged cycles per size (the table shows the median and the fastest).
const UNCHANGED_RUNS: usize = 3;
/// Distinct RSA 2048 certificates imported under the observed names (keys are generated once).
const POOL: usize = 4;
const PFX: &str = "application/x-pkcs12";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    println!(
        "sync_cycle: RSA 2048 certificates as Key Vault PFX secrets, {PER_VAULT} per vault, \
         concurrencyPerVault {DEFAULT_CONCURRENCY_PER_VAULT}, local vault in-process over HTTPS"
    );
    println!(
        "{:>4} {:>6}  {:<17} {:>9} {:>9} {:>8} {:>5} {:>5} {:>9} {:>7} {:>8} {:>8}",
        "N",
        "vaults",
        "cycle",
        "wall",
        "per cert",
        "vault rq",
        "(401)",
        "id rq",
        "installed",
        "written",
        "VmHWM",
        "VmRSS"
    );
    let mut pool = Vec::new();
    for n in SIZES {
        pool = measure_size(n).await;
    }
    push_latency(SIZES[SIZES.len() - 1]).await;
    agent_alone(SIZES[SIZES.len() - 1], &pool);
}

/// Rotations pushed through the Event Grid webhook to a running daemon that polls hourly.
const PUSHES: usize = 10;

/// From an Event Grid delivery to the new version behind the stable link, with `n` certificates
/// observed: the daemon checks only the named one (one GET), so the time does not grow with `n`.
async fn push_latency(n: usize) {
    use std::sync::Arc;

    let setup = setup(n).await;
    let engine = Arc::new(engine_with(&setup, |json| {
        json["akvvm"]["webhook"] = json!({ "address": "127.0.0.1:0", "path": "/eventgrid" });
    }));
    let report = engine.cycle(|_| true, &CancellationToken::new()).await;
    expect_outcomes(&report, n, "push: first cycle");
    let cancel = CancellationToken::new();
    setup.emulator.reset_counters();
    let (address, push) = akvvm_testkit::harness::start_push(engine.clone(), &cancel).await;
    // The daemon's own first cycle (nothing new) before measuring.
    let gets = |emulator: &RunningEmulator| -> u64 {
        emulator
            .counters()
            .iter()
            .filter(|c| c.method == "GET" && c.path.starts_with("/secrets/"))
            .map(|c| c.count)
            .sum()
    };
    let waiting = Instant::now();
    while gets(&setup.emulator) < n as u64 {
        if waiting.elapsed() > Duration::from_secs(60) {
            panic!("push: the daemon's first cycle did not happen");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let client = reqwest::Client::new();
    let store = setup.dir.path().join("store");
    let mut walls = Vec::new();
    for i in 0..PUSHES {
        let (vault, name) = &setup.observed[(i * 37 + 11) % n];
        let link = store.join(format!("{vault}.{name}"));
        let before = std::fs::read_link(&link).expect("installed");
        import(&setup.emulator, vault, name, &setup.pool[(i + 1) % POOL]);
        setup.emulator.reset_counters();
        let event = json!([{
            "id": format!("push-{i}"), "subject": name,
            "eventType": "Microsoft.KeyVault.CertificateNewVersionCreated",
            "data": {"VaultName": vault, "ObjectName": name, "ObjectType": "Certificate"},
            "dataVersion": "1", "metadataVersion": "1", "eventTime": "2026-11-22T10:00:00Z"
        }]);
        let started = Instant::now();
        let answer = client
            .post(format!("http://{address}/eventgrid"))
            .json(&event)
            .send()
            .await
            .expect("the webhook answers");
        assert!(answer.status().is_success(), "push: {}", answer.status());
        while std::fs::read_link(&link).ok().as_ref() == Some(&before) {
            if started.elapsed() > Duration::from_secs(60) {
                panic!("push: {vault}/{name} was not installed within a minute");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        walls.push(started.elapsed());
        let asked = gets(&setup.emulator);
        if asked != 1 {
            panic!("push: {asked} secret GETs for one pushed certificate, expected 1");
        }
    }
    cancel.cancel();
    let _ = push.await;
    walls.sort();
    println!();
    println!(
        "push: Event Grid delivery -> new version behind the stable link, N = {n} observed, \
         daemon polling hourly, {PUSHES} rotations (one GET each, checked)"
    );
    println!(
        "  fastest {:.1} ms, median {:.1} ms, slowest {:.1} ms",
        ms(walls[0]),
        ms(walls[PUSHES / 2]),
        ms(walls[PUSHES - 1])
    );
    setup.emulator.shutdown();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One row of the table.
struct Row<'a> {
    n: usize,
    vaults: usize,
    cycle: &'a str,
    wall: Duration,
    /// (all requests to the vaults, those answered 401 with the challenge)
    vault_requests: (u64, u64),
    identity_requests: u64,
    installed: usize,
    written: usize,
}

fn print_row(row: &Row<'_>) {
    let memory = memory();
    println!(
        "{:>4} {:>6}  {:<17} {:>9} {:>9} {:>8} {:>5} {:>5} {:>9} {:>7} {:>8} {:>8}",
        row.n,
        row.vaults,
        row.cycle,
        format!("{:.1}ms", row.wall.as_secs_f64() * 1e3),
        format!("{:.2}ms", row.wall.as_secs_f64() * 1e3 / row.n as f64),
        row.vault_requests.0,
        row.vault_requests.1,
        row.identity_requests,
        row.installed,
        row.written,
        memory.peak,
        memory.current,
    );
}

struct Setup {
    emulator: RunningEmulator,
    dir: tempfile::TempDir,
    pool: Vec<String>,
    /// (vault, certificate name) of every observed certificate, in settings order.
    observed: Vec<(String, String)>,
}

/// Measures the three kinds of cycle for `n` certificates; returns the pool of PEM bundles.
async fn measure_size(n: usize) -> Vec<String> {
    let setup = setup(n).await;
    let vault_names: Vec<String> = {
        let mut v: Vec<String> = setup.observed.iter().map(|(v, _)| v.clone()).collect();
        v.dedup();
        v
    };
    let engine = engine(&setup);
    let store = setup.dir.path().join("store");
    reset_peak();
    let row = |cycle, wall, counts: ((u64, u64), u64), installed, written| Row {
        n,
        vaults: vault_names.len(),
        cycle,
        wall,
        vault_requests: counts.0,
        identity_requests: counts.1,
        installed,
        written,
    };

    // (a) Everything new.
    setup.emulator.reset_counters();
    let (report, wall) = timed_cycle(&engine).await;
    let installed = expect_outcomes(&report, n, "first cycle");
    let counts = requests(&setup.emulator, &vault_names);
    expect_gets(&setup.emulator, &setup.observed, 1, "first cycle");
    let written = snapshot(&store).len();
    print_row(&row("first (all new)", wall, counts, installed, written));
    let state_file = setup
        .dir
        .path()
        .join("state")
        .join(akvvm::sync::STATE_FILE_NAME);
    let state_size = std::fs::metadata(&state_file).map_or(0, |m| m.len());

    // (b) Nothing new: one GET each, nothing parsed, nothing written.
    let mut walls = Vec::new();
    let mut last_counts = ((0, 0), 0);
    for _ in 0..UNCHANGED_RUNS {
        let before = snapshot(&store);
        setup.emulator.reset_counters();
        let (report, wall) = timed_cycle(&engine).await;
        let installed = expect_outcomes(&report, 0, "unchanged cycle");
        expect_gets(&setup.emulator, &setup.observed, 1, "unchanged cycle");
        let after = snapshot(&store);
        let written = changed(&before, &after);
        if installed != 0 || written != 0 {
            panic!("unchanged cycle installed {installed} and changed {written} store entries");
        }
        last_counts = requests(&setup.emulator, &vault_names);
        walls.push(wall);
    }
    walls.sort();
    print_row(&row(
        "unchanged median",
        walls[walls.len() / 2],
        last_counts,
        0,
        0,
    ));
    print_row(&row("unchanged fastest", walls[0], last_counts, 0, 0));

    // (c) 10% rotated: every tenth certificate gets a new version.
    let rotated: Vec<&(String, String)> = setup.observed.iter().step_by(10).collect();
    for (i, (vault, name)) in rotated.iter().enumerate() {
        import(&setup.emulator, vault, name, &setup.pool[(i + 1) % POOL]);
    }
    let before = snapshot(&store);
    setup.emulator.reset_counters();
    let (report, wall) = timed_cycle(&engine).await;
    let installed = expect_outcomes(&report, rotated.len(), "rotation cycle");
    expect_gets(&setup.emulator, &setup.observed, 1, "rotation cycle");
    let counts = requests(&setup.emulator, &vault_names);
    let written = changed(&before, &snapshot(&store));
    print_row(&row("10% rotated", wall, counts, installed, written));
    println!(
        "{n:>4}        (state file {:.1} KiB, saved at most once a second during a cycle and at its end)",
        state_size as f64 / 1024.0
    );

    drop(engine);
    setup.emulator.shutdown();
    setup.pool
}

async fn setup(n: usize) -> Setup {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("the local vault starts");
    emulator
        .set_system_identity(IdentitySpec::default())
        .expect("system identity");
    emulator.add_vault("pool").expect("pool vault");
    let pool = (0..POOL)
        .map(|i| pool_pem(&emulator, i))
        .collect::<Vec<_>>();
    let mut observed = Vec::with_capacity(n);
    for i in 0..n {
        let vault = format!("bench{}", i / PER_VAULT);
        if i % PER_VAULT == 0 {
            emulator.add_vault(&vault).expect("create vault");
            emulator
                .assign_roles(&vault, "system", &["Key Vault Secrets User"])
                .expect("role assignment");
        }
        let name = format!("cert{i:04}");
        import(&emulator, &vault, &name, &pool[i % POOL]);
        observed.push((vault, name));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ca.pem"), emulator.ca_pem()).expect("write the CA");
    Setup {
        emulator,
        dir,
        pool,
        observed,
    }
}

/// A fresh self-signed RSA 2048 certificate from the local vault, as a PEM bundle.
fn pool_pem(emulator: &RunningEmulator, i: usize) -> String {
    let name = format!("pool{i}");
    let policy =
        akvvm_emulator::certs::self_signed_policy("RSA", PFX, &format!("CN={name}.example.com"));
    emulator
        .create_certificate("pool", &name, &policy)
        .expect("create a pool certificate");
    let (key, cer) = emulator.read(|model| {
        let version = model.vaults["pool"].certificates[&name]
            .versions
            .last()
            .expect("a version")
            .clone();
        (version.key_pkcs8, version.cer)
    });
    let bundle = CertificateBundle::from_parts(&key, &[cer]).expect("the pool certificate loads");
    bundle.to_pem().to_string()
}

/// Adds a version of `name` in `vault`: `pem` stored as a Key Vault PFX secret.
fn import(emulator: &RunningEmulator, vault: &str, name: &str, pem: &str) {
    let import = CertificateImport {
        pem: Some(pem.to_owned()),
        content_type: Some(PFX.to_owned()),
        ..Default::default()
    };
    emulator
        .import_certificate(vault, name, &import)
        .expect("import a certificate");
}

/// Where the agent finds the local vault.
struct Endpoints {
    https_port: u16,
    imds_url: String,
    authority_host: String,
}

/// Settings observing `observed` ((vault, name) pairs), with the store, state directory and CA
/// under `dir`.
fn settings_json(endpoints: &Endpoints, dir: &Path, observed: &[(String, String)]) -> Value {
    let mut resolve = serde_json::Map::new();
    for (vault, _) in observed {
        resolve.insert(
            format!("{vault}.vault.azure.net"),
            json!(format!("127.0.0.1:{}", endpoints.https_port)),
        );
    }
    resolve.insert(
        "localhost".into(),
        json!(format!("127.0.0.1:{}", endpoints.https_port)),
    );
    let urls: Vec<Value> = observed
        .iter()
        .map(|(vault, name)| json!(format!("https://{vault}.vault.azure.net/secrets/{name}")))
        .collect();
    json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": "3600",
            "certificateStoreLocation": dir.join("store").display().to_string(),
            "observedCertificates": urls,
        },
        "authenticationSettings": {"msiEndpoint": endpoints.imds_url},
        "akvvm": {
            "stateDirectory": dir.join("state").display().to_string(),
            "caCertificates": [dir.join("ca.pem").display().to_string()],
            "resolve": resolve,
            "authorityHost": endpoints.authority_host,
        }
    })
}

fn engine(setup: &Setup) -> Engine {
    engine_with(setup, |_| {})
}

/// An engine on the bench's settings, changed by `change` first.
fn engine_with(setup: &Setup, change: impl FnOnce(&mut Value)) -> Engine {
    let endpoints = Endpoints {
        https_port: setup.emulator.https_addr().port(),
        imds_url: setup.emulator.imds_url(),
        authority_host: setup.emulator.authority_host(),
    };
    let mut json = settings_json(&endpoints, setup.dir.path(), &setup.observed);
    change(&mut json);
    let settings = match Settings::from_json_value(&json) {
        Ok((settings, _)) => settings,
        Err(diagnostics) => panic!("the bench's settings are invalid: {diagnostics:?}"),
    };
    let options = EngineOptions::for_settings(&settings);
    Engine::new(settings, options).expect("the engine starts")
}

async fn timed_cycle(engine: &Engine) -> (CycleReport, Duration) {
    let start = Instant::now();
    let report = engine.cycle(|_| true, &CancellationToken::new()).await;
    (report, start.elapsed())
}

/// Checks that every certificate is in place, `installed` of them newly; returns `installed`.
fn expect_outcomes(report: &CycleReport, installed: usize, cycle: &str) -> usize {
    let mut new = 0;
    for cert in &report.certificates {
        match &cert.outcome {
            CertOutcome::Installed(_) => new += 1,
            CertOutcome::Unchanged(_) => {}
            CertOutcome::Failed { code, message, .. } => {
                panic!("{cycle}: {} failed: [{code}] {message}", cert.url)
            }
        }
    }
    if new != installed {
        panic!("{cycle}: expected {installed} installs, the engine made {new}");
    }
    new
}

/// Checks that the local vault saw exactly `per_cert` GETs of each observed secret.
fn expect_gets(
    emulator: &RunningEmulator,
    observed: &[(String, String)],
    per_cert: u64,
    cycle: &str,
) {
    let mut gets: BTreeMap<(String, String), u64> = BTreeMap::new();
    for c in emulator.counters() {
        if c.method == "GET" && c.status == 200 {
            let path = c.path.trim_end_matches('/').to_owned();
            *gets.entry((c.scope, path)).or_default() += c.count;
        }
    }
    for (vault, name) in observed {
        let path = format!("/secrets/{name}");
        let count = gets
            .get(&(vault.clone(), path.clone()))
            .copied()
            .unwrap_or(0);
        if count != per_cert {
            panic!("{cycle}: {vault}{path} was fetched {count} times, expected {per_cert}");
        }
    }
}

/// ((requests to the vaults, of which 401), requests to IMDS and Entra ID) since the counters
/// were reset.
fn requests(emulator: &RunningEmulator, vaults: &[String]) -> ((u64, u64), u64) {
    let mut vault = (0, 0);
    let mut identity = 0;
    for c in emulator.counters() {
        if vaults.contains(&c.scope) {
            vault.0 += c.count;
            if c.status == 401 {
                vault.1 += c.count;
            }
        } else if c.scope == "imds" || c.scope == "entra" {
            identity += c.count;
        }
    }
    (vault, identity)
}

/// Every entry of the store with (inode, size, mtime), links not followed.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, u64, i64, i64)> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the store") {
            let path = entry.expect("store entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("store entry metadata");
            if meta.is_dir() {
                pending.push(path.clone());
            }
            entries.insert(
                path,
                (meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec()),
            );
        }
    }
    entries
}

/// Entries added, removed or changed between two snapshots.
fn changed(
    before: &BTreeMap<PathBuf, (u64, u64, i64, i64)>,
    after: &BTreeMap<PathBuf, (u64, u64, i64, i64)>,
) -> usize {
    let removed = before.keys().filter(|k| !after.contains_key(*k)).count();
    let added_or_changed = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .count();
    removed + added_or_changed
}

struct Memory {
    peak: String,
    current: String,
}

/// `VmHWM` and `VmRSS` of this process, in MiB.
fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or_else(
                || "n/a".to_owned(),
                |kb| format!("{:.1}MiB", kb as f64 / 1024.0),
            )
    };
    Memory {
        peak: field("VmHWM:"),
        current: field("VmRSS:"),
    }
}

/// Resets `VmHWM` to the current RSS (Linux: writing 5 to `/proc/self/clear_refs`).
fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        println!("(cannot reset the peak RSS: {e}; VmHWM is the whole run's peak)");
    }
}

/// The agent alone: `akvvm sync --once` (first, then unchanged) under `/usr/bin/time -v` against
/// `akvvm-emulator serve` in its own process, both release binaries beside this bench's
/// directory. Skipped (with a message) when they are not built.
fn agent_alone(n: usize, pool: &[String]) {
    let release = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf));
    let Some(release) = release else {
        println!("agent alone: skipped (cannot locate the build directory)");
        return;
    };
    let emulator_bin = release.join("akvvm-emulator");
    let agent_bin = release.join("akvvm");
    let time_bin = Path::new("/usr/bin/time");
    if !emulator_bin.exists() || !agent_bin.exists() || !time_bin.exists() {
        println!(
            "agent alone: skipped (needs /usr/bin/time and `cargo build --release -p akvvm-emulator \
             -p akvvm-cli` in {})",
            release.display()
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let observed: Vec<(String, String)> = (0..n)
        .map(|i| (format!("bench{}", i / PER_VAULT), format!("cert{i:04}")))
        .collect();
    let mut vaults: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (i, (vault, name)) in observed.iter().enumerate() {
        vaults.entry(vault).or_default().push(json!({
            "name": name, "pem": pool[i % pool.len()], "contentType": PFX
        }));
    }
    let seed = json!({
        "identities": {"system": {}},
        "vaults": vaults.into_iter().map(|(vault, certificates)| json!({
            "name": vault,
            "roles": [{"principal": "system", "roles": ["Key Vault Secrets User"]}],
            "certificates": certificates,
        })).collect::<Vec<_>>(),
    });
    let seed_path = dir.path().join("seed.json");
    std::fs::write(&seed_path, serde_json::to_vec(&seed).expect("seed JSON")).expect("write seed");
    let (https_port, imds_port) = (free_port(), free_port());
    let data_dir = dir.path().join("emulator");
    let mut emulator = Command::new(&emulator_bin)
        .arg("serve")
        .args(["--https", &format!("127.0.0.1:{https_port}")])
        .args(["--imds", &format!("127.0.0.1:{imds_port}")])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--seed")
        .arg(&seed_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start akvvm-emulator serve");
    let ready = wait_for(Duration::from_secs(60), || {
        data_dir.join("ca.pem").exists()
            && std::net::TcpStream::connect(("127.0.0.1", https_port)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", imds_port)).is_ok()
    });
    if !ready {
        let _ = emulator.kill();
        let _ = emulator.wait();
        panic!("akvvm-emulator serve did not start listening within 60 s");
    }
    std::fs::copy(data_dir.join("ca.pem"), dir.path().join("ca.pem")).expect("copy the CA");
    let endpoints = Endpoints {
        https_port,
        imds_url: format!("http://127.0.0.1:{imds_port}/metadata/identity"),
        authority_host: format!("https://localhost:{https_port}"),
    };
    let settings_path = dir.path().join("settings.json");
    std::fs::write(
        &settings_path,
        serde_json::to_vec_pretty(&settings_json(&endpoints, dir.path(), &observed))
            .expect("settings JSON"),
    )
    .expect("write settings");

    println!();
    println!(
        "agent alone: `akvvm sync --once` under /usr/bin/time -v, N = {n}, local vault in its own process"
    );
    println!(
        "{:<17} {:>10} {:>9} {:>9} {:>11}",
        "cycle", "wall", "user", "system", "max RSS"
    );
    for cycle in ["first (all new)", "unchanged"] {
        let report = dir.path().join("time.txt");
        let status = Command::new(time_bin)
            .arg("-v")
            .arg("-o")
            .arg(&report)
            .arg(&agent_bin)
            .args(["sync", "--once", "--settings"])
            .arg(&settings_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run akvvm sync --once");
        if !status.success() {
            let _ = emulator.kill();
            let _ = emulator.wait();
            panic!("akvvm sync --once failed ({status}) in the {cycle} cycle");
        }
        let text = std::fs::read_to_string(&report).expect("read the time report");
        let field = |prefix: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .map_or_else(|| "n/a".to_owned(), |v| v.trim().to_owned())
        };
        let max_rss = field("Maximum resident set size (kbytes):")
            .parse::<f64>()
            .map_or_else(|_| "n/a".to_owned(), |kb| format!("{:.1}MiB", kb / 1024.0));
        println!(
            "{:<17} {:>10} {:>9} {:>9} {:>11}",
            cycle,
            field("Elapsed (wall clock) time (h:mm:ss or m:ss):"),
            format!("{}s", field("User time (seconds):")),
            format!("{}s", field("System time (seconds):")),
            max_rss,
        );
    }
    let emulator_status =
        std::fs::read_to_string(format!("/proc/{}/status", emulator.id())).unwrap_or_default();
    let emulator_peak = emulator_status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map_or("n/a", str::trim);
    println!("(the local vault process: VmHWM {emulator_peak})");
    let _ = emulator.kill();
    let _ = emulator.wait();
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn wait_for(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ready()
}
