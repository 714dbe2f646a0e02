//! The `sync` scenario: `akvvm sync --once` as its own process against `akvvm-emulator serve`
//! holding N certificates in 1 or more vaults: the initial sync, an unchanged cycle, and a cycle
//! after 1% of the certificates got a new version; beside it (`--python`), the same initial
//! sync and unchanged cycle done by a cron job on the official Python SDK
//! (`python/cron_sync.py`), with the ratios. And the `push` scenario: the daemon (`akvvm run`)
//! observing N certificates, rotations pushed through its Event Grid webhook.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::pool::Pool;
use crate::procs::{self, Binaries, EmulatorProcess};
use crate::report::Row;
use crate::setup::{self, Endpoints};

/// Where the Python cron job's interpreter and script are; `None` skips it.
pub struct PythonCron {
    pub venv_python: PathBuf,
    pub script: PathBuf,
}

/// One measured process run against the emulator: wait4 figures, the requests it made, what
/// it wrote under `dir`, and the emulator's CPU meanwhile.
async fn measure(
    row: &mut Row,
    emulator: &EmulatorProcess,
    dir: &Path,
    run: impl FnOnce() -> anyhow::Result<procs::Usage>,
) -> anyhow::Result<()> {
    emulator.reset_stats().await?;
    let before = procs::snapshot(dir);
    let vault_cpu = emulator.cpu_seconds();
    let usage = run()?;
    let vault_cpu = emulator.cpu_seconds() - vault_cpu;
    let (files, bytes) = procs::written(&before, &procs::snapshot(dir));
    let stats = emulator.stats().await?;
    let (requests, by_status) = stats.vault_requests();
    let n = row.n as f64;
    let cpu = usage.user_s + usage.sys_s;
    row.set("wall_s", usage.wall_s)
        .set("user_s", usage.user_s)
        .set("sys_s", usage.sys_s)
        .set("cpu_s", cpu)
        .set("cpu_per_cert_ms", cpu * 1e3 / n)
        .set("peak_rss_mib", usage.maxrss_kb / 1024.0)
        .set("exit", f64::from(usage.exit))
        .set("vault_requests", requests as f64)
        .set("requests_per_cert", requests as f64 / n)
        .set("identity_requests", stats.identity_requests() as f64)
        .set("files_written", files as f64)
        .set("bytes_written", bytes as f64)
        .set("vault_cpu_s", vault_cpu);
    if requests > 0 {
        row.set(
            "vault_cpu_per_request_us",
            vault_cpu * 1e6 / requests as f64,
        );
    }
    for (status, count) in by_status {
        row.set(&format!("status_{status}"), count as f64);
    }
    Ok(())
}

