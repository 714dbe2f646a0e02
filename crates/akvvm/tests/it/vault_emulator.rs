//! The vault client and both identities against the project's local vault (akvvm-emulator),
//! started in-process on loopback: Key Vault and Entra ID over https, IMDS over http.

use std::sync::Arc;

use akvvm::http::{HostOverride, HttpOptions, RetryPolicy};
use akvvm::identity::{
    BootstrapCertificateCredential, BootstrapOptions, CertificateSource, Identity,
    ManagedIdentityCredential, ManagedIdentityOptions, find_bootstrap_certificate,
};
use akvvm::settings::MsiEndpoint;
use akvvm::vault::{VaultClient, VaultOptions};
use akvvm_emulator::{
    AppSpec, Emulator, EmulatorConfig, IdentitySpec, RunningEmulator, SecretSpec,
};
use url::Url;

fn secret(value: &str) -> SecretSpec {
    SecretSpec {
        value: value.to_owned(),
        content_type: Some("application/x-pem-file".to_owned()),
        ..SecretSpec::default()
    }
}

fn http_for(emulator: &RunningEmulator, vault: &str) -> HttpOptions {
    HttpOptions {
        extra_ca_pems: vec![emulator.ca_pem().to_owned()],
        // A bare IP: the port comes from the vault URL.
        host_overrides: vec![
            HostOverride::parse(&format!("{vault}.vault.azure.net"), "127.0.0.1").unwrap(),
        ],
        ..HttpOptions::default()
    }
}

fn options(http: HttpOptions) -> VaultOptions {
    VaultOptions {
        http,
        retry: RetryPolicy {
            initial_delay: std::time::Duration::from_millis(5),
            max_delay: std::time::Duration::from_millis(20),
            max_attempts: 3,
            ..RetryPolicy::key_vault()
        },
        api_version: None,
        preauthenticate: false,
        metrics: None,
    }
}

#[tokio::test]
async fn managed_identities_read_rotated_disabled_and_deleted_secrets() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault("kvtest").unwrap();
    emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    let user = emulator
        .add_user_identity(IdentitySpec {
            name: Some("web-reader".into()),
            ..IdentitySpec::default()
        })
        .unwrap();
    emulator
        .assign_roles("kvtest", &user.client_id, &["Key Vault Secrets User"])
        .unwrap();
    emulator
        .set_secret("kvtest", "web", secret("first"))
        .unwrap();
    emulator.set_secret("kvtest", "old", secret("x")).unwrap();

    let imds = Url::parse(&emulator.imds_url()).unwrap();
    let vault_url = Url::parse(&emulator.vault_url("kvtest")).unwrap();
    let opts = options(http_for(&emulator, "kvtest"));
    let mi_options = || ManagedIdentityOptions {
        retry: RetryPolicy {
            initial_delay: std::time::Duration::from_millis(5),
            max_delay: std::time::Duration::from_millis(20),
            max_attempts: 2,
            ..RetryPolicy::imds()
        },
        ..ManagedIdentityOptions::default()
    };

    let reader = Identity::Managed(Arc::new(
        ManagedIdentityCredential::new(
            &MsiEndpoint::new(&imds),
            Some(&user.client_id),
            &HttpOptions::default(),
            mi_options(),
        )
        .unwrap(),
    ));
    let client = VaultClient::new(&vault_url, &reader, &opts).unwrap();
    let first = client.get_latest("web").await.unwrap();
    assert!(
        first.value.as_str() == "first",
        "not the expected secret value (not shown)"
    );
    assert_eq!(first.name, "web");
    assert_eq!(
        first.content_type.as_deref(),
        Some("application/x-pem-file")
    );
    assert_eq!(client.tenant(), Some(emulator.default_tenant()));

    // Rotation: a new version is what the versionless GET returns; the old one stays readable.
    emulator
        .set_secret("kvtest", "web", secret("second"))
        .unwrap();
    let second = client.get_latest("web").await.unwrap();
    assert!(
        second.value.as_str() == "second",
        "not the expected secret value (not shown)"
    );
    assert_ne!(second.version, first.version);
    let pinned = client.get_version("web", &first.version).await.unwrap();
    assert!(
        pinned.value.as_str() == "first",
        "not the expected secret value (not shown)"
    );

    // Disabled and deleted secrets.
    emulator
        .set_secret_enabled("kvtest", "web", None, false)
        .unwrap();
    let err = client.get_latest("web").await.unwrap_err();
    assert_eq!(err.code(), "vault.secret_disabled", "{err}");
    emulator.delete_secret("kvtest", "old").unwrap();
    let err = client.get_latest("old").await.unwrap_err();
    assert_eq!(err.code(), "vault.secret_not_found", "{err}");

    // The system-assigned identity has no role on this vault.
    let system = Identity::Managed(Arc::new(
        ManagedIdentityCredential::new(
            &MsiEndpoint::new(&imds),
            None,
            &HttpOptions::default(),
            mi_options(),
        )
        .unwrap(),
    ));
    let denied = VaultClient::new(&vault_url, &system, &opts).unwrap();
    let err = denied.get_latest("web").await.unwrap_err();
    assert_eq!(err.code(), "vault.forbidden", "{err}");
    let message = err.to_string();
    assert!(
        message.contains("system-assigned managed identity"),
        "{message}"
    );
    assert!(message.contains("kvtest.vault.azure.net"), "{message}");
    assert!(message.contains("Key Vault Secrets User"), "{message}");
}

