//! The processes a benchmark measures from outside: `akvvm-emulator serve` (started with a seed
//! file on free loopback ports, driven through its admin API, its CPU and memory read from
//! `/proc`), and one agent run (`akvvm sync --once`) measured by `wait4`: wall time, user and
//! system CPU, peak RSS. `wait4` is called by a few lines of Python (`os.wait4`), since the
//! workspace forbids `unsafe` and std does not expose a child's `rusage`; the Python start-up is
//! outside the measured interval.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`: 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// Where the release binaries are: beside this one (`target/release/`), or `--bin-dir`.
#[derive(Clone)]
pub struct Binaries {
    pub emulator: PathBuf,
    pub agent: PathBuf,
    pub python: String,
}

impl Binaries {
    pub fn in_dir(dir: &Path, python: String) -> anyhow::Result<Binaries> {
        let emulator = dir.join("akvvm-emulator");
        let agent = dir.join("akvvm");
        for bin in [&emulator, &agent] {
            if !bin.exists() {
                bail!(
                    "{} is missing: build it with `cargo build --release -p akvvm-emulator -p akvvm-cli` (or give --bin-dir)",
                    bin.display()
                );
            }
        }
        Ok(Binaries {
            emulator,
            agent,
            python,
        })
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `akvvm-emulator serve` in its own process; killed when dropped.
pub struct EmulatorProcess {
    child: Child,
    pub https_port: u16,
    pub imds_port: u16,
    pub ca_path: PathBuf,
    admin: reqwest::Client,
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The emulator's request statistics (`GET /_emulator/stats`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub by_scope: BTreeMap<String, ScopeStats>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeStats {
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
}

impl Stats {
    /// Requests to vaults (every scope but `imds` and `entra`), and by status.
    pub fn vault_requests(&self) -> (u64, BTreeMap<String, u64>) {
        let mut total = 0;
        let mut by_status = BTreeMap::new();
        for (scope, s) in &self.by_scope {
            if scope == "imds" || scope == "entra" {
                continue;
            }
            total += s.total;
            for (status, n) in &s.by_status {
                *by_status.entry(status.clone()).or_insert(0) += n;
            }
        }
        (total, by_status)
    }

    /// Token requests (IMDS and Entra ID).
    pub fn identity_requests(&self) -> u64 {
        ["imds", "entra"]
            .iter()
            .filter_map(|s| self.by_scope.get(*s))
            .map(|s| s.total)
            .sum()
    }
}

impl EmulatorProcess {
    /// Starts `serve` with `seed` (written under `dir`) and waits until its admin API answers.
    pub async fn start(bins: &Binaries, dir: &Path, seed: &Value) -> anyhow::Result<Self> {
        let seed_path = dir.join("seed.json");
        std::fs::write(&seed_path, serde_json::to_vec(seed)?)
            .with_context(|| format!("failed to write {}", seed_path.display()))?;
        let https_port = free_port()?;
        let mut imds_port = free_port()?;
        while imds_port == https_port {
            imds_port = free_port()?;
        }
        let data_dir = dir.join("emulator");
        let log = std::fs::File::create(dir.join("emulator.log"))?;
        let child = Command::new(&bins.emulator)
            .arg("serve")
            .args(["--https", &format!("127.0.0.1:{https_port}")])
            .args(["--imds", &format!("127.0.0.1:{imds_port}")])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--seed")
            .arg(&seed_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("failed to start {}", bins.emulator.display()))?;
        let ca_path = data_dir.join("ca.pem");
        let started = Instant::now();
        let mut process = EmulatorProcess {
            child,
            https_port,
            imds_port,
            ca_path: ca_path.clone(),
            admin: reqwest::Client::new(),
        };
        loop {
            if let Some(status) = process.child.try_wait()? {
                bail!(
                    "akvvm-emulator serve exited ({status}) before it was ready; see {}",
                    dir.join("emulator.log").display()
                );
            }
            if ca_path.exists() {
                let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_path)?)?;
                let client = reqwest::Client::builder()
                    .tls_certs_only([ca])
                    .resolve("localhost", ([127, 0, 0, 1], https_port).into())
                    .no_proxy()
                    .build()?;
                let health = client
                    .get(format!("https://localhost:{https_port}/_emulator/health"))
                    .send()
                    .await;
                if health.is_ok_and(|r| r.status().is_success()) {
                    process.admin = client;
                    return Ok(process);
                }
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!("akvvm-emulator serve did not answer within 300 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn imds_url(&self) -> String {
        format!("http://127.0.0.1:{}/metadata/identity", self.imds_port)
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("https://localhost:{}/_emulator{path}", self.https_port);
        let mut request = self.admin.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request
            .send()
            .await
            .with_context(|| format!("admin {method} {path} failed"))?;
        let status = answer.status();
        let text = answer.text().await?;
        if !status.is_success() {
            bail!("admin {method} {path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A new version of a secret.
    pub async fn set_secret(&self, vault: &str, name: &str, value: &str) -> anyhow::Result<()> {
        self.admin(
            reqwest::Method::PUT,
            &format!("/vaults/{vault}/secrets/{name}"),
            Some(json!({"value": value, "contentType": crate::pool::PFX})),
        )
        .await
        .map(drop)
    }

    /// Replaces the faults of a scope.
    pub async fn set_faults(&self, scope: &str, faults: Value) -> anyhow::Result<()> {
        self.admin(
            reqwest::Method::PUT,
            &format!("/faults/{scope}"),
            Some(faults),
        )
        .await
        .map(drop)
    }

    pub async fn stats(&self) -> anyhow::Result<Stats> {
        let value = self.admin(reqwest::Method::GET, "/stats", None).await?;
        serde_json::from_value(value).context("the emulator's /_emulator/stats answer")
    }

    pub async fn reset_stats(&self) -> anyhow::Result<()> {
        self.admin(reqwest::Method::DELETE, "/stats", None)
            .await
            .map(drop)
    }

    /// The emulator's CPU time so far (user + system), seconds.
    pub fn cpu_seconds(&self) -> f64 {
        proc_cpu_seconds(self.pid())
    }

    /// The emulator's peak resident memory so far, MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        proc_peak_rss_mib(self.pid())
    }
}

/// User + system CPU seconds of a live process, from `/proc/<pid>/stat`.
pub fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15: indexes 11 and 12 after the name.
    (ticks(11) + ticks(12)) / CLOCK_TICKS
}

/// `VmHWM` of a live process, MiB.
pub fn proc_peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// What `wait4` says about one finished process.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Usage {
    pub wall_s: f64,
    pub user_s: f64,
    pub sys_s: f64,
    /// `ru_maxrss`, KiB.
    pub maxrss_kb: f64,
    /// The exit status (`waitstatus_to_exitcode`: negative for a signal).
    pub exit: i32,
}

/// Forks, execs the command, `wait4`s it; the wall interval is fork to reaping.
const WAIT4: &str = r#"
import json, os, sys, time
out, argv = sys.argv[1], sys.argv[2:]
start = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - start
with open(out, "w") as f:
    json.dump({"wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
               "maxrss_kb": ru.ru_maxrss, "exit": os.waitstatus_to_exitcode(status)}, f)
"#;

/// Runs `program args` to completion under `wait4`, its output to `log`; env added to ours.
pub fn run_measured(
    python: &str,
    program: &Path,
    args: &[&str],
    env: &[(&str, String)],
    log: &Path,
) -> anyhow::Result<Usage> {
    let out = log.with_extension("usage.json");
    let log_file = std::fs::File::create(log)?;
    let status = Command::new(python)
        .arg("-c")
        .arg(WAIT4)
        .arg(&out)
        .arg(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .status()
        .with_context(|| format!("failed to run {python} (needed for wait4)"))?;
    if !status.success() {
        bail!("the wait4 runner failed ({status}); see {}", log.display());
    }
    let text = std::fs::read_to_string(&out)?;
    serde_json::from_str(&text).context("the wait4 runner's answer")
}

/// Every entry under a directory: (inode, size, mtime ns, is a regular file).
pub type Snapshot = BTreeMap<PathBuf, (u64, u64, i128, bool)>;

pub fn snapshot(dir: &Path) -> Snapshot {
    use std::os::unix::fs::MetadataExt;
    let mut out = Snapshot::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                pending.push(path.clone());
            }
            let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
            out.insert(path, (meta.ino(), meta.size(), mtime, meta.is_file()));
        }
    }
    out
}

/// Entries added or changed between two snapshots, and the bytes of the regular files among them.
pub fn written(before: &Snapshot, after: &Snapshot) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for (path, entry) in after {
        if before.get(path) != Some(entry) && !path.is_dir() {
            files += 1;
            if entry.3 {
                bytes += entry.1;
            }
        }
    }
    (files, bytes)
}
