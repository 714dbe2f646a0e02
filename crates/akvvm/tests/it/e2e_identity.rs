//! End-to-end: the identities the agent authenticates as, against the local vault's IMDS and
//! Entra ID.

use akvvm::identity::IdentityError;
use akvvm::sync::CertOutcome;
use akvvm_emulator::{AppSpec, IdentitySpec};
use akvvm_testkit::harness::{Harness, PFX, READER_ROLE, cycle};
use serde_json::json;

#[tokio::test]
async fn several_user_assigned_identities_need_msi_client_id() {
    let h = Harness::start_with(false).await;
    h.emulator.add_vault("contoso").unwrap();
    let first = h
        .emulator
        .add_user_identity(IdentitySpec {
            name: Some("web-identity".into()),
            ..IdentitySpec::default()
        })
        .unwrap();
    let second = h
        .emulator
        .add_user_identity(IdentitySpec {
            name: Some("other-identity".into()),
            ..IdentitySpec::default()
        })
        .unwrap();
    h.emulator
        .assign_roles("contoso", &first.object_id, &[READER_ROLE])
        .unwrap();
    let version = h.certificate("contoso", "web", "RSA", PFX);

    // No msiClientId: IMDS cannot tell which identity is meant.
    let json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    let report = cycle(&h.engine(&json)).await;
    let CertOutcome::Failed {
        code,
        message,
        installed,
    } = &report.certificates[0].outcome
    else {
        panic!("expected an identity error: {report:?}");
    };
    assert!(installed.is_none());
    // IMDS refused the token: that identity error's code passes through.
    let imds_refused = IdentityError::Imds {
        endpoint: String::new(),
        identity: String::new(),
        status: 400,
        error: None,
        description: None,
    };
    assert_eq!(code, imds_refused.code(), "{message}");
    assert!(
        message.contains("Multiple user assigned identities"),
        "IMDS's own words: {message}"
    );

    // The other identity has no role: 403 that names it.
    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["authenticationSettings"]["msiClientId"] = json!(second.client_id);
    let report = cycle(&h.engine(&json)).await;
    let CertOutcome::Failed { code, message, .. } = &report.certificates[0].outcome else {
        panic!("expected 403: {report:?}");
    };
    assert!(code.contains("forbidden"), "{code}");
    assert!(
        message.contains(&second.client_id),
        "names the identity: {message}"
    );

    // msiClientId names the identity that has the role: installed.
    json["authenticationSettings"]["msiClientId"] = json!(first.client_id);
    let report = cycle(&h.engine(&json)).await;
    assert!(report.complete(), "{report:?}");
    assert!(
        matches!(&report.certificates[0].outcome, CertOutcome::Installed(i) if i.version == version)
    );
}

#[tokio::test]
async fn the_bootstrap_certificate_authenticates_an_entra_application() {
    let h = Harness::start_with(false).await;
    h.emulator.add_vault("contoso").unwrap();
    let app = h
        .emulator
        .register_app(AppSpec {
            display_name: Some("cloud-service".into()),
            subject_name: Some("bootstrap.cloudapp.example".into()),
            ..AppSpec::default()
        })
        .unwrap();
    h.emulator
        .assign_roles("contoso", &app.client_id, &[READER_ROLE])
        .unwrap();
    let version = h.certificate("contoso", "web", "RSA", PFX);

    // Where the guest agent puts osProfile.secrets certificates: <THUMBPRINT>.crt and .prv.
    let waagent = h.dir.path().join("waagent");
    std::fs::create_dir_all(&waagent).unwrap();
    std::fs::write(
        waagent.join(format!("{}.crt", app.thumbprint)),
        &app.certificate_pem,
    )
    .unwrap();
    std::fs::write(
        waagent.join(format!("{}.prv", app.thumbprint)),
        app.private_key_pem.as_deref().expect("generated key"),
    )
    .unwrap();

    let mut json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "web"))]);
    json["authenticationSettings"] = json!({
        "clientId": app.client_id,
        "clientCertificateSubjectName": "bootstrap.cloudapp.example"
    });
    json["akvvm"]["bootstrapCertificateDirectories"] = json!([waagent.display().to_string()]);
    let report = cycle(&h.engine(&json)).await;
    assert!(report.complete(), "{report:?}");
    assert!(
        matches!(&report.certificates[0].outcome, CertOutcome::Installed(i) if i.version == version)
    );
    assert!(
        h.emulator.request_count(
            "entra",
            &format!("/{}/oauth2/v2.0/token", h.emulator.default_tenant())
        ) >= 1
    );
}
