//! The state file ([`akvvm::sync::state`]) with a real install: what it records of the store's
//! answer, and that it loads back.

use std::num::NonZeroU32;

use akvvm::sync::state::StateFile;
use akvvm_cert::store::{DEFAULT_KEEP, InstallRequest, Store};
use akvvm_testkit::certs::generate;
use time::OffsetDateTime;

fn request<'a>(
    version: &'a str,
    bundle: &'a akvvm_cert::certificate::CertificateBundle,
) -> InstallRequest<'a> {
    InstallRequest {
        vault: "myvault",
        name: "web-cert",
        version,
        bundle,
        link_name: None,
        acls: &[],
        keep: DEFAULT_KEEP,
        certbot_layout: false,
    }
}

#[test]
fn the_state_file_records_an_install() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    let generated = generate("www.example.com", 90);
    let installed = store
        .install(&InstallRequest {
            link_name: Some("web"),
            keep: NonZeroU32::new(3).unwrap(),
            ..request("v1", &generated.bundle)
        })
        .unwrap();
    let url = "https://myvault.vault.azure.net/secrets/web-cert";
    let path = root.path().join("state/state.json");
    let mut state = StateFile::load(&path).unwrap();
    assert!(state.entry(url).is_none());
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    state.entry_mut(url).record_install(&installed, now);
    state.save().unwrap();

    let loaded = StateFile::load(&path).unwrap();
    let entry = loaded.entry(url).unwrap();
    assert_eq!(entry.installed_version.as_deref(), Some("v1"));
    assert_eq!(
        entry.thumbprint.as_deref(),
        Some(generated.bundle.thumbprint().as_str())
    );
    assert_eq!(entry.not_after, Some(generated.bundle.not_after()));
    assert_eq!(entry.file.as_deref(), Some(installed.file.as_path()));
    assert_eq!(entry.link.as_deref(), Some(installed.link.as_path()));
    assert_eq!(
        entry.custom_link.as_deref(),
        Some(store.path().join("web").as_path())
    );
    assert_eq!(entry.installed_at, Some(now));
    assert_eq!(entry.last_error, None);
}
