//! Results: one [`Row`] per measured thing (a scenario, its N and vaults, a label such as
//! `initial` or `python initial`) holding named figures; printed as tables, written as JSON
//! ([`RunReport`]), and compared ([`compare`]): two runs' rows matched by key, each figure with
//! its ratio.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Everything one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// `git describe`-like: the commit measured, when the harness runs in a checkout.
    pub commit: String,
    /// When the run started (RFC 3339, UTC).
    pub started: String,
    /// CPU model, cores, memory, kernel.
    pub machine: BTreeMap<String, String>,
    /// The command line.
    pub arguments: Vec<String>,
    pub rows: Vec<Row>,
}

/// One measured thing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// `sync`, `push`, `fleet`.
    pub scenario: String,
    pub n: usize,
    pub vaults: usize,
    /// What within the scenario: `initial`, `unchanged`, `rotated 1%`, `python initial`, ...
    pub label: String,
    /// Named figures (seconds, MiB, counts); see docs/benchmarks.md for each name.
    pub figures: BTreeMap<String, f64>,
}

impl Row {
    pub fn new(scenario: &str, n: usize, vaults: usize, label: &str) -> Row {
        Row {
            scenario: scenario.into(),
            n,
            vaults,
            label: label.into(),
            figures: BTreeMap::new(),
        }
    }

    pub fn set(&mut self, name: &str, value: f64) -> &mut Self {
        self.figures.insert(name.into(), value);
        self
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.figures.get(name).copied()
    }

    fn key(&self) -> (String, usize, usize, String) {
        (
            self.scenario.clone(),
            self.n,
            self.vaults,
            self.label.clone(),
        )
    }
}

/// Shows a figure: seconds as s or ms, MiB with one decimal, counts as integers.
pub fn show(name: &str, v: f64) -> String {
    if name.ends_with("_s") {
        if v < 1.0 {
            format!("{:.1}ms", v * 1e3)
        } else {
            format!("{v:.2}s")
        }
    } else if name.ends_with("_ms") {
        format!("{v:.2}ms")
    } else if name.ends_with("_us") {
        format!("{v:.0}us")
    } else if name.ends_with("_mib") {
        format!("{v:.1}MiB")
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A table of `rows` with the given columns (figure names; a missing one shows `-`).
pub fn table(rows: &[&Row], columns: &[&str]) -> String {
    let mut cells: Vec<Vec<String>> = vec![
        ["N", "vaults", "what"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(columns.iter().map(|c| (*c).to_owned()))
            .collect(),
    ];
    for row in rows {
        let mut line = vec![row.n.to_string(), row.vaults.to_string(), row.label.clone()];
        for c in columns {
            line.push(row.get(c).map_or_else(|| "-".into(), |v| show(c, v)));
        }
        cells.push(line);
    }
    let widths: Vec<usize> = (0..cells[0].len())
        .map(|i| cells.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for line in &cells {
        for (i, cell) in line.iter().enumerate() {
            if i == 2 {
                let _ = write!(out, "{cell:<w$}  ", w = widths[i]);
            } else {
                let _ = write!(out, "{cell:>w$}  ", w = widths[i]);
            }
        }
        out.push('\n');
    }
    out
}

impl RunReport {
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("failed to write {}", path.display()))
    }

    pub fn read(path: &Path) -> anyhow::Result<RunReport> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a report of akvvm-bench", path.display()))
    }
}

/// The rows both runs have, figure by figure: `a`, `b` and `b / a`.
pub fn compare(a: &RunReport, b: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "a: {} ({})\nb: {} ({})\n",
        a.commit, a.started, b.commit, b.started
    );
    let theirs: BTreeMap<_, _> = b.rows.iter().map(|r| (r.key(), r)).collect();
    let mut only_a = Vec::new();
    for row in &a.rows {
        let Some(other) = theirs.get(&row.key()) else {
            only_a.push(format!(
                "{} N={} vaults={} {}",
                row.scenario, row.n, row.vaults, row.label
            ));
            continue;
        };
        let _ = writeln!(
            out,
            "{} N={} vaults={} {}",
            row.scenario, row.n, row.vaults, row.label
        );
        for (name, va) in &row.figures {
            let Some(vb) = other.get(name) else { continue };
            let ratio = if *va == 0.0 {
                if vb == 0.0 {
                    "=".to_owned()
                } else {
                    "new".to_owned()
                }
            } else {
                format!("x{:.2}", vb / va)
            };
            let _ = writeln!(
                out,
                "  {name:<28} {:>12} {:>12}  {ratio}",
                show(name, *va),
                show(name, vb)
            );
        }
    }
    if !only_a.is_empty() {
        let _ = writeln!(out, "\nonly in a: {}", only_a.join("; "));
    }
    let ours: BTreeMap<_, _> = a.rows.iter().map(|r| (r.key(), r)).collect();
    let only_b: Vec<String> = b
        .rows
        .iter()
        .filter(|r| !ours.contains_key(&r.key()))
        .map(|r| format!("{} N={} vaults={} {}", r.scenario, r.n, r.vaults, r.label))
        .collect();
    if !only_b.is_empty() {
        let _ = writeln!(out, "only in b: {}", only_b.join("; "));
    }
    out
}
