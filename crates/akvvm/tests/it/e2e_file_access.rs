//! Per-certificate `owner`, `group` and `mode` of the installed files (the certificate's
//! `akvvm` object; issue 9, item 3), end to end against the local vault with a real user and
//! group made for the test (it needs root): PostgreSQL's 0640 with its group, applied again to a
//! new version, the group given traverse on the store; and what validation says about bad values.

use std::os::unix::fs::MetadataExt;

use akvvm::validate::validate_value;
use akvvm_cert::store::PosixAcl;
use akvvm_testkit::accounts::{TempGroup, TempUser};
use akvvm_testkit::harness::{Harness, PFX, cycle};
use serde_json::{Map, Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn owner_group_and_mode_apply_to_every_new_version() {
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

    // An unknown user: an error for this machine's settings...
    let unknown = json!({"owner": "akvvm-no-such-user", "group": "akvvm-no-such-group"});
    let found = codes(&settings_with(unknown.clone()));
    let errors: Vec<_> = found
        .iter()
        .filter(|(s, c, _)| s == "error" && *c == "unknown-file-owner")
        .collect();
    assert_eq!(errors.len(), 2, "{found:?}");
    assert!(
        errors[0]
            .2
            .contains("no user named \"akvvm-no-such-user\" exists on this machine")
    );
    // ... a warning in an ARM document, deployed to another machine.
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