#[tokio::test]
async fn bootstrap_certificate_identity_reads_through_the_local_entra() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault("paas").unwrap();
    let app = emulator
        .register_app(AppSpec {
            display_name: Some("cloud-service".into()),
            subject_name: Some("bootstrap.cloudapp.net".into()),
            ..AppSpec::default()
        })
        .unwrap();
    emulator
        .assign_roles("paas", &app.client_id, &["Key Vault Secrets User"])
        .unwrap();
    emulator
        .set_secret("paas", "cert", secret("payload"))
        .unwrap();

    // The guest agent's layout: <THUMBPRINT>.crt + <THUMBPRINT>.prv.
    let waagent = tempfile::tempdir().unwrap();
    std::fs::write(
        waagent.path().join(format!("{}.crt", app.thumbprint)),
        &app.certificate_pem,
    )
    .unwrap();
    std::fs::write(
        waagent.path().join(format!("{}.prv", app.thumbprint)),
        app.private_key_pem.as_deref().unwrap(),
    )
    .unwrap();
    let certificate = find_bootstrap_certificate(
        "bootstrap.cloudapp.net",
        &[CertificateSource::Pairs(waagent.path().to_owned())],
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(certificate.thumbprint, app.thumbprint);

    let http = HttpOptions {
        extra_ca_pems: vec![emulator.ca_pem().to_owned()],
        ..http_for(&emulator, "paas")
    };
    let credential = BootstrapCertificateCredential::new(
        &Url::parse(&emulator.authority_host()).unwrap(),
        &app.client_id,
        certificate,
        &http,
        BootstrapOptions::default(),
    )
    .unwrap();
    let identity = Identity::Bootstrap(Arc::new(credential));
    let client = VaultClient::new(
        &Url::parse(&emulator.vault_url("paas")).unwrap(),
        &identity,
        &options(http),
    )
    .unwrap();
    let bundle = client.get_latest("cert").await.unwrap();
    assert!(
        bundle.value.as_str() == "payload",
        "not the expected secret value (not shown)"
    );
    assert_eq!(client.tenant(), Some(app.tenant_id.clone()));
}

