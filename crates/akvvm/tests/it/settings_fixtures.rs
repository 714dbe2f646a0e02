//! Valid settings fixtures, loaded with `Settings::load` and compared with fully spelled-out
//! expected values.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use akvvm::settings::{
    AclEntry, AgentOptions, Authentication, CertificateOptions, LoadError, LogEndpoint,
    MsiEndpoint, ReloadHook, ResolveTarget, SecretUrl, Settings, Shape,
};
use akvvm_testkit::fixtures;
use url::Url;

fn url(s: &str) -> SecretUrl {
    SecretUrl::parse(s).unwrap()
}

fn imds(client_id: Option<&str>) -> Authentication {
    Authentication::ManagedIdentity {
        endpoint: MsiEndpoint::new(
            &Url::parse("http://169.254.169.254/metadata/identity").unwrap(),
        ),
        client_id: client_id.map(akvvm::identity::ManagedIdentityId::parse_lenient),
    }
}

const STORE: &str = "/var/lib/waagent/Microsoft.Azure.KeyVault.Store";

#[test]
fn v1_flat() {
    let s = Settings::load(&fixtures::path("settings/valid/v1-flat.json")).unwrap();
    assert_eq!(s.shape, Shape::V1);
    assert_eq!(s.polling_interval, Duration::from_secs(600));
    assert!(!s.require_initial_sync);
    assert!(!s.acl_enabled);
    assert_eq!(s.store, PathBuf::from("/etc/ssl/keyvault"));
    assert_eq!(s.certificate_store_name, "MY");
    assert_eq!(s.authentication, imds(None));
    assert_eq!(s.logging, None);
    assert_eq!(s.agent, AgentOptions::default());
    assert_eq!(s.observed.len(), 2);
    let www = &s.observed[0];
    assert_eq!(
        www.url,
        url("https://contoso-prod.vault.azure.net/secrets/www-contoso-com")
    );
    assert_eq!(www.url.vault_name, "contoso-prod");
    assert_eq!(www.url.version, None);
    assert_eq!(www.store_dir, PathBuf::from("/etc/ssl/keyvault"));
    assert_eq!(
        www.stable_link(),
        PathBuf::from("/etc/ssl/keyvault/contoso-prod.www-contoso-com")
    );
    assert_eq!(www.link_name, None);
    assert!(www.acls.is_empty());
    let api = &s.observed[1];
    assert_eq!(api.url.host, "contoso-gov.vault.usgovcloudapi.net");
    assert_eq!(
        api.url.version.as_deref(),
        Some("5a1f0c3b9e7d4b2a8c6e0f1d2b3a4c5d")
    );
    assert!(api.url.is_pinned());
}

#[test]
fn design_example_with_warnings() {
    let value: serde_json::Value =
        serde_json::from_str(&fixtures::text("settings/valid/design-example.json")).unwrap();
    let (s, warnings) = Settings::from_json_value(&value).unwrap();
    let codes: Vec<(&str, &str)> = warnings.iter().map(|w| (w.code, w.path.as_str())).collect();
    assert_eq!(
        codes,
        vec![
            (
                "windows-only",
                "settings.secretsManagementSettings.linkOnRenewal"
            ),
            (
                "windows-only",
                "settings.secretsManagementSettings.observedCertificates[1].keyExportable"
            ),
            (
                "windows-only",
                "settings.secretsManagementSettings.observedCertificates[1].accounts"
            ),
            (
                "acls-without-acl-enabled",
                "settings.secretsManagementSettings.aclEnabled"
            ),
        ]
    );
    assert_eq!(s.shape, Shape::V3);
    assert!(s.require_initial_sync);
    assert_eq!(
        s.authentication,
        imds(Some("c7373ae5-91c2-4165-8ab6-7381d6e75619"))
    );
    let other = &s.observed[1];
    assert_eq!(other.url.name, "other");
    assert_eq!(
        other.url.version.as_deref(),
        Some("0123abcd0123abcd0123abcd0123abcd")
    );
    assert_eq!(other.store_dir, PathBuf::from("/etc/ssl/kv"));
    assert_eq!(other.link_name.as_deref(), Some("web"));
    assert_eq!(
        other.acls,
        vec![
            AclEntry::User("www-data".into()),
            AclEntry::Group("ssl-cert".into())
        ]
    );
    let logging = s.logging.as_ref().unwrap();
    assert_eq!(
        logging.endpoint,
        LogEndpoint::Tcp {
            host: "localhost".into(),
            port: 24224
        }
    );
    assert_eq!(logging.tag, "akvvm_service");
}

#[test]
fn paas_bootstrap_certificate() {
    let s = Settings::load(&fixtures::path("settings/valid/paas-settings.json")).unwrap();
    assert_eq!(s.shape, Shape::PaaS);
    assert_eq!(s.store, PathBuf::from(STORE));
    assert_eq!(s.certificate_store_name, "My");
    assert_eq!(
        s.authentication,
        Authentication::BootstrapCertificate {
            client_id: "3f2b8a54-6c1d-4e0f-9a7b-2c4d6e8f0a1b".into(),
            subject_name: "bootstrap.contoso.com".into(),
        }
    );
}

