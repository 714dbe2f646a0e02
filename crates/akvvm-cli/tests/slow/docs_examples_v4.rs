//! The 4.x examples (issue 9, items 1 and 2), kept as fixtures under
//! `crates/akvvm-testkit/fixtures/docs-examples/` (`v4-*.json`; their README names the source):
//! each is checked as extension 4.x (the resource by its `typeHandlerVersion`, the settings file
//! by `akvvm.extensionVersion`) and passes `akvvm validate` with at most warnings; and each
//! installs the 4.x files against the local vault with `akvvm sync --once`. For the install only
//! what cannot be reached here is rewritten, as for the v3 examples (`docs_examples.rs`): the
//! vault host resolves to the local vault, the IMDS endpoint is the local vault's, the stores
//! move under the test's temp directory; and the users and groups the `acls` name become users
//! and groups made for the test under unique names (the v3 test creates the documented names,
//! and both run at once).

use std::path::{Path, PathBuf};
use std::time::Duration;

use akvvm_cert::store::{Luma, PosixAcl};
use akvvm_emulator::IdentitySpec;
use akvvm_testkit::accounts::{TempGroup, TempUser};
use akvvm_testkit::fixtures;
use akvvm_testkit::harness::{Harness, PFX, READER_ROLE, link_target};
use assert_cmd::cargo::CommandCargoExt;
use serde_json::{Value, json};

/// The client id the examples document.
const DOCUMENTED_CLIENT_ID: &str = "00001111-aaaa-2222-bbbb-3333cccc4444";
/// The client id of the schema example's `authenticationOverride`.
const OVERRIDE_CLIENT_ID: &str = "55556666-eeee-7777-ffff-8888aaaa9999";

const V4_EXAMPLES: [&str; 2] = ["v4-extension-schema.json", "v4-settings.json"];

fn example(name: &str) -> PathBuf {
    fixtures::path(&format!("docs-examples/{name}"))
}

