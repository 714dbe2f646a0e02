//! Certificates removed from `observedCertificates` (issue 9, item 3): by default nothing is
//! deleted (the extension's behaviour); with `akvvm.pruneRemovedCertificates` the next start
//! removes their version files and links, and leaves every other certificate alone.

use akvvm_testkit::harness::{Harness, PFX, cycle, snapshot};
use serde_json::{Value, json};

fn names(h: &Harness) -> Vec<String> {
    snapshot(&h.store()).into_iter().map(|(n, _)| n).collect()
}

async fn installed_web_and_api(h: &Harness) -> Value {
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    h.certificate("contoso", "api", "RSA", PFX);
    let json = h.settings_json(
        &["contoso"],
        vec![
            json!({"url": Harness::url("contoso", "web"), "customSymbolicLinkName": "web-current"}),
            json!(Harness::url("contoso", "api")),
        ],
    );
    assert!(cycle(&h.engine(&json)).await.complete());
    json
}

#[tokio::test]
async fn a_removed_certificate_keeps_its_files_by_default() {
    let h = Harness::start().await;
    let mut json = installed_web_and_api(&h).await;
    let before = names(&h);
    assert!(before.iter().any(|n| n == "web-current"), "{before:?}");
    json["secretsManagementSettings"]["observedCertificates"] =
        json!([Harness::url("contoso", "api")]);
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete());
    assert_eq!(names(&h), before, "nothing is deleted");
}

#[tokio::test]
async fn prune_removed_certificates_removes_their_files_and_links_only() {
    let h = Harness::start().await;
    let mut json = installed_web_and_api(&h).await;
    let before = names(&h);
    json["secretsManagementSettings"]["observedCertificates"] =
        json!([Harness::url("contoso", "api")]);
    json["akvvm"]["pruneRemovedCertificates"] = json!(true);
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete());
    let after = names(&h);
    let expected: Vec<String> = before
        .iter()
        .filter(|n| !n.starts_with("contoso.web") && n.as_str() != "web-current")
        .cloned()
        .collect();
    assert!(expected.iter().any(|n| n == "contoso.api"), "{before:?}");
    assert_ne!(expected, before, "web had files: {before:?}");
    assert_eq!(
        after, expected,
        "web's files and links are gone, api's stay"
    );
    // api still reads through its link.
    assert!(std::fs::read(h.store().join("contoso.api")).is_ok());
}
