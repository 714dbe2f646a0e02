//! Every JSON example of Microsoft's v3 page (issue 9, item 1), kept as fixtures under
//! `crates/akvvm-testkit/fixtures/docs-examples/` (their README names the source): each passes
//! `akvvm validate` with at most warnings, and each installs against the local vault. For the
//! install, only what cannot be reached here is rewritten: the vault host resolves to the local
//! vault (`akvvm.resolve`, the real host name stays in the URL), the IMDS endpoint is the local
//! vault's, stores move under the test's temp directory (their documented path below it), and
//! the PowerShell/CLI examples' `xxxxxx-xxxx-xxxx-xxxx-xxxxxxxx` placeholder becomes the client id
//! of an identity made for the test. The users and groups the examples' `acls` name are created
//! by the test (it needs root, as CI has) and each gets read access.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use akvvm_cert::store::PosixAcl;
use akvvm_emulator::IdentitySpec;
use akvvm_testkit::accounts::{TempGroup, TempUser};
use akvvm_testkit::fixtures;
use akvvm_testkit::harness::{Harness, PFX, READER_ROLE};
use assert_cmd::cargo::CommandCargoExt;
use serde_json::{Value, json};

const EXAMPLES: [&str; 4] = [
    "v3-extension-schema.json",
    "v3-template.json",
    "v3-powershell-settings.json",
    "v3-cli-settings.json",
];

/// The client id the schema and template examples document.
const DOCUMENTED_CLIENT_ID: &str = "00001111-aaaa-2222-bbbb-3333cccc4444";

fn example(name: &str) -> PathBuf {
    fixtures::path(&format!("docs-examples/{name}"))
}

#[test]
fn every_documented_v3_example_validates_with_at_most_warnings() {
    for name in EXAMPLES {
        let out = assert_cmd::Command::cargo_bin("akvvm")
            .unwrap()
            .arg("validate")
            .arg(example(name))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}:\n{stdout}");
        assert!(
            stdout.contains("result: valid (0 errors"),
            "{name}:\n{stdout}"
        );
    }
}

/// The settings the guest agent would hand the handler for `name`, pointed at the local vault.
fn local_settings(h: &Harness, name: &str, client_id: &str) -> (Value, Vec<String>) {
    let text = std::fs::read_to_string(example(name)).unwrap();
    let document: Value = serde_json::from_str(&text).unwrap();
    let mut settings = match document.pointer("/properties/settings") {
        Some(settings) => settings.clone(),
        None => document,
    };
    let local = h.settings_json(&["myvault", "examplekv"], vec![]);
    settings["akvvm"] = local["akvvm"].clone();
    settings["authenticationSettings"]["msiEndpoint"] =
        local["authenticationSettings"]["msiEndpoint"].clone();
    settings["authenticationSettings"]["msiClientId"] = json!(client_id);
    let mut stores = Vec::new();
    let secrets = &mut settings["secretsManagementSettings"];
    for cert in secrets["observedCertificates"].as_array_mut().unwrap() {
        let documented = cert["certificateStoreLocation"].as_str().unwrap();
        let local = relocate(h, documented);
        stores.push(local.clone());
        cert["certificateStoreLocation"] = json!(local);
    }
    (settings, stores)
}

fn relocate(h: &Harness, documented: &str) -> String {
    let relative = documented.trim_start_matches('/');
    h.dir
        .path()
        .join("root")
        .join(relative)
        .display()
        .to_string()
}

async fn sync_once(settings: &Path) -> Output {
    let mut command = std::process::Command::cargo_bin("akvvm").unwrap();
    command
        .env("RUST_LOG", "warn")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("ConfigSequenceNumber")
        .env_remove("AZURE_GUEST_AGENT_EXTENSION_PATH")
        .args(["sync", "--once", "--settings"])
        .arg(settings)
        .stdin(std::process::Stdio::null());
    let mut command = assert_cmd::Command::from_std(command);
    command.timeout(Duration::from_secs(60));
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_v3_example_installs_against_the_local_vault() {
    // The principals the examples' acls name, made for this test.
    let app1 = TempUser::create("", Some("app1"));
    let service1 = TempUser::create("", Some("service1"));
    let app2 = TempUser::create("", Some("app2"));
    let app_group1 = TempGroup::create("", Some("appGroup1"));

    for name in EXAMPLES {
        let h = Harness::start_with(false).await;
        let identity = h
            .emulator
            .add_user_identity(IdentitySpec {
                client_id: Some(DOCUMENTED_CLIENT_ID.into()),
                name: Some("akvvm-docs".into()),
                ..IdentitySpec::default()
            })
            .unwrap();
        for vault in ["myvault", "examplekv"] {
            h.emulator.add_vault(vault).unwrap();
            h.emulator
                .assign_roles(vault, &identity.object_id, &[READER_ROLE])
                .unwrap();
            h.certificate(vault, "mycertificate1", "RSA", PFX);
            h.certificate(vault, "mycertificate2", "RSA", PFX);
        }
        let (settings, stores) = local_settings(&h, name, DOCUMENTED_CLIENT_ID);
        let vault = settings["secretsManagementSettings"]["observedCertificates"][0]["url"]
            .as_str()
            .unwrap()
            .trim_start_matches("https://")
            .split('.')
            .next()
            .unwrap()
            .to_owned();
        let path = h.settings_file(&settings);
        let out = sync_once(&path).await;
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        // mycertificate1: app1, service1 and appGroup1 read it; mycertificate2: app2.
        let link1 = Path::new(&stores[0]).join(format!("{vault}.mycertificate1"));
        let acl = PosixAcl::read(&link1)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: {} has no ACL", link1.display()));
        assert_eq!(
            acl.users,
            [(app1.uid, 4), (service1.uid, 4)].into(),
            "{name}"
        );
        assert_eq!(acl.groups, [(app_group1.gid, 4)].into(), "{name}");
        assert_eq!(acl.other, 0, "{name}");
        let link2 = Path::new(&stores[1]).join(format!("{vault}.mycertificate2"));
        let acl = PosixAcl::read(&link2).unwrap().unwrap();
        assert_eq!(acl.users, [(app2.uid, 4)].into(), "{name}");
        assert!(acl.groups.is_empty(), "{name}");
        if let Some(link) = settings["secretsManagementSettings"]["observedCertificates"][0]
            .get("customSymbolicLinkName")
        {
            let custom = Path::new(&stores[0]).join(link.as_str().unwrap());
            assert_eq!(
                std::fs::read(&custom).unwrap(),
                std::fs::read(&link1).unwrap(),
                "{name}: the custom link is the same certificate"
            );
        }
    }
}
