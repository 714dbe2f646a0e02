//! What the scenarios share: the observed certificates of an (N, vaults) setup, the seed file
//! that gives them to `akvvm-emulator serve`, and the agent's settings file pointing at it.

use std::path::Path;

use serde_json::{Value, json};

use crate::pool::{PFX, Pool};

/// The identity every process agent uses: the machine's system-assigned one.
pub const READER_ROLE: &str = "Key Vault Secrets User";

/// N certificates spread evenly over `vaults` vaults: (vault, secret name, pool index).
pub fn observed(n: usize, vaults: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("bench{}", i % vaults), format!("cert{i:05}")))
        .collect()
}

/// A seed with the system identity, `vaults` vaults (it may read every secret) and the
/// observed certificates' secrets.
pub fn seed(observed: &[(String, String)], vaults: usize, pool: &Pool) -> Value {
    let mut per_vault: Vec<Vec<Value>> = vec![Vec::new(); vaults];
    for (i, (_, name)) in observed.iter().enumerate() {
        per_vault[i % vaults].push(json!({
            "name": name, "value": pool.value(i, 0), "contentType": PFX
        }));
    }
    json!({
        "identities": {"system": {}},
        "vaults": per_vault.into_iter().enumerate().map(|(v, secrets)| json!({
            "name": format!("bench{v}"),
            "roles": [{"principal": "system", "roles": [READER_ROLE]}],
            "secrets": secrets,
        })).collect::<Vec<_>>(),
    })
}

/// Where the agent finds the local vault.
pub struct Endpoints {
    pub https_port: u16,
    pub imds_url: String,
    pub ca_path: std::path::PathBuf,
}

/// Settings observing `observed`, the store and state under `dir`; `extra` merged into `akvvm`.
pub fn settings(
    endpoints: &Endpoints,
    dir: &Path,
    observed: &[(String, String)],
    msi_client_id: Option<&str>,
    extra: Value,
) -> Value {
    let mut resolve = serde_json::Map::new();
    for (vault, _) in observed {
        resolve.insert(
            format!("{vault}.vault.azure.net"),
            json!(format!("127.0.0.1:{}", endpoints.https_port)),
        );
    }
    let urls: Vec<Value> = observed
        .iter()
        .map(|(vault, name)| json!(format!("https://{vault}.vault.azure.net/secrets/{name}")))
        .collect();
    let mut auth = json!({"msiEndpoint": endpoints.imds_url});
    if let Some(id) = msi_client_id {
        auth["msiClientId"] = json!(id);
    }
    let mut akvvm = json!({
        "stateDirectory": dir.join("state").display().to_string(),
        "caCertificates": [endpoints.ca_path.display().to_string()],
        "resolve": resolve,
    });
    if let (Some(a), Value::Object(extra)) = (akvvm.as_object_mut(), extra) {
        a.extend(extra);
    }
    json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": "3600",
            "certificateStoreLocation": dir.join("store").display().to_string(),
            "observedCertificates": urls,
        },
        "authenticationSettings": auth,
        "akvvm": akvvm,
    })
}
