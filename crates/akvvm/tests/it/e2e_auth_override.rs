//! `authenticationOverride` (4.x, issue 9 item 2) end to end against the local vault: each
//! certificate is fetched with its own identity's token (the local vault records which identity
//! made each request), each identity asks IMDS once (its token is cached and shared), the list
//! check runs per vault and identity, and a 403 names the identity that was refused, in the
//! error and in the status file's line for that certificate.

use akvvm::sync::CertOutcome;
use akvvm_emulator::IdentitySpec;
use akvvm_testkit::harness::{Harness, PFX, READER_ROLE, cycle};
use serde_json::json;

const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";

#[tokio::test]
async fn each_certificate_is_fetched_with_its_own_identity() {
    let h = Harness::start().await;
    h.vault("contoso");
    let system = h
        .emulator
        .read(|m| m.system_identity.clone())
        .expect("system identity");
    let web_identity = h
        .emulator
        .add_user_identity(IdentitySpec {
            name: Some("web-identity".into()),
            ..IdentitySpec::default()
        })
        .unwrap();
    h.emulator
        .assign_roles("contoso", &web_identity.object_id, &[READER_ROLE])
        .unwrap();
    let api_version = h.certificate("contoso", "api", "RSA", PFX);
    let web_version = h.certificate("contoso", "web", "RSA", PFX);
    let db_version = h.certificate("contoso", "db", "RSA", PFX);
    let mail_version = h.certificate("contoso", "mail", "RSA", PFX);
    // Key Vault's clock past the versions' `updated`, so that the first GETs record it and the
    // next cycle may list.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    // `web`, `db` and `mail` by the user-assigned identity, `api` by the system-assigned one.
    let json = h.settings_json(
        &["contoso"],
        vec![
            json!({"url": Harness::url("contoso", "api")}),
            json!({"url": Harness::url("contoso", "web"),
                   "authenticationOverride": {"msiClientId": web_identity.client_id}}),
            json!({"url": Harness::url("contoso", "db"),
                   "authenticationOverride": {"msiClientId": web_identity.client_id}}),
            json!({"url": Harness::url("contoso", "mail"),
                   "authenticationOverride": {"msiClientId": web_identity.client_id}}),
        ],
    );
    let (_, diagnostics) = akvvm::settings::Settings::from_json_value(&json).unwrap();
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    h.emulator.reset_counters();
    let engine = h.engine(&json);
    let report = cycle(&engine).await;
    assert!(report.complete(), "{report:?}");
    for (cert, version) in [
        (&report.certificates[0], &api_version),
        (&report.certificates[1], &web_version),
        (&report.certificates[2], &db_version),
        (&report.certificates[3], &mail_version),
    ] {
        assert!(
            matches!(&cert.outcome, CertOutcome::Installed(i) if i.version == *version),
            "{report:?}"
        );
    }
    // Which identity made each GET, as the local vault saw the tokens.
    let gets = |name: &str, who: &str| {
        h.emulator
            .caller_count("contoso", &format!("/secrets/{name}"), who)
    };
    assert_eq!(
        gets("api", &system.object_id),
        1,
        "{:?}",
        h.emulator.callers()
    );
    assert_eq!(gets("api", &web_identity.object_id), 0);
    for name in ["web", "db", "mail"] {
        assert_eq!(gets(name, &web_identity.object_id), 1, "{name}");
        assert_eq!(gets(name, &system.object_id), 0, "{name}");
    }
    // One token request per identity: the three certificates of one identity share its token.
    assert_eq!(h.emulator.request_count("imds", TOKEN_PATH), 2);

    // The next cycle: the list check runs per identity. `web`, `db` and `mail` (three
    // candidates of the user-assigned identity, a one-page vault) are confirmed by that
    // identity's list; `api` (the system identity's one candidate) is cheaper to GET than to
    // list. No new token is asked for.
    h.emulator.reset_counters();
    assert!(cycle(&engine).await.complete());
    let lists = |who: &str| h.emulator.caller_count("contoso", "/secrets", who);
    assert_eq!(lists(&web_identity.object_id), 1);
    assert_eq!(lists(&system.object_id), 0);
    assert_eq!(
        gets("web", &web_identity.object_id),
        0,
        "{:?}",
        h.emulator.callers()
    );
    assert_eq!(gets("mail", &web_identity.object_id), 0);
    assert_eq!(gets("db", &web_identity.object_id), 0);
    assert_eq!(
        gets("api", &system.object_id),
        1,
        "{:?}",
        h.emulator.callers()
    );
    assert_eq!(h.emulator.request_count("imds", TOKEN_PATH), 0);
}