/// The agent's `sync --once` runs, then the Python cron job's, for one (N, vaults).
pub async fn run(
    bins: &Binaries,
    pool: &Pool,
    n: usize,
    vaults: usize,
    python: Option<&PythonCron>,
    syscalls: bool,
    work: &Path,
) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::Builder::new().prefix("sync-").tempdir_in(work)?;
    let observed = setup::observed(n, vaults);
    let emulator =
        EmulatorProcess::start(bins, dir.path(), &setup::seed(&observed, vaults, pool)).await?;
    let endpoints = Endpoints {
        https_port: emulator.https_port,
        imds_url: emulator.imds_url(),
        ca_path: emulator.ca_path.clone(),
    };
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir)?;
    let settings_path = dir.path().join("settings.json");
    let settings = setup::settings(&endpoints, &agent_dir, &observed, None, json!({}));
    std::fs::write(&settings_path, serde_json::to_vec_pretty(&settings)?)?;
    let settings_arg = settings_path.display().to_string();
    let sync_once = |log: &str| {
        procs::run_measured(
            &bins.python,
            &bins.agent,
            &["sync", "--once", "--settings", &settings_arg],
            &[("RUST_LOG", "warn".into())],
            &dir.path().join(log),
        )
    };
    // Key Vault's timestamps are whole seconds, so the agent trusts the `updated` it recorded
    // only once the vault's clock is 2 s past it (docs/agent.md, "The list check"); a sync
    // within 2 s of the secrets' creation is followed by one more GET each. A machine syncs
    // long after its vault's secrets were made: wait that out, so that the unchanged cycle
    // measures the steady state.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let mut rows = Vec::new();
    for label in ["initial", "unchanged"] {
        let mut row = Row::new("sync", n, vaults, label);
        measure(&mut row, &emulator, &agent_dir, || sync_once(label)).await?;
        check_exit(&row, dir.path(), label)?;
        rows.push(row);
    }
    if let Some(cron) = python {
        let python_dir = dir.path().join("python");
        std::fs::create_dir_all(python_dir.join("store"))?;
        let urls = dir.path().join("urls.txt");
        let lines: Vec<String> = observed
            .iter()
            .map(|(vault, name)| format!("https://{vault}.vault.azure.net/secrets/{name}\n"))
            .collect();
        std::fs::write(&urls, lines.concat())?;
        let store = python_dir.join("store").display().to_string();
        let urls_arg = urls.display().to_string();
        let script = cron.script.display().to_string();
        let env = [
            (
                "AKVVM_BENCH_HTTPS",
                format!("127.0.0.1:{}", emulator.https_port),
            ),
            (
                "AKVVM_BENCH_IMDS",
                format!("127.0.0.1:{}", emulator.imds_port),
            ),
            ("REQUESTS_CA_BUNDLE", emulator.ca_path.display().to_string()),
        ];
        for (label, agent_label) in [
            ("python initial", "initial"),
            ("python unchanged", "unchanged"),
        ] {
            let mut row = Row::new("sync", n, vaults, label);
            let log = format!("{}.log", label.replace(' ', "-"));
            measure(&mut row, &emulator, &python_dir, || {
                procs::run_measured(
                    &bins.python,
                    &cron.venv_python,
                    &[&script, "--store", &store, "--urls", &urls_arg],
                    &env,
                    &dir.path().join(&log),
                )
            })
            .await?;
            check_exit(&row, dir.path(), &log)?;
            if let Some(agent) = rows.iter().find(|r| r.label == agent_label) {
                for (figure, ratio) in [
                    ("cpu_s", "cpu_ratio_to_agent"),
                    ("wall_s", "wall_ratio_to_agent"),
                ] {
                    if let (Some(p), Some(a)) = (row.get(figure), agent.get(figure))
                        && a > 0.0
                    {
                        row.set(ratio, p / a);
                    }
                }
            }
            rows.push(row);
        }
    }
    // 1% of the certificates (at least one) get a new version.
    let rotated = n.div_ceil(100);
    for i in 0..rotated {
        let k = i * (n / rotated);
        let (vault, name) = &observed[k];
        emulator.set_secret(vault, name, pool.value(k, 1)).await?;
    }
    let mut row = Row::new("sync", n, vaults, "rotated 1%");
    measure(&mut row, &emulator, &agent_dir, || sync_once("rotated")).await?;
    check_exit(&row, dir.path(), "rotated")?;
    row.set("rotated", rotated as f64);
    rows.push(row);
    row_peak(&mut rows, &emulator);
    if syscalls {
        // A fresh store, counted: the initial sync, then an unchanged cycle.
        let counted_dir = dir.path().join("agent-strace");
        std::fs::create_dir_all(&counted_dir)?;
        let counted_settings = dir.path().join("settings-strace.json");
        let settings = setup::settings(&endpoints, &counted_dir, &observed, None, json!({}));
        std::fs::write(&counted_settings, serde_json::to_vec_pretty(&settings)?)?;
        let counted_arg = counted_settings.display().to_string();
        for label in ["initial", "unchanged"] {
            rows.push(crate::syscalls::counted_run(
                &bins.python,
                &bins.agent,
                &counted_arg,
                n,
                vaults,
                label,
                dir.path(),
            )?);
        }
    }
    Ok(rows)
}

/// The emulator's own peak memory, on the last row.
fn row_peak(rows: &mut [Row], emulator: &EmulatorProcess) {
    if let Some(last) = rows.last_mut() {
        last.set("vault_peak_rss_mib", emulator.peak_rss_mib());
    }
}

