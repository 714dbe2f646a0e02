//! `akvvm-bench`: the benchmark harness. It starts `akvvm-emulator serve` as its own process,
//! runs the agent as its own process (`akvvm sync --once`, the daemon `akvvm run` for push) and
//! measures both from outside: wall time, user and system CPU and peak RSS (`wait4`), requests
//! by status (the emulator's `/_emulator/stats`), entries and bytes written. It prints tables,
//! writes JSON, and compares two JSON runs. Loopback only; it stops by itself.
//!
//! - [`pool`]: the certificates served; [`setup`]: seeds and agent settings;
//! - [`procs`]: the emulator process, measured runs, `/proc` readings, written-files snapshots;
//! - [`sync`]: `sync` (initial, unchanged, 1% rotated; the Python SDK cron job beside it) and
//!   `push` (webhook latency); [`fleet`]: many agents on one throttled vault; [`vault`]: the
//!   local vault's GET rate;
//! - [`report`]: rows, tables, JSON and compare.
//!
//! Scenarios and sizes come from the command line (`akvvm-bench run --help`); `--quick` runs
//! each scenario small, in seconds. See docs/benchmarks.md.

mod fleet;
mod pool;
mod procs;
mod report;
mod setup;
mod sync;
mod syscalls;
mod vault;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use report::{Row, RunReport};