#[tokio::test]
async fn a_403_names_the_override_identity_in_the_error_and_the_status() {
    let h = Harness::start().await;
    h.vault("contoso");
    // An identity IMDS knows but the vault does not let in.
    let outsider = h
        .emulator
        .add_user_identity(IdentitySpec {
            name: Some("outsider".into()),
            ..IdentitySpec::default()
        })
        .unwrap();
    h.certificate("contoso", "api", "RSA", PFX);
    h.certificate("contoso", "web", "RSA", PFX);
    let resource_id = outsider.resource_id.clone().expect("a resource id");
    for (msi_client_id, named) in [
        (
            outsider.client_id.clone(),
            format!("client id {}", outsider.client_id),
        ),
        (
            format!("object_id:{}", outsider.object_id),
            format!("object id {}", outsider.object_id),
        ),
        (resource_id.clone(), format!("resource id {resource_id}")),
    ] {
        std::fs::remove_dir_all(h.store()).ok();
        let json = h.settings_json(
            &["contoso"],
            vec![
                json!({"url": Harness::url("contoso", "api")}),
                json!({"url": Harness::url("contoso", "web"),
                       "authenticationOverride": {"msiClientId": msi_client_id}}),
            ],
        );
        h.emulator.reset_counters();
        let report = cycle(&h.engine(&json)).await;
        assert!(
            matches!(report.certificates[0].outcome, CertOutcome::Installed(_)),
            "the system identity's certificate installs: {report:?}"
        );
        let CertOutcome::Failed { code, message, .. } = &report.certificates[1].outcome else {
            panic!("expected a 403: {report:?}");
        };
        assert_eq!(code, "vault.forbidden");
        assert!(
            message.contains(&format!("the user-assigned managed identity with {named}")),
            "{message}"
        );
        // The status file's line for that certificate.
        let line = report.certificates[1].substatus(time::OffsetDateTime::now_utc(), 30);
        assert_eq!(line.name, Harness::url("contoso", "web"));
        assert!(
            line.message.contains("[vault.forbidden]"),
            "{}",
            line.message
        );
        assert!(line.message.contains(&named), "{}", line.message);
        assert_eq!(
            h.emulator
                .caller_count("contoso", "/secrets/web", &outsider.object_id),
            1,
            "the GET went with the outsider's token"
        );
        assert!(!h.store().join("contoso.web").exists());
    }

    // The system identity refused: the message says "system-assigned".
    h.emulator.revoke_roles("contoso", "system").unwrap();
    std::fs::remove_dir_all(h.store()).ok();
    let json = h.settings_json(&["contoso"], vec![json!(Harness::url("contoso", "api"))]);
    let report = cycle(&h.engine(&json)).await;
    let CertOutcome::Failed { message, .. } = &report.certificates[0].outcome else {
        panic!("expected a 403: {report:?}");
    };
    assert!(
        message.contains("the system-assigned managed identity"),
        "{message}"
    );
}

#[test]
fn an_override_is_checked_like_msi_client_id() {
    let base = |over: serde_json::Value| {
        json!({"secretsManagementSettings": {"observedCertificates": [
            {"url": "https://myvault.vault.azure.net/secrets/web", "authenticationOverride": over}]}})
    };
    let guid = "c7373ae5-91c2-4165-8ab6-7381d6e75619";
    for (value, expected) in [
        (
            guid.to_owned(),
            akvvm::identity::ManagedIdentityId::ClientId(guid.into()),
        ),
        (
            format!("object_id:{guid}"),
            akvvm::identity::ManagedIdentityId::ObjectId(guid.into()),
        ),
    ] {
        let (settings, diagnostics) =
            akvvm::settings::Settings::from_json_value(&base(json!({"msiClientId": value})))
                .unwrap();
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(settings.observed[0].authentication_override, Some(expected));
    }
    for (over, code, path) in [
        (
            json!({"msiClientId": "web-identity"}),
            "bad-client-id",
            ".msiClientId",
        ),
        (json!({}), "missing-key", ".msiClientId"),
        (
            json!({"msiClientId": " "}),
            "empty-client-id",
            ".msiClientId",
        ),
        (
            json!({"msiClientId": guid, "msiEndpoint": "http://x"}),
            "misplaced-key",
            ".msiEndpoint",
        ),
        (json!(guid), "wrong-type", ""),
    ] {
        let diagnostics = akvvm::settings::Settings::from_json_value(&base(over.clone()))
            .expect_err(&over.to_string());
        let found = diagnostics.iter().find(|d| d.code == code);
        let found = found.unwrap_or_else(|| panic!("{over}: {diagnostics:?}"));
        assert_eq!(
            found.path,
            format!(
                "settings.secretsManagementSettings.observedCertificates[0].authenticationOverride{path}"
            ),
            "{over}"
        );
    }
    // Under bootstrap-certificate authentication there is no managed identity to pick.
    let mut json = base(json!({"msiClientId": guid}));
    json["authenticationSettings"] =
        json!({"clientId": guid, "clientCertificateSubjectName": "bootstrap.example.com"});
    let diagnostics = akvvm::settings::Settings::from_json_value(&json).unwrap_err();
    assert!(
        diagnostics
            .iter()
            .any(|d| d.code == "override-needs-managed-identity"),
        "{diagnostics:?}"
    );
}