fn validate(path: &std::path::Path) -> (Option<i32>, String) {
    let out = assert_cmd::Command::cargo_bin("akvvm")
        .unwrap()
        .arg("validate")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Removes every certificate's `authenticationOverride` from `value`; returns how many.
fn strip_overrides(value: &mut Value) -> usize {
    let mut removed = 0;
    match value {
        Value::Object(map) => {
            removed += usize::from(map.remove("authenticationOverride").is_some());
            for v in map.values_mut() {
                removed += strip_overrides(v);
            }
        }
        Value::Array(items) => {
            for v in items {
                removed += strip_overrides(v);
            }
        }
        _ => {}
    }
    removed
}

/// Every 4.x example without `authenticationOverride` too: valid, and checked as 4.x.
#[test]
fn the_documented_v4_examples_validate_as_4x_without_authentication_override() {
    let dir = tempfile::tempdir().unwrap();
    for name in V4_EXAMPLES {
        let mut value: Value =
            serde_json::from_str(&std::fs::read_to_string(example(name)).unwrap()).unwrap();
        strip_overrides(&mut value);
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
        let (code, stdout) = validate(&path);
        assert_eq!(code, Some(0), "{name}:\n{stdout}");
        assert!(
            stdout.contains("result: valid (0 errors"),
            "{name}:\n{stdout}"
        );
        assert!(
            stdout.contains(
                "checked as: extension 4.x (version 4.0, from the extension's typeHandlerVersion)"
            ) || stdout
                .contains("checked as: extension 4.x (version 4.0, from akvvm.extensionVersion)"),
            "{name}:\n{stdout}"
        );
        assert!(
            stdout.contains("status: success once every certificate is installed (4.x)"),
            "{name}:\n{stdout}"
        );
    }
}

/// The 4.x examples exactly as kept, `authenticationOverride` included.
#[test]
fn every_documented_v4_example_validates_with_at_most_warnings() {
    let mut overrides = 0;
    for name in V4_EXAMPLES {
        let value: Value =
            serde_json::from_str(&std::fs::read_to_string(example(name)).unwrap()).unwrap();
        overrides += strip_overrides(&mut value.clone());
        let (code, stdout) = validate(&example(name));
        assert_eq!(code, Some(0), "{name}:\n{stdout}");
        assert!(
            stdout.contains("result: valid (0 errors"),
            "{name}:\n{stdout}"
        );
        assert!(
            stdout.contains("checked as: extension 4.x"),
            "{name}:\n{stdout}"
        );
    }
    assert!(overrides > 0, "the examples show authenticationOverride");
}

/// Rewrites every `certificateStoreLocation` in `value` to the same path under `root`; returns
/// the documented paths and their local ones.
fn relocate(value: &mut Value, root: &Path, moved: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "certificateStoreLocation"
                    && let Some(documented) = v.as_str()
                {
                    let local = root
                        .join(documented.trim_start_matches('/'))
                        .display()
                        .to_string();
                    moved.push((documented.to_string(), local.clone()));
                    *v = json!(local);
                } else {
                    relocate(v, root, moved);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| relocate(v, root, moved)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_v4_examples_install_the_4x_files_against_the_local_vault() {
    for name in V4_EXAMPLES {
        let h = Harness::start_with(false).await;
        let identity = h
            .emulator
            .add_user_identity(IdentitySpec {
                client_id: Some(DOCUMENTED_CLIENT_ID.into()),
                name: Some("akvvm-docs-v4".into()),
                ..IdentitySpec::default()
            })
            .unwrap();
        let override_identity = h
            .emulator
            .add_user_identity(IdentitySpec {
                client_id: Some(OVERRIDE_CLIENT_ID.into()),
                name: Some("akvvm-docs-v4-override".into()),
                ..IdentitySpec::default()
            })
            .unwrap();
        for vault in ["myvault", "examplekv"] {
            h.emulator.add_vault(vault).unwrap();
            for id in [&identity, &override_identity] {
                h.emulator
                    .assign_roles(vault, &id.object_id, &[READER_ROLE])
                    .unwrap();
            }
            for cert in ["mycertificate", "mycertificate1", "mycertificate2"] {
                h.certificate(vault, cert, "RSA", PFX);
            }
        }
        let text = std::fs::read_to_string(example(name)).unwrap();
        let document: Value = serde_json::from_str(&text).unwrap();
        let mut settings = document
            .pointer("/properties/settings")
            .cloned()
            .unwrap_or(document.clone());
        // The mode: the resource's typeHandlerVersion, or the settings' own extensionVersion.
        let local = h.settings_json(&["myvault", "examplekv"], vec![]);
        let mut agent = local["akvvm"].clone();
        agent["extensionVersion"] = json!("4.0");
        settings["akvvm"] = agent;
        settings["authenticationSettings"]["msiEndpoint"] =
            local["authenticationSettings"]["msiEndpoint"].clone();
        settings.as_object_mut().unwrap().remove("loggingSettings");
        let overridden: Vec<String> = settings["secretsManagementSettings"]["observedCertificates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.get("authenticationOverride").is_some())
            .map(|c| {
                c["url"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let mut moved = Vec::new();
        relocate(&mut settings, &h.dir.path().join("root"), &mut moved);
        // Unique principals for the documented ones.
        let mut users = Vec::new();
        let mut groups = Vec::new();
        for cert in settings["secretsManagementSettings"]["observedCertificates"]
            .as_array_mut()
            .unwrap()
        {
            for acl in cert["acls"].as_array_mut().into_iter().flatten() {
                if acl.get("user").is_some() {
                    let user = TempUser::create("v4doc", None);
                    acl["user"] = json!(user.name);
                    users.push(user);
                }
                if acl.get("group").is_some() {
                    let group = TempGroup::create("v4doc", None);
                    acl["group"] = json!(group.name);
                    groups.push(group);
                }
            }
        }
        let path = h.settings_file(&settings);
        let mut command = std::process::Command::cargo_bin("akvvm").unwrap();
        command
            .env("RUST_LOG", "warn")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("ConfigSequenceNumber")
            .env_remove("AZURE_GUEST_AGENT_EXTENSION_PATH")
            .env_remove("AZURE_GUEST_AGENT_EXTENSION_VERSION")
            .args(["sync", "--once", "--settings"])
            .arg(&path)
            .stdin(std::process::Stdio::null());
        let mut command = assert_cmd::Command::from_std(command);
        command.timeout(Duration::from_secs(60));
        let out = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        // Each certificate: its two links, .luma naming them, and its acls (no aclEnabled).
        let mut principal = 0;
        for cert in settings["secretsManagementSettings"]["observedCertificates"]
            .as_array()
            .unwrap()
        {
            let url = cert["url"].as_str().unwrap();
            let mut parts = url.trim_start_matches("https://").split('/');
            let vault = parts.next().unwrap().split('.').next().unwrap();
            let secret = parts.nth(1).unwrap();
            let store = PathBuf::from(
                cert["certificateStoreLocation"]
                    .as_str()
                    .or(settings["secretsManagementSettings"]["certificateStoreLocation"].as_str())
                    .unwrap(),
            );
            let stem = format!("{vault}.{secret}");
            let pem = link_target(&store.join(format!("{stem}.pem")));
            let keyid = link_target(&store.join(format!("{stem}.keyid")));
            let luma = Luma::parse(&std::fs::read(store.join(format!("{stem}.luma"))).unwrap())
                .expect("a .luma");
            assert_eq!(
                (luma.pem.as_str(), luma.keyid.as_str()),
                (pem.as_str(), keyid.as_str()),
                "{name} {url}"
            );
            assert!(!store.join(&stem).exists(), "{name}: no 3.x link");
            let acl = PosixAcl::read(&store.join(&keyid))
                .unwrap()
                .unwrap_or_else(|| panic!("{name}: {keyid} has no ACL"));
            for entry in cert["acls"].as_array().unwrap() {
                if entry.get("user").is_some() {
                    let uid = users[principal_index(&users, entry["user"].as_str().unwrap())].uid;
                    assert_eq!(acl.users.get(&uid), Some(&4), "{name} {url}");
                    principal += 1;
                }
                if let Some(g) = entry.get("group").and_then(Value::as_str) {
                    let gid = groups.iter().find(|x| x.name == g).unwrap().gid;
                    assert_eq!(acl.groups.get(&gid), Some(&4), "{name} {url}");
                }
            }
        }
        assert_eq!(principal, users.len(), "{name}: every user checked");
        // A certificate with an override was fetched by that identity, and only by it.
        for secret in &overridden {
            let latest = format!("/secrets/{secret}");
            let versioned = format!("{latest}/");
            let by = |object_id: &str| {
                h.emulator
                    .callers()
                    .iter()
                    .filter(|c| {
                        c.object_id == object_id
                            && (c.path == latest || c.path.starts_with(&versioned))
                    })
                    .map(|c| c.count)
                    .sum::<u64>()
            };
            assert!(by(&override_identity.object_id) > 0, "{name}: {secret}");
            assert_eq!(by(&identity.object_id), 0, "{name}: {secret}");
        }
        assert!(!moved.is_empty());
    }
}

fn principal_index(users: &[TempUser], name: &str) -> usize {
    users.iter().position(|u| u.name == name).unwrap()
}
