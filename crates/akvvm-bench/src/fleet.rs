//! The `fleet` scenario: A agents, each observing the same C certificates in one vault, all
//! starting at once against `akvvm-emulator serve` throttled as Key Vault is (the
//! `keyVaultSecrets` preset: 4,000 requests per 10 s), with `Retry-After` on the 429s or
//! without it. Each agent is an instance of the real engine ([`akvvm::sync::Engine`], one
//! `cycle`, as `akvvm sync --once` runs it) in this process, with its own user-assigned
//! identity (so its own token), its own state directory and its own store.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use akvvm::settings::Settings;
use akvvm::sync::{CertOutcome, Engine, EngineOptions};
use anyhow::{Context, anyhow};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::pool::{PFX, Pool};
use crate::procs::{self, Binaries, EmulatorProcess};
use crate::report::Row;
use crate::setup::{self, Endpoints, READER_ROLE};

/// Key Vault's allowed rate for secrets, requests per second (4,000 per 10 s).
const ALLOWED_PER_S: f64 = 400.0;

fn client_id(i: usize) -> String {
    format!("f1ee7000-0000-4000-8000-{i:012}")
}

/// One fleet run; `retry_after_s` None: 429s without `Retry-After`.
pub async fn run(
    bins: &Binaries,
    pool: &Pool,
    agents: usize,
    certificates: usize,
    retry_after_s: Option<u64>,
    work: &Path,
) -> anyhow::Result<Row> {
    let dir = tempfile::Builder::new().prefix("fleet-").tempdir_in(work)?;
    let vault = "fleet";
    let observed: Vec<(String, String)> = (0..certificates)
        .map(|i| (vault.to_owned(), format!("cert{i}")))
        .collect();
    let seed = json!({
        "identities": {
            "user": (0..agents).map(|i| json!({"clientId": client_id(i), "name": format!("vm{i}")})).collect::<Vec<_>>(),
        },
        "vaults": [{
            "name": vault,
            "roles": (0..agents).map(|i| json!({"principal": client_id(i), "roles": [READER_ROLE]})).collect::<Vec<_>>(),
            "secrets": (0..certificates).map(|i| json!({"name": format!("cert{i}"), "value": pool.value(i, 0), "contentType": PFX})).collect::<Vec<_>>(),
        }],
    });
    let emulator = EmulatorProcess::start(bins, dir.path(), &seed).await?;
    let mut throttle = json!({"preset": "keyVaultSecrets"});
    if let Some(s) = retry_after_s {
        throttle["retryAfterS"] = json!(s);
    }
    emulator
        .set_faults(vault, json!({"throttle": throttle}))
        .await?;
    let endpoints = Endpoints {
        https_port: emulator.https_port,
        imds_url: emulator.imds_url(),
        ca_path: emulator.ca_path.clone(),
    };
    let mut engines = Vec::with_capacity(agents);
    for i in 0..agents {
        let agent_dir = dir.path().join(format!("vm{i}"));
        std::fs::create_dir_all(&agent_dir)?;
        let json = setup::settings(
            &endpoints,
            &agent_dir,
            &observed,
            Some(&client_id(i)),
            json!({}),
        );
        let (settings, _) = Settings::from_json_value(&json)
            .map_err(|d| anyhow!("the fleet's settings are invalid: {d:?}"))?;
        let options = EngineOptions::for_settings(&settings);
        engines.push(Arc::new(
            Engine::new(settings, options).context("an agent's engine")?,
        ));
    }
    emulator.reset_stats().await?;
    let cpu_before = procs::proc_cpu_seconds(std::process::id());
    let vault_cpu_before = emulator.cpu_seconds();
    let start = Instant::now();
    let cancel = CancellationToken::new();
    let tasks: Vec<_> = engines
        .iter()
        .map(|engine| {
            let (engine, cancel) = (engine.clone(), cancel.clone());
            tokio::spawn(async move {
                let report = engine.cycle(|_| true, &cancel).await;
                let failures: Vec<String> = report
                    .certificates
                    .iter()
                    .filter_map(|c| match &c.outcome {
                        CertOutcome::Failed { code, .. } => Some(code.clone()),
                        _ => None,
                    })
                    .collect();
                (report.complete(), start.elapsed().as_secs_f64(), failures)
            })
        })
        .collect();
    let mut in_sync = 0usize;
    let mut last_in_sync = 0.0f64;
    let mut last_done = 0.0f64;
    // Why the certificates of agents that did not get in sync failed, by error code.
    let mut failures: std::collections::BTreeMap<String, usize> = Default::default();
    for task in tasks {
        let (complete, at, failed) = task.await.context("an agent panicked")?;
        for code in failed {
            *failures.entry(code).or_default() += 1;
        }
        last_done = last_done.max(at);
        if complete {
            in_sync += 1;
            last_in_sync = last_in_sync.max(at);
        }
    }
    let cpu = procs::proc_cpu_seconds(std::process::id()) - cpu_before;
    let vault_cpu = emulator.cpu_seconds() - vault_cpu_before;
    let stats = emulator.stats().await?;
    let (requests, by_status) = stats.vault_requests();
    let floor = requests as f64 / ALLOWED_PER_S;
    let label = match retry_after_s {
        Some(s) => format!("Retry-After {s}"),
        None => "no Retry-After".to_owned(),
    };
    let mut row = Row::new("fleet", agents * certificates, 1, &label);
    row.set("agents", agents as f64)
        .set("in_sync", in_sync as f64)
        .set("gave_up", (agents - in_sync) as f64)
        .set("last_in_sync_s", last_in_sync)
        .set("last_done_s", last_done)
        .set("vault_requests", requests as f64)
        .set(
            "requests_per_cert",
            requests as f64 / (agents * certificates) as f64,
        )
        .set("floor_s", floor)
        // The same floor counting only the requests that were not refused with 429.
        .set(
            "floor_passed_s",
            (requests - by_status.get("429").copied().unwrap_or(0)) as f64 / ALLOWED_PER_S,
        )
        .set("identity_requests", stats.identity_requests() as f64)
        .set("agents_cpu_s", cpu)
        .set("vault_cpu_s", vault_cpu);
    for (code, count) in &failures {
        row.set(&format!("failed_{code}"), *count as f64);
    }
    if floor > 0.0 && in_sync == agents {
        row.set("last_in_sync_over_floor", last_in_sync / floor);
    }
    for (status, count) in by_status {
        row.set(&format!("status_{status}"), count as f64);
    }
    Ok(row)
}
