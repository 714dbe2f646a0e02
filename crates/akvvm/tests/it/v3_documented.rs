//! The v3 extension as Microsoft documents it (issue 9, item 1): an `acls` entry naming a user
//! *and* a group (`{"user": "app1", "group": "appGroup1"}` in the documented example) grants read
//! access to each of them, end to end against the local vault. Needs root: the test creates the
//! user and the group.

use akvvm_cert::store::PosixAcl;
use akvvm_testkit::accounts::{TempGroup, TempUser};
use akvvm_testkit::harness::{Harness, PFX, cycle};
use serde_json::json;

#[test]
fn an_acls_entry_naming_a_user_and_a_group_grants_both() {
    let json = json!({"secretsManagementSettings": {
        "pollingIntervalInS": "3600",
        "certificateStoreLocation": "/var/lib/waagent/Microsoft.Azure.KeyVault.Store",
        "aclEnabled": true,
        "observedCertificates": [{
            "url": "https://contoso.vault.azure.net/secrets/web",
            "acls": [{"user": "app1", "group": "appGroup1"}, {"user": "app1"}],
        }],
    }});
    let (settings, diagnostics) = akvvm::settings::Settings::from_json_value(&json)
        .unwrap_or_else(|d| panic!("the documented acls shape is refused: {d:?}"));
    assert!(
        diagnostics.is_empty(),
        "no warning for a documented shape: {diagnostics:?}"
    );
    let acls: Vec<String> = settings.observed[0]
        .acls
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(acls, ["user:app1", "group:appGroup1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_and_a_group_in_one_acls_entry_both_get_read_access_on_install() {
    // It creates a user and a group.
    if !akvvm::cert::machine::require_root(
        "a_user_and_a_group_in_one_acls_entry_both_get_read_access_on_install",
    ) {
        return;
    }
    let user = TempUser::create("akvu", None);
    let group = TempGroup::create("akvg", None);
    let h = Harness::start().await;
    h.vault("contoso");
    h.certificate("contoso", "web", "RSA", PFX);
    let mut json = h.settings_json(
        &["contoso"],
        vec![json!({
            "url": Harness::url("contoso", "web"),
            "acls": [{"user": user.name, "group": group.name}],
        })],
    );
    json["secretsManagementSettings"]["aclEnabled"] = json!(true);
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete(), "web installs");
    let file = h.store().join("contoso.web");
    let acl = PosixAcl::read(&file)
        .unwrap()
        .expect("the installed file has an ACL");
    assert_eq!(acl.users, [(user.uid, 4)].into(), "the user reads");
    assert_eq!(acl.groups, [(group.gid, 4)].into(), "the group reads");
    assert_eq!(acl.other, 0, "nobody else");
    let dir = PosixAcl::read(&h.store())
        .unwrap()
        .expect("the store has an ACL");
    assert_eq!(dir.users, [(user.uid, 1)].into(), "the user traverses");
    assert_eq!(dir.groups, [(group.gid, 1)].into(), "the group traverses");
}
