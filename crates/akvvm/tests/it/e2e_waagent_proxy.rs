//! The guest agent's proxy (`HttpProxy.Host`/`HttpProxy.Port` in waagent.conf, its path given
//! by `akvvm.waagentConfig`), end to end: with `HTTPS_PROXY` unset, Key Vault is reached through
//! a real CONNECT tunnel (the testkit's proxy, counting tunnels) and IMDS never is (issue 9,
//! item 3). This test binary never sets `HTTPS_PROXY`; the precedence of the environment and
//! `NO_PROXY` are unit-tested in `http`.

use akvvm::sync::CertOutcome;
use akvvm_testkit::harness::{Harness, PFX, cycle};
use akvvm_testkit::proxy::connect_proxy;
use serde_json::json;

#[tokio::test]
async fn key_vault_goes_through_the_guest_agents_proxy_and_imds_never_does() {
    assert!(
        std::env::var_os("HTTPS_PROXY").is_none() && std::env::var_os("https_proxy").is_none(),
        "run without HTTPS_PROXY: the test checks the guest agent's proxy"
    );
    let h = Harness::start().await;
    h.vault("contoso");
    let version = h.certificate("contoso", "web", "RSA", PFX);
    let (proxy, tunnels) = connect_proxy(h.emulator.https_addr()).await;
    let port = proxy.rsplit(':').next().unwrap().to_owned();
    let conf = h.dir.path().join("waagent.conf");
    std::fs::write(
        &conf,
        format!("# the guest agent's proxy\nHttpProxy.Host=127.0.0.1\nHttpProxy.Port={port}\nAutoUpdate.Enabled=y\n"),
    )
    .unwrap();
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);

    // Without the waagent.conf proxy: direct, no tunnel.
    assert!(cycle(&h.engine(&json)).await.complete());
    assert!(tunnels.lock().unwrap().is_empty());

    json["akvvm"]["waagentConfig"] = json!(conf.display().to_string());
    std::fs::remove_dir_all(h.store()).unwrap();
    let report = cycle(&h.engine(&json)).await;
    assert!(
        matches!(&report.certificates[0].outcome, CertOutcome::Installed(i) if i.version == version),
        "{report:?}"
    );
    let seen = tunnels.lock().unwrap().clone();
    assert!(!seen.is_empty(), "Key Vault went through the proxy");
    assert!(
        seen.iter().all(|t| t == "contoso.vault.azure.net:443"),
        "only Key Vault is tunnelled, never IMDS ({}): {seen:?}",
        h.emulator.imds_url()
    );
}