#[tokio::test]
async fn settings_build_the_identity_and_the_vault_client() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault("fromsettings").unwrap();
    let user = emulator.add_user_identity(IdentitySpec::default()).unwrap();
    emulator
        .assign_roles("fromsettings", &user.client_id, &["Key Vault Secrets User"])
        .unwrap();
    emulator
        .set_secret("fromsettings", "web", secret("from-settings"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("local-vault-ca.pem");
    std::fs::write(&ca_file, emulator.ca_pem()).unwrap();

    let json = serde_json::json!({
        "secretsManagementSettings": {
            "pollingIntervalInS": "3600",
            "certificateStoreLocation": dir.path().join("store"),
            "observedCertificates": [format!("{}/secrets/web", emulator.vault_url("fromsettings"))]
        },
        "authenticationSettings": {
            "msiEndpoint": emulator.imds_url(),
            "msiClientId": user.client_id
        },
        "akvvm": {
            "caCertificates": [ca_file],
            "resolve": { "fromsettings.vault.azure.net": "127.0.0.1" }
        }
    });
    let report = akvvm::settings::parse(&json, &akvvm::settings::ParseOptions::default());
    let settings = report
        .settings
        .unwrap_or_else(|| panic!("settings rejected: {:?}", report.diagnostics));

    let http = HttpOptions::from_settings(&settings.agent);
    let identity = Identity::from_settings(&settings, &http).unwrap();
    assert!(identity.describe().contains(&user.client_id));
    let observed = &settings.observed[0].url;
    let client = VaultClient::new(&observed.vault_url, &identity, &options(http)).unwrap();
    let bundle = client.get_latest(&observed.name).await.unwrap();
    assert!(
        bundle.value.as_str() == "from-settings",
        "not the expected secret value (not shown)"
    );
}

#[tokio::test]
async fn paas_settings_find_the_bootstrap_certificate_in_the_store() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault("paassettings").unwrap();
    let app = emulator
        .register_app(AppSpec {
            subject_name: Some("boot.paas.example".into()),
            ..AppSpec::default()
        })
        .unwrap();
    emulator
        .assign_roles("paassettings", &app.client_id, &["Key Vault Secrets User"])
        .unwrap();
    emulator
        .set_secret("paassettings", "cert", secret("paas-payload"))
        .unwrap();

    // The bootstrap certificate installed in the store, in akvvm's layout (certificate, key).
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(
        store.join("bootvault.bootstrap.0123"),
        format!(
            "{}{}",
            app.certificate_pem,
            app.private_key_pem.as_deref().unwrap()
        ),
    )
    .unwrap();
    let ca_file = dir.path().join("local-vault-ca.pem");
    std::fs::write(&ca_file, emulator.ca_pem()).unwrap();

    let json = serde_json::json!({
        "secretsManagementSettings": {
            "certificateStoreLocation": store,
            "observedCertificates": [format!("{}/secrets/cert", emulator.vault_url("paassettings"))]
        },
        "authenticationSettings": {
            "clientId": app.client_id,
            "clientCertificateSubjectName": "boot.paas.example"
        },
        "akvvm": {
            "caCertificates": [ca_file],
            "resolve": { "paassettings.vault.azure.net": "127.0.0.1" },
            "authorityHost": emulator.authority_host(),
            "bootstrapCertificateDirectories": [dir.path().join("no-waagent-here")]
        }
    });
    let report = akvvm::settings::parse(&json, &akvvm::settings::ParseOptions::default());
    let settings = report
        .settings
        .unwrap_or_else(|| panic!("settings rejected: {:?}", report.diagnostics));
    let http = HttpOptions::from_settings(&settings.agent);
    let identity = Identity::from_settings(&settings, &http).unwrap();
    let description = identity.describe();
    assert!(description.contains(&app.client_id), "{description}");
    assert!(description.contains(&app.thumbprint), "{description}");
    let observed = &settings.observed[0].url;
    let client = VaultClient::new(&observed.vault_url, &identity, &options(http)).unwrap();
    let bundle = client.get_latest(&observed.name).await.unwrap();
    assert!(
        bundle.value.as_str() == "paas-payload",
        "not the expected secret value (not shown)"
    );
    assert_eq!(client.tenant(), Some(app.tenant_id.clone()));
}