fn check_exit(row: &Row, dir: &Path, log: &str) -> anyhow::Result<()> {
    if row.get("exit") != Some(0.0) {
        let path = dir.join(log);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        eprintln!(
            "warning: {} N={} {} exited {:?}; last lines of its log:\n{}",
            row.scenario,
            row.n,
            row.label,
            row.get("exit"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

/// The daemon observing N certificates (1 vault), polling hourly, with the webhook on
/// loopback; `pushes` rotations each announced by an Event Grid delivery, timed from sending
/// the delivery to the new version behind the stable link.
pub async fn push(
    bins: &Binaries,
    pool: &Pool,
    n: usize,
    pushes: usize,
    work: &Path,
) -> anyhow::Result<Row> {
    let dir = tempfile::Builder::new().prefix("push-").tempdir_in(work)?;
    let observed = setup::observed(n, 1);
    let emulator =
        EmulatorProcess::start(bins, dir.path(), &setup::seed(&observed, 1, pool)).await?;
    let endpoints = Endpoints {
        https_port: emulator.https_port,
        imds_url: emulator.imds_url(),
        ca_path: emulator.ca_path.clone(),
    };
    let webhook_port = procs::free_port()?;
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir)?;
    let settings = setup::settings(
        &endpoints,
        &agent_dir,
        &observed,
        None,
        json!({"webhook": {"address": format!("127.0.0.1:{webhook_port}"), "path": "/eventgrid"}}),
    );
    let settings_path = dir.path().join("settings.json");
    std::fs::write(&settings_path, serde_json::to_vec_pretty(&settings)?)?;
    let log = std::fs::File::create(dir.path().join("daemon.log"))?;
    let daemon = std::process::Command::new(&bins.agent)
        .args(["run", "--settings"])
        .arg(&settings_path)
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("failed to start the daemon (akvvm run)")?;
    let daemon = Daemon(daemon);
    let store = agent_dir.join("store");
    let link = |i: usize| store.join(format!("{}.{}", observed[i].0, observed[i].1));
    // Its first cycle: every stable link in place.
    let started = Instant::now();
    while (0..n).any(|i| std::fs::symlink_metadata(link(i)).is_err()) {
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("push: the daemon did not install {n} certificates within 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first_cycle = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_before = procs::proc_cpu_seconds(daemon.0.id());
    emulator.reset_stats().await?;
    let client = reqwest::Client::new();
    let mut walls = Vec::with_capacity(pushes);
    for p in 0..pushes {
        let i = (p * 7919 + 11) % n;
        let (vault, name) = &observed[i];
        let before = std::fs::read_link(link(i))?;
        emulator
            .set_secret(vault, name, pool.value(i, p + 1))
            .await?;
        let event = json!([{
            "id": format!("push-{p}"), "subject": name,
            "eventType": "Microsoft.KeyVault.SecretNewVersionCreated",
            "data": {"VaultName": vault, "ObjectName": name, "ObjectType": "Secret"},
            "dataVersion": "1", "metadataVersion": "1", "eventTime": "2026-12-01T10:00:00Z"
        }]);
        let sent = Instant::now();
        let answer = client
            .post(format!("http://127.0.0.1:{webhook_port}/eventgrid"))
            .json(&event)
            .send()
            .await
            .context("the webhook did not answer")?;
        if !answer.status().is_success() {
            bail!("push: the webhook answered {}", answer.status());
        }
        while std::fs::read_link(link(i)).ok().as_ref() == Some(&before) {
            if sent.elapsed() > Duration::from_secs(120) {
                bail!("push: {vault}/{name} was not installed within 2 minutes");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        walls.push(sent.elapsed().as_secs_f64());
    }
    let stats = emulator.stats().await?;
    let mut row = Row::new("push", n, 1, &format!("{pushes} pushes"));
    walls.sort_by(f64::total_cmp);
    let pct = |p: f64| walls[((walls.len() as f64 * p).ceil() as usize).clamp(1, walls.len()) - 1];
    row.set("p50_s", pct(0.50))
        .set("p99_s", pct(0.99))
        .set("max_s", walls[walls.len() - 1])
        .set("first_cycle_s", first_cycle.as_secs_f64())
        .set(
            "daemon_peak_rss_mib",
            procs::proc_peak_rss_mib(daemon.0.id()),
        )
        .set(
            "daemon_cpu_per_push_ms",
            (procs::proc_cpu_seconds(daemon.0.id()) - cpu_before) * 1e3 / pushes as f64,
        )
        .set(
            "vault_requests_per_push",
            stats.vault_requests().0 as f64 / pushes as f64,
        );
    Ok(row)
}

/// The daemon, stopped with SIGTERM (as systemd does) when dropped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
