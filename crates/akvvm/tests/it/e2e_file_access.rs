//! Per-certificate `owner`, `group` and `mode` of the installed files (the certificate's
//! `akvvm` object; issue 9, item 3), end to end against the local vault with a real user and
//! group made for the test (it needs root): PostgreSQL's 0640 with its group, applied again to a
//! new version, the group given traverse on the store; and what validation says about bad values.

use std::os::unix::fs::MetadataExt;

use akvvm::sync::CertOutcome;
use akvvm::validate::validate_value;
use akvvm_cert::store::PosixAcl;
use akvvm_testkit::accounts::{TempGroup, TempUser};
use akvvm_testkit::harness::{Harness, PFX, cycle};
use serde_json::{Map, Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn owner_group_and_mode_apply_to_every_new_version() {
    // It creates a user and a group, and gives files away.
    if !akvvm::cert::machine::require_root("owner_group_and_mode_apply_to_every_new_version") {
        return;
    }
    let user = TempUser::create("akvo", None);
    let group = TempGroup::create("akvpg", None);
    let h = Harness::start().await;
    h.vault("contoso");
    let first = h.certificate("contoso", "db", "RSA", PFX);
    let json = h.settings_json(
        &["contoso"],
        vec![json!({
            "url": Harness::url("contoso", "db"),
            "akvvm": {"owner": user.name, "group": group.name, "mode": "0640"},
        })],
    );
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete());
    let check = |version: &str| {
        let file = h.store().join(format!("contoso.db.{version}"));
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.uid(), user.uid, "owner of {version}");
        assert_eq!(meta.gid(), group.gid, "group of {version}");
        assert_eq!(meta.mode() & 0o777, 0o640, "mode of {version}");
    };
    check(&first);
    // The group (and the owner) may reach the file through the store directory.
    let dir = PosixAcl::read(&h.store())
        .unwrap()
        .expect("the store has an ACL");
    assert_eq!(dir.groups, [(group.gid, 1)].into());
    assert_eq!(dir.users, [(user.uid, 1)].into());
    assert_eq!(dir.other, 0);

    // A new version gets the same.
    let second = h.certificate("contoso", "db", "RSA", PFX);
    assert!(cycle(&engine).await.complete());
    check(&second);
    assert_eq!(
        std::fs::read_link(h.store().join("contoso.db"))
            .unwrap()
            .to_string_lossy(),
        format!("contoso.db.{second}")
    );
}

/// An owner a service's package has not created yet holds back only its own certificate: the
/// others install, this one fails with `store.unknown_user` on each check, and installs once
/// the user exists, without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn an_owner_not_created_yet_holds_back_only_its_certificate() {
    // It creates the user, and gives files away.
    if !akvvm::cert::machine::require_root(
        "an_owner_not_created_yet_holds_back_only_its_certificate",
    ) {
        return;
    }
    let name = format!("akvlate{}", std::process::id());
    let h = Harness::start().await;
    h.vault("contoso");
    let web = h.certificate("contoso", "web", "RSA", PFX);
    let db = h.certificate("contoso", "db", "RSA", PFX);
    let json = h.settings_json(
        &["contoso"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!({"url": Harness::url("contoso", "db"), "akvvm": {"owner": name, "mode": "0600"}}),
        ],
    );
    let engine = h.engine(&json);
    let report = cycle(&engine).await;
    assert!(
        matches!(&report.certificates[0].outcome, CertOutcome::Installed(i) if i.version == web),
        "{report:?}"
    );
    let CertOutcome::Failed { code, message, .. } = &report.certificates[1].outcome else {
        panic!("expected the owner to be missing: {report:?}");
    };
    assert_eq!(code, "store.unknown_user");
    assert!(message.contains(&name), "{message}");
    assert!(!h.store().join(format!("contoso.db.{db}")).exists());

    let user = TempUser::create("unused", Some(&name));
    let report = cycle(&engine).await;
    assert!(report.complete(), "{report:?}");
    let meta = std::fs::metadata(h.store().join(format!("contoso.db.{db}"))).unwrap();
    assert_eq!(meta.uid(), user.uid);
}

fn settings_with(options: Value) -> Value {
    json!({"secretsManagementSettings": {"observedCertificates": [
        {"url": "https://contoso.vault.azure.net/secrets/db", "akvvm": options}
    ]}})
}

fn codes(value: &Value) -> Vec<(String, &'static str, String)> {
    let report = validate_value(value, Map::new());
    report
        .errors()
        .map(|d| ("error".to_owned(), d.code, d.message.clone()))
        .chain(
            report
                .warnings()
                .map(|d| ("warning".to_owned(), d.code, d.message.clone())),
        )
        .collect()
}

#[test]
fn bad_modes_and_unknown_accounts_are_reported() {
    for (mode, says) in [
        ("0644", "lets others read the certificate file"),
        ("0660", "the group may at most read"),
        ("0040", "the owner must read"),
        ("rw-r-----", "is not an octal mode"),
    ] {
        let found = codes(&settings_with(json!({"mode": mode})));
        assert!(
            found
                .iter()
                .any(|(s, c, m)| s == "error" && *c == "bad-file-mode" && m.contains(says)),
            "{mode}: {found:?}"
        );
    }
    assert!(codes(&settings_with(json!({"mode": "0640", "group": "root"}))).is_empty());

    // An unknown user: a warning for this machine's settings (the agent still installs the other
    // certificates; this one waits for the account)...
    let unknown = json!({"owner": "akvvm-no-such-user", "group": "akvvm-no-such-group"});
    let found = codes(&settings_with(unknown.clone()));
    assert!(!found.iter().any(|(s, _, _)| s == "error"), "{found:?}");
    let warnings: Vec<_> = found
        .iter()
        .filter(|(s, c, _)| s == "warning" && *c == "unknown-file-owner")
        .collect();
    assert_eq!(warnings.len(), 2, "{found:?}");
    assert!(
        warnings[0]
            .2
            .contains("no user named \"akvvm-no-such-user\" exists on this machine")
    );
    // ... and in an ARM document, deployed to another machine.
    let resource = json!({
        "type": "Microsoft.Compute/virtualMachines/extensions",
        "name": "KeyVaultForLinux",
        "apiVersion": "2022-11-01",
        "properties": {
            "publisher": "Microsoft.Azure.KeyVault",
            "type": "KeyVaultForLinux",
            "typeHandlerVersion": "3.0",
            "settings": settings_with(unknown),
        }
    });
    let found = codes(&resource);
    assert!(!found.iter().any(|(s, _, _)| s == "error"), "{found:?}");
    assert_eq!(
        found
            .iter()
            .filter(|(_, c, _)| *c == "unknown-file-owner")
            .count(),
        2,
        "{found:?}"
    );
}
