//! The seed file and persisted state across a restart, the admin API over HTTPS, and
//! access-policy vaults.

use super::*;

#[tokio::test]
async fn seed_and_persisted_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed {
        tenant_id: Some("72f988bf-0000-4000-8000-000000000001".into()),
        identities: SeedIdentities {
            system: Some(IdentitySpec {
                client_id: Some("sys-client".into()),
                ..Default::default()
            }),
            user: vec![],
        },
        apps: vec![],
        vaults: vec![VaultSpec {
            name: VAULT.into(),
            roles: vec![RoleSpec {
                principal: "system".into(),
                roles: vec!["Key Vault Secrets Officer".into()],
            }],
            secrets: vec![NamedSecret {
                name: "seeded".into(),
                spec: SecretSpec {
                    value: "v1".into(),
                    ..Default::default()
                },
            }],
            ..VaultSpec::default()
        }],
    };
    let config = EmulatorConfig {
        data_dir: Some(dir.path().to_owned()),
        persist: true,
        seed: Some(seed),
        ..EmulatorConfig::default()
    };

    let first = Emulator::start(config.clone()).await.unwrap();
    assert_eq!(
        first.default_tenant(),
        "72f988bf-0000-4000-8000-000000000001"
    );
    first
        .set_secret(
            VAULT,
            "added",
            SecretSpec {
                value: "later".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let ca = first.ca_pem().to_owned();
    let token = ImdsCredential::system(first.imds_url())
        .get_token(&[], None)
        .await
        .unwrap();
    drop(first);

    let second = Emulator::start(config).await.unwrap();
    assert_eq!(second.ca_pem(), ca);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca.pem")).unwrap(),
        ca
    );
    // The token from before the restart is still valid: the signing key was kept.
    for (name, want) in [("seeded", "v1"), ("added", "later")] {
        let response = http(&second)
            .get(format!(
                "{}/secrets/{name}?api-version=7.4",
                second.vault_url(VAULT)
            ))
            .bearer_auth(token.token.secret())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let got = response.json::<Value>().await.unwrap();
        assert_value(got["value"].as_str(), want);
    }
    // The seed applied again creates no second version.
    let versions = second.read(|m| m.vaults[VAULT].secrets["seeded"].versions.len());
    assert_eq!(versions, 1);
}

#[tokio::test]
async fn admin_api_over_https_and_access_policy_vaults() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let http = http(&emulator);
    let admin = |path: &str| format!("{}/_emulator{path}", emulator.authority_host());

    assert_eq!(
        http.get(admin("/ca.pem"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        emulator.ca_pem()
    );
    let created = http
        .post(admin("/vaults"))
        .json(&json!({"name": VAULT, "authorization": "accessPolicy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let duplicate = http
        .post(admin("/vaults"))
        .json(&json!({"name": VAULT}))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 409);
    let bad = http
        .post(admin("/vaults"))
        .json(&json!({"name": VAULT, "nmae": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("unknown field `nmae`"));

    let identity: Value = http
        .post(admin("/identities/system"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let put = http
        .put(admin(&format!("/vaults/{VAULT}/secrets/s")))
        .json(&json!({"value": "v", "contentType": "text/plain"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);

    // No permission yet: an access-policy vault's 403.
    let token = ImdsCredential::system(emulator.imds_url())
        .get_token(&[], None)
        .await
        .unwrap();
    let get = || {
        http.get(format!(
            "{}/secrets/s?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .bearer_auth(token.token.secret())
        .send()
    };
    let denied: Value = get().await.unwrap().json().await.unwrap();
    assert_eq!(denied["error"]["innererror"]["code"], "AccessDenied");
    let message = denied["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("oid={}", identity["objectId"].as_str().unwrap())),
        "{message}"
    );
    assert!(
        message.contains("does not have secrets get permission on key vault 'certvault"),
        "{message}"
    );

    let granted = http
        .post(admin(&format!("/vaults/{VAULT}/roles")))
        .json(&json!({"principal": "system", "roles": ["get"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 200);
    let granted_read = get().await.unwrap().json::<Value>().await.unwrap();
    assert_value(granted_read["value"].as_str(), "v");

    // Latency and counters over HTTP.
    let faults = http
        .put(admin(&format!("/faults/{VAULT}")))
        .json(&json!({"latencyMs": 250}))
        .send()
        .await
        .unwrap();
    assert_eq!(faults.json::<Value>().await.unwrap()["latencyMs"], 250);
    let started = std::time::Instant::now();
    assert_eq!(get().await.unwrap().status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    let counters: Vec<Value> = http
        .get(admin("/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ok = counters
        .iter()
        .find(|c| c["scope"] == VAULT && c["path"] == "/secrets/s" && c["status"] == 200)
        .unwrap();
    assert_eq!(ok["count"], 2);
    assert_eq!(ok["method"], "GET");
}
