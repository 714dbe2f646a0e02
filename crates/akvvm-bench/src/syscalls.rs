//! Syscall counts of the agent (`--syscalls`): `akvvm sync --once` under `strace -f -c`, an
//! initial sync into a fresh store and an unchanged cycle after it, against the same local
//! vault as the `sync` scenario. The counts show whether the store's work per install depends
//! on the store's size (the same number of `readlinkat`, `getxattr`, ... per certificate at
//! N = 100 and 10,000). strace slows the agent down, so these rows hold counts only.

use std::path::Path;

use anyhow::{Context, bail};

use crate::procs;
use crate::report::Row;

/// The syscalls shown by name (others count in the total only).
const SHOWN: &[&str] = &[
    "readlinkat",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "getdents64",
    "openat",
    "newfstatat",
    "statx",
    "write",
    "fsync",
    "fdatasync",
    "syncfs",
    "renameat2",
    "rename",
    "symlinkat",
    "unlinkat",
    "fsetxattr",
];

/// Parses `strace -c`'s summary: (syscall, calls) rows and the total.
pub fn parse_summary(text: &str) -> (Vec<(String, u64)>, u64) {
    let mut rows = Vec::new();
    let mut total = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !(5..=6).contains(&fields.len()) {
            continue;
        }
        let Ok(calls) = fields[3].parse::<u64>() else {
            continue;
        };
        let name = fields[fields.len() - 1];
        if name == "total" {
            total = calls;
        } else {
            rows.push((name.to_owned(), calls));
        }
    }
    (rows, total)
}

/// One `akvvm sync --once` under `strace -f -c` (`settings` observing `n` certificates).
pub fn counted_run(
    python: &str,
    agent: &Path,
    settings: &str,
    n: usize,
    vaults: usize,
    label: &str,
    dir: &Path,
) -> anyhow::Result<Row> {
    let strace = ["/usr/bin/strace", "/bin/strace"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .context("--syscalls needs strace (apt-get install strace)")?;
    let out = dir.join(format!("strace-{}.txt", label.replace(' ', "-")));
    let out_arg = out.display().to_string();
    let agent_arg = agent.display().to_string();
    let usage = procs::run_measured(
        python,
        strace,
        &[
            "-f",
            "-c",
            "-qq",
            "-o",
            &out_arg,
            &agent_arg,
            "sync",
            "--once",
            "--settings",
            settings,
        ],
        &[("RUST_LOG", "warn".into())],
        &dir.join(format!("{}.log", label.replace(' ', "-"))),
    )?;
    if usage.exit != 0 {
        bail!("akvvm sync --once under strace exited {}", usage.exit);
    }
    let (rows, total) = parse_summary(&std::fs::read_to_string(&out)?);
    let mut row = Row::new("syscalls", n, vaults, label);
    row.set("syscalls", total as f64)
        .set("syscalls_per_cert", total as f64 / n as f64);
    for (name, calls) in rows {
        if SHOWN.contains(&name.as_str()) {
            row.set(&format!("sys_{name}"), calls as f64);
        }
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_gives_calls_per_syscall_and_the_total() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 40.00    0.000400          10        40           readlinkat
 30.00    0.000300           3       100        12 openat
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           7       140        12 total
";
        let (rows, total) = parse_summary(text);
        assert_eq!(
            rows,
            [("readlinkat".to_owned(), 40), ("openat".to_owned(), 100)]
        );
        assert_eq!(total, 140);
    }
}
