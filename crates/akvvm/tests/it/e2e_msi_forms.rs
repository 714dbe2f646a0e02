//! `msiClientId` as a client id, an object id (`object_id:<GUID>`) or an ARM resource id, end
//! to end against the local vault's IMDS, which selects the identity by `client_id`,
//! `object_id` or `msi_res_id` as IMDS does (issue 9, item 3).

use akvvm::sync::CertOutcome;
use akvvm_emulator::IdentitySpec;
use akvvm_testkit::harness::{Harness, PFX, READER_ROLE, cycle};
use serde_json::json;

#[tokio::test]
async fn msi_client_id_may_be_an_object_id_or_a_resource_id() {
    let h = Harness::start_with(false).await;
    h.emulator.add_vault("contoso").unwrap();
    // Two user-assigned identities: IMDS needs to be told which one.
    let reader = h
        .emulator
        .add_user_identity(IdentitySpec {
            name: Some("web-identity".into()),
            ..IdentitySpec::default()
        })
        .unwrap();
    let other = h
        .emulator
        .add_user_identity(IdentitySpec {
            name: Some("other-identity".into()),
            ..IdentitySpec::default()
        })
        .unwrap();
    h.emulator
        .assign_roles("contoso", &reader.object_id, &[READER_ROLE])
        .unwrap();
    let version = h.certificate("contoso", "web", "RSA", PFX);
    let resource_id = reader.resource_id.clone().expect("a resource id");

    for msi_client_id in [
        reader.client_id.clone(),
        format!("object_id:{}", reader.object_id),
        resource_id.clone(),
        // ARM resource ids are case-insensitive.
        resource_id.to_uppercase().replace(
            "USERASSIGNEDIDENTITIES/WEB-IDENTITY",
            "userAssignedIdentities/web-identity",
        ),
    ] {
        let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
        json["authenticationSettings"]["msiClientId"] = json!(msi_client_id);
        let (_, diagnostics) = akvvm::settings::Settings::from_json_value(&json).unwrap();
        assert!(
            diagnostics.is_empty(),
            "{msi_client_id}: no warning: {diagnostics:?}"
        );
        std::fs::remove_dir_all(h.store()).ok();
        let report = cycle(&h.engine(&json)).await;
        assert!(
            matches!(&report.certificates[0].outcome, CertOutcome::Installed(i) if i.version == version),
            "{msi_client_id}: {report:?}"
        );
    }

    // The other identity by resource id: IMDS gives its token, Key Vault refuses it, and the
    // message names the identity by what the settings said.
    let other_id = other.resource_id.clone().unwrap();
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["authenticationSettings"]["msiClientId"] = json!(other_id);
    let report = cycle(&h.engine(&json)).await;
    let CertOutcome::Failed { code, message, .. } = &report.certificates[0].outcome else {
        panic!("expected 403: {report:?}");
    };
    assert!(code.contains("forbidden"), "{code}");
    assert!(
        message.contains(&format!("resource id {other_id}")),
        "names the identity: {message}"
    );

    // An object id no identity has: IMDS refuses it.
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["authenticationSettings"]["msiClientId"] =
        json!("object_id:00000000-0000-0000-0000-00000000abcd");
    let report = cycle(&h.engine(&json)).await;
    let CertOutcome::Failed { message, .. } = &report.certificates[0].outcome else {
        panic!("expected IMDS to refuse: {report:?}");
    };
    assert!(message.contains("Identity not found"), "{message}");
}

#[test]
fn anything_else_in_msi_client_id_is_an_error_saying_what_to_write() {
    for (value, says) in [
        ("web-identity", "is neither a client id"),
        (
            "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            "is not a user-assigned identity's resource id",
        ),
        ("object_id:web", "\"web\" is not a GUID"),
    ] {
        let json = json!({"secretsManagementSettings": {"observedCertificates": ["https://myvault.vault.azure.net/secrets/web"]},
            "authenticationSettings": {"msiEndpoint": "http://169.254.169.254/metadata/identity", "msiClientId": value}});
        let diagnostics = akvvm::settings::Settings::from_json_value(&json).expect_err(value);
        let error = diagnostics
            .iter()
            .find(|d| d.code == "bad-client-id")
            .unwrap_or_else(|| panic!("{value}: {diagnostics:?}"));
        assert!(error.message.contains(says), "{value}: {}", error.message);
        assert!(error.help.as_deref().unwrap().contains("object_id:<GUID>"));
    }
    // The documentation's placeholder: a warning, so that Microsoft's example stays valid.
    let json = json!({"secretsManagementSettings": {"observedCertificates": ["https://myvault.vault.azure.net/secrets/web"]},
        "authenticationSettings": {"msiEndpoint": "http://169.254.169.254/metadata/identity", "msiClientId": "xxxxxx-xxxx-xxxx-xxxx-xxxxxxxx"}});
    let (_, diagnostics) = akvvm::settings::Settings::from_json_value(&json).unwrap();
    assert_eq!(diagnostics[0].code, "client-id-placeholder");
}
