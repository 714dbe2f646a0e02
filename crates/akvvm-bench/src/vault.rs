//! The `vault` scenario: how fast `akvvm-emulator serve` answers secret GETs, whatever it
//! holds. The emulator holds N secrets (the one read has 100 versions); this process takes a
//! token from its IMDS and sends GETs of the current version over HTTP/1.1 keep-alive
//! connections, `concurrency` at a time. The client runs on the same cores, so the rate is
//! what the machine does with both; the emulator's own CPU per GET comes from `/proc`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::pool::{PFX, Pool};
use crate::procs::{Binaries, EmulatorProcess};
use crate::report::Row;

const VERSIONS: usize = 100;

pub async fn run(
    bins: &Binaries,
    pool: &Pool,
    n: usize,
    gets: usize,
    concurrency: usize,
    work: &Path,
) -> anyhow::Result<Row> {
    let dir = tempfile::Builder::new().prefix("vault-").tempdir_in(work)?;
    let secrets: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("cert{i:05}"), "value": pool.value(i, 0), "contentType": PFX}))
        .collect();
    let seed = json!({
        "identities": {"system": {}},
        "vaults": [{"name": "bench0", "roles": [{"principal": "system", "roles": ["Key Vault Secrets User"]}], "secrets": secrets}],
    });
    let emulator = EmulatorProcess::start(bins, dir.path(), &seed).await?;
    // The secret read gets VERSIONS versions in all.
    let name = format!("cert{:05}", n / 2);
    for v in 1..VERSIONS {
        emulator
            .set_secret("bench0", &name, pool.value(n / 2, v))
            .await?;
    }
    let token: Value = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net",
            emulator.imds_port
        ))
        .header("Metadata", "true")
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"]
        .as_str()
        .context("IMDS gave no access_token")?
        .to_owned();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&emulator.ca_path)?)?;
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve(
            "bench0.vault.azure.net",
            ([127, 0, 0, 1], emulator.https_port).into(),
        )
        .http1_only()
        .no_proxy()
        .build()?;
    let url = format!("https://bench0.vault.azure.net/secrets/{name}?api-version=7.4");
    let get = |client: reqwest::Client| {
        let (url, token) = (url.clone(), token.clone());
        async move {
            let answer = client.get(&url).bearer_auth(&token).send().await?;
            let status = answer.status();
            answer.bytes().await?;
            anyhow::Ok(status.as_u16())
        }
    };
    // Warm the connections.
    let warm: Vec<_> = futures::stream::iter(0..concurrency * 4)
        .map(|_| get(client.clone()))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for s in warm {
        if s? != 200 {
            bail!("vault: a warm-up GET was not answered 200");
        }
    }
    emulator.reset_stats().await?;
    let vault_cpu = emulator.cpu_seconds();
    let start = Instant::now();
    let statuses: Vec<_> = futures::stream::iter(0..gets)
        .map(|_| get(client.clone()))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = start.elapsed().as_secs_f64();
    let vault_cpu = emulator.cpu_seconds() - vault_cpu;
    let ok = statuses
        .into_iter()
        .filter(|s| matches!(s, Ok(200)))
        .count();
    let mut row = Row::new(
        "vault",
        n,
        1,
        &format!("GET x{gets}, {concurrency} at once"),
    );
    row.set("gets_per_sec", ok as f64 / wall)
        .set("ok", ok as f64)
        .set("wall_s", wall)
        .set("vault_cpu_s", vault_cpu)
        .set("vault_cpu_per_get_us", vault_cpu * 1e6 / gets as f64)
        .set("versions_of_the_secret", VERSIONS as f64)
        .set("vault_peak_rss_mib", emulator.peak_rss_mib());
    Ok(row)
}