#[test]
fn akvvm_options_from_an_extension_resource() {
    let text = fixtures::text("settings/valid/vm-extension-linux-v3.json");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (s, warnings) = Settings::from_json_value(&value["properties"]["settings"]).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(s.shape, Shape::V3);
    assert!(s.acl_enabled);
    assert_eq!(
        s.agent,
        AgentOptions {
            state_directory: PathBuf::from("/var/lib/akvvm"),
            keep_versions: NonZeroU32::new(3).unwrap(),
            initial_sync_retries: 10,
            ca_certificates: vec![PathBuf::from("/etc/ssl/certs/corp-proxy-ca.pem")],
            resolve: BTreeMap::from([(
                "contoso-prod.vault.azure.net".to_string(),
                ResolveTarget::Ip(IpAddr::V4(Ipv4Addr::new(10, 20, 0, 5)))
            )]),
            authority_host: Url::parse("https://login.microsoftonline.com").unwrap(),
            bootstrap_certificate_directories: vec![PathBuf::from("/var/lib/waagent")],
            concurrency_per_vault: NonZeroUsize::new(2).unwrap(),
            startup_jitter: None,
            request_timeout: akvvm::http::DEFAULT_REQUEST_TIMEOUT,
            full_check_interval: akvvm::settings::DEFAULT_FULL_CHECK_INTERVAL,
            expiry_warning_days: 21,
            reload: Some(ReloadHook {
                command: vec!["/usr/local/bin/cert-changed".into()],
                timeout: Duration::from_secs(30)
            }),
            certbot_layout: false,
            metrics_address: Some("127.0.0.1:9464".parse().unwrap()),
            webhook: None,
            prune_removed_certificates: false,
            batch_reload: None,
            waagent_config: PathBuf::from(akvvm::settings::DEFAULT_WAAGENT_CONFIG),
        }
    );
    let www = &s.observed[0];
    assert_eq!(www.store_dir, PathBuf::from("/etc/nginx/certs"));
    assert_eq!(www.link_name.as_deref(), Some("www"));
    assert_eq!(www.acls, vec![AclEntry::Group("www-data".into())]);
    assert_eq!(
        www.options,
        CertificateOptions {
            reload: Some(ReloadHook {
                command: vec!["systemctl".into(), "reload".into(), "nginx".into()],
                timeout: Duration::from_secs(20)
            }),
            certbot_layout: Some(true),
            files: akvvm_cert::store::FileAccess::default(),
        }
    );
    assert_eq!(s.observed[1].store_dir, PathBuf::from(STORE));
    assert_eq!(s.observed[1].options, CertificateOptions::default());
    assert!(www.certbot_layout(&s.agent));
    assert!(!s.observed[1].certbot_layout(&s.agent));
    assert_eq!(s.observed[1].reload_hook(&s.agent), s.agent.reload.as_ref());
    assert_eq!(
        ResolveTarget::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .socket_addr(8443)
            .to_string(),
        "127.0.0.1:8443"
    );
}

#[test]
fn load_reports_the_file_and_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("settings.json");
    std::fs::write(&bad, r#"{"secretsManagementSettings": {"pollingIntervalInSec": "1", "observedCertificates": ["https://v.vault.azure.net/certificates/c"]}}"#).unwrap();
    let err = Settings::load(&bad).unwrap_err();
    assert_eq!(err.code(), "settings.invalid");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("settings file {} is not valid:", bad.display())),
        "{text}"
    );
    assert!(
        text.contains("settings.secretsManagementSettings.pollingIntervalInSec: unknown key"),
        "{text}"
    );
    assert!(
        text.contains("settings.secretsManagementSettings.observedCertificates[0]:"),
        "{text}"
    );

    std::fs::write(&bad, "{").unwrap();
    assert_eq!(
        Settings::load(&bad).unwrap_err().code(),
        "settings.not_json"
    );
    assert_eq!(
        Settings::load(&dir.path().join("missing.json"))
            .unwrap_err()
            .code(),
        "settings.unreadable"
    );
    assert!(matches!(
        Settings::load(&dir.path().join("missing.json")),
        Err(LoadError::Read { .. })
    ));
}

#[test]
fn a_bare_list_of_urls_is_valid() {
    let value = serde_json::json!({
        "secretsManagementSettings": {"observedCertificates": ["https://v.vault.azure.net/secrets/a"]}
    });
    let (s, warnings) = Settings::from_json_value(&value).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(
        s.observed[0].url,
        url("https://v.vault.azure.net/secrets/a")
    );
    assert_eq!(s.polling_interval, Duration::from_secs(3600));
}
