//! A 403 from the vault's network rules (`innererror.code` `ForbiddenByFirewall` or
//! `ForbiddenByConnection`), end to end against the local vault's fault: its own code,
//! `vault.forbidden_by_network`, and a message that says it is the network, not RBAC, and what to
//! do (issue 9, item 3). A 403 of RBAC keeps `vault.forbidden`.

use akvvm::sync::CertOutcome;
use akvvm_emulator::NetworkDenial;
use akvvm_testkit::harness::{Harness, PFX, cycle};
use serde_json::json;

#[tokio::test]
async fn a_vault_firewall_or_private_link_403_says_it_is_the_network_not_rbac() {
    let h = Harness::start().await;
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    let json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);

    for (denial, rule, advice) in [
        (
            NetworkDenial::ForbiddenByFirewall,
            "ForbiddenByFirewall",
            "add its public IP address",
        ),
        (
            NetworkDenial::ForbiddenByConnection,
            "ForbiddenByConnection",
            "private endpoint",
        ),
    ] {
        h.emulator.deny_network("contoso", denial);
        let report = cycle(&h.engine(&json)).await;
        let CertOutcome::Failed { code, message, .. } = &report.certificates[0].outcome else {
            panic!("expected a 403: {report:?}");
        };
        assert_eq!(code, "vault.forbidden_by_network", "{message}");
        assert!(message.contains(rule), "{message}");
        assert!(
            message.contains("network rules") && message.contains("not because of RBAC"),
            "{message}"
        );
        assert!(message.contains(advice), "{message}");
        h.emulator.clear_faults("contoso");
    }

    // Without network rules, a missing role is still RBAC's 403.
    h.emulator.add_vault("fabrikam").unwrap();
    h.certificate("fabrikam", "web", "RSA", PFX);
    let json = h.settings_json(&["fabrikam"], vec![json!(Harness::url("fabrikam", "web"))]);
    let report = cycle(&h.engine(&json)).await;
    let CertOutcome::Failed { code, .. } = &report.certificates[0].outcome else {
        panic!("expected a 403: {report:?}");
    };
    assert_eq!(code, "vault.forbidden");
}