#[derive(Parser)]
#[command(
    name = "akvvm-bench",
    about = "Benchmarks akvvm and the local vault as processes, measured from outside"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenarios, print tables, write JSON.
    Run(Box<RunArgs>),
    /// Compare two JSON runs: each figure of the rows both have, with its ratio b / a.
    Compare { a: PathBuf, b: PathBuf },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// `akvvm sync --once`: initial sync, unchanged cycle, 1% rotated (and the Python cron job).
    Sync,
    /// The daemon's webhook: Event Grid delivery to new files in place.
    Push,
    /// Many agents starting at once on one vault throttled like Key Vault.
    Fleet,
    /// The local vault's secret GET rate.
    Vault,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PythonMode {
    /// When the virtual environment exists.
    Auto,
    On,
    Off,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenarios to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = ["vault", "sync", "push", "fleet"])]
    scenarios: Vec<Scenario>,
    /// Numbers of certificates for `sync` and `vault`.
    #[arg(long = "n", value_delimiter = ',', default_values = ["10", "100", "1000", "10000"])]
    n: Vec<usize>,
    /// Numbers of vaults for `sync` (the certificates spread evenly).
    #[arg(long, value_delimiter = ',', default_values = ["1", "10"])]
    vaults: Vec<usize>,
    /// The Python SDK cron job beside each `sync`.
    #[arg(long, value_enum, default_value = "auto")]
    python: PythonMode,
    /// Skip the Python cron job beyond this N (it is slow).
    #[arg(long, default_value_t = 1000)]
    python_max_n: usize,
    /// The virtual environment with azure-keyvault-secrets, azure-identity and cryptography
    /// (default: python-venv beside the build directory, as tests/python/run.sh makes it).
    #[arg(long)]
    python_venv: Option<PathBuf>,
    /// With `sync`: also count the agent's syscalls (`strace -f -c`) in an initial sync and an
    /// unchanged cycle (strace is slow: counts only).
    #[arg(long)]
    syscalls: bool,
    /// Certificates observed by the daemon in `push`.
    #[arg(long, default_value_t = 10_000)]
    push_n: usize,
    /// Rotations pushed.
    #[arg(long, default_value_t = 100)]
    pushes: usize,
    /// Agents in `fleet`.
    #[arg(long, default_value_t = 1000)]
    fleet_agents: usize,
    /// Certificates per agent in `fleet`.
    #[arg(long, default_value_t = 5)]
    fleet_certs: usize,
    /// `Retry-After` seconds of the throttled fleet run that has it.
    #[arg(long, default_value_t = 1)]
    retry_after: u64,
    /// GETs sent in `vault`, and how many at once.
    #[arg(long, default_value_t = 30_000)]
    gets: usize,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Small sizes for everything (seconds): N = 10, 1 vault, 5 pushes, 20 agents, 2,000 GETs.
    #[arg(long)]
    quick: bool,
    /// Where akvvm and akvvm-emulator are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The interpreter that runs the wait4 wrapper.
    #[arg(long, default_value = "python3")]
    python3: String,
    /// Where the scenarios' files go (a temporary directory under it, removed at the end).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(args) => run(*args).await,
        Cmd::Compare { a, b } => compare(&a, &b),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("akvvm-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn compare(a: &std::path::Path, b: &std::path::Path) -> anyhow::Result<()> {
    let text = report::compare(&RunReport::read(a)?, &RunReport::read(b)?);
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

fn say(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

async fn run(mut args: RunArgs) -> anyhow::Result<()> {
    if args.quick {
        args.n = vec![10];
        args.vaults = vec![1];
        args.push_n = 10;
        args.pushes = 5;
        args.fleet_agents = 20;
        args.gets = 2_000;
    }
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(PathBuf::from)
        .context("cannot locate this binary's directory")?;
    let bin_dir = args.bin_dir.clone().unwrap_or_else(|| exe_dir.clone());
    let bins = procs::Binaries::in_dir(&bin_dir, args.python3.clone())?;
    let venv = args
        .python_venv
        .clone()
        .or_else(|| exe_dir.parent().map(|target| target.join("python-venv")));
    let python = match (args.python, venv.map(|v| v.join("bin/python"))) {
        (PythonMode::Off, _) => None,
        (_, Some(p)) if p.exists() => Some(sync::PythonCron {
            venv_python: p,
            script: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/python/cron_sync.py")),
        }),
        (PythonMode::On, p) => bail!(
            "no Python virtual environment at {:?}: run crates/akvvm-emulator/tests/python/run.sh once, or give --python-venv",
            p
        ),
        (PythonMode::Auto, _) => {
            say("(the Python cron job is skipped: no virtual environment; see --python-venv)");
            None
        }
    };
    let work = match &args.work_dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("akvvm-bench-")
            .tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("akvvm-bench-").tempdir()?,
    };
    let mut report = RunReport {
        commit: commit(),
        started: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        machine: machine(),
        arguments: std::env::args().collect(),
        rows: Vec::new(),
    };
    say(&format!(
        "akvvm-bench at {} on {}",
        report.commit,
        report.machine.get("cpu").map_or("?", String::as_str)
    ));
    let pool = pool::Pool::generate(4)?;
    let progress = |row: &Row| {
        say(&format!(
            "  done: {} N={} vaults={} {}",
            row.scenario, row.n, row.vaults, row.label
        ));
    };
    for scenario in &args.scenarios {
        match scenario {
            Scenario::Vault => {
                for &n in &args.n {
                    let row = vault::run(&bins, &pool, n, args.gets, args.concurrency, work.path())
                        .await?;
                    progress(&row);
                    report.rows.push(row);
                    if let Some(path) = &args.json {
                        report.write(path)?;
                    }
                }
            }
            Scenario::Sync => {
                for &vaults in &args.vaults {
                    for &n in &args.n {
                        if vaults > n {
                            continue;
                        }
                        let cron = python.as_ref().filter(|_| n <= args.python_max_n);
                        let rows =
                            sync::run(&bins, &pool, n, vaults, cron, args.syscalls, work.path())
                                .await?;
                        rows.iter().for_each(progress);
                        report.rows.extend(rows);
                        // Long runs keep what they measured so far.
                        if let Some(path) = &args.json {
                            report.write(path)?;
                        }
                    }
                }
            }
            Scenario::Push => {
                let row = sync::push(&bins, &pool, args.push_n, args.pushes, work.path()).await?;
                progress(&row);
                report.rows.push(row);
                if let Some(path) = &args.json {
                    report.write(path)?;
                }
            }
            Scenario::Fleet => {
                for retry_after in [None, Some(args.retry_after)] {
                    let row = fleet::run(
                        &bins,
                        &pool,
                        args.fleet_agents,
                        args.fleet_certs,
                        retry_after,
                        work.path(),
                    )
                    .await?;
                    progress(&row);
                    report.rows.push(row);
                    if let Some(path) = &args.json {
                        report.write(path)?;
                    }
                }
            }
        }
    }
    print_tables(&report);
    if let Some(path) = &args.json {
        report.write(path)?;
        say(&format!("\nwrote {}", path.display()));
    }
    Ok(())
}

fn print_tables(report: &RunReport) {
    let sections: [(&str, &str, &[&str]); 5] = [
        (
            "vault",
            "local vault: secret GETs",
            &[
                "gets_per_sec",
                "vault_cpu_per_get_us",
                "ok",
                "vault_peak_rss_mib",
            ],
        ),
        (
            "sync",
            "sync --once (agent) and the Python SDK cron job",
            &[
                "wall_s",
                "user_s",
                "sys_s",
                "cpu_per_cert_ms",
                "peak_rss_mib",
                "vault_requests",
                "requests_per_cert",
                "status_200",
                "status_401",
                "files_written",
                "bytes_written",
                "vault_cpu_per_request_us",
                "cpu_ratio_to_agent",
                "exit",
            ],
        ),
        (
            "syscalls",
            "the agent's syscalls (strace -f -c)",
            &[
                "syscalls",
                "syscalls_per_cert",
                "sys_readlinkat",
                "sys_getxattr",
                "sys_lgetxattr",
                "sys_getdents64",
                "sys_openat",
                "sys_statx",
                "sys_fsync",
                "sys_renameat2",
                "sys_symlinkat",
                "sys_unlinkat",
            ],
        ),
        (
            "push",
            "push through the webhook",
            &[
                "p50_s",
                "p99_s",
                "max_s",
                "first_cycle_s",
                "daemon_peak_rss_mib",
                "daemon_cpu_per_push_ms",
                "vault_requests_per_push",
            ],
        ),
        (
            "fleet",
            "fleet on one vault throttled like Key Vault (N = agents x certificates)",
            &[
                "agents",
                "in_sync",
                "gave_up",
                "last_in_sync_s",
                "floor_s",
                "last_in_sync_over_floor",
                "vault_requests",
                "requests_per_cert",
                "status_429",
                "status_401",
                "agents_cpu_s",
            ],
        ),
    ];
    for (scenario, title, columns) in sections {
        let rows: Vec<&Row> = report
            .rows
            .iter()
            .filter(|r| r.scenario == scenario)
            .collect();
        if !rows.is_empty() {
            say(&format!("\n{title}\n{}", report::table(&rows, columns)));
        }
    }
}

/// The commit measured (`git describe --always --dirty`), when run in a checkout.
fn commit() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        )
}

fn machine() -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if let Some(model) = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")) {
        m.insert(
            "cpu".into(),
            model.trim_start_matches([' ', '\t', ':']).to_owned(),
        );
    }
    m.insert(
        "cores".into(),
        std::thread::available_parallelism()
            .map_or(0, |n| n.get())
            .to_string(),
    );
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(total) = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:")) {
        m.insert("memory".into(), total.trim().to_owned());
    }
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        m.insert("kernel".into(), release.trim().to_owned());
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        m.insert(
            "load at start".into(),
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    m
}
