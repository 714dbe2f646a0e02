//! `akvvm inspect` on a PFX, a base64 Key Vault secret value, a PEM bundle and a store entry.

use akvvm_testkit::fixtures;
use assert_cmd::Command;
use predicates::prelude::*;

fn akvvm() -> Command {
    Command::cargo_bin("akvvm").expect("the akvvm binary")
}

#[test]
fn a_pfx_with_its_password_prints_the_leaf_and_the_ordered_chain() {
    akvvm()
        .arg("inspect")
        .arg(fixtures::path("pkcs12/openssl3-aes-ecp384.pfx"))
        .args(["--password", "correct horse"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "subject:     CN=ecp384.example.test,O=akvvm test",
        ))
        .stdout(predicate::str::contains(
            "issuer:      CN=akvvm Test Intermediate CA,O=akvvm test,C=US",
        ))
        .stdout(predicate::str::contains(
            "SANs:        DNS:ecp384.example.test, DNS:www.ecp384.example.test, IP:192.0.2.10",
        ))
        .stdout(predicate::str::contains(
            "thumbprint:  267231972C0BEBCB58B38AE40DC8123B3CF66467",
        ))
        .stdout(predicate::str::contains(
            "SHA-256:     9B0CC7F26D168ACFAB0917FCAACEE50880A91EE0807D5D636B90451D5B14376D",
        ))
        .stdout(predicate::str::contains("not after:   2126-10-29T04:53:22Z"))
        .stdout(predicate::str::contains("key:         EC P-384"))
        .stdout(predicate::str::is_match(
            "(?s)0\\. leaf +CN=ecp384.*1\\. intermediate +CN=akvvm Test Intermediate CA.*2\\. root +CN=akvvm Test Root CA",
        ).expect("regex"));
}

#[test]
fn json_output_of_a_keyvault_secret_value() {
    let output = akvvm()
        .arg("inspect")
        .arg(fixtures::path("pkcs12/kv-rsa2048-rc2-2020.pfx.b64"))
        .arg("--json")
        .output()
        .expect("run akvvm");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json["format"], "base64 PFX");
    assert_eq!(json["subject"], "CN=MyCert");
    assert_eq!(
        json["thumbprint"],
        "D7DD483CF2B07A4FF798E2BDE03B5DEAF0ECB48E"
    );
    assert_eq!(
        json["sha256"],
        "9DDFCB0AD7C0BEB676B216B61CA529B93A74282E7A2E9956EAF55E0E4F9FF1B9"
    );
    assert_eq!(json["notBefore"], "2020-06-25T12:59:45Z");
    assert_eq!(json["notAfter"], "2021-06-25T13:09:45Z");
    assert_eq!(json["expired"], true);
    assert_eq!(json["keyType"], "RSA 2048");
    assert_eq!(json["chain"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["chain"][0]["role"], "leaf");
    assert_eq!(json["warnings"], serde_json::json!([]));
}

#[test]
fn json_output_of_a_shuffled_pem_lists_the_chain_leaf_to_root() {
    let output = akvvm()
        .arg("inspect")
        .arg(fixtures::path("pem/rsa2048-shuffled.pem"))
        .arg("--json")
        .output()
        .expect("run akvvm");
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let chain: Vec<(String, String)> = json["chain"]
        .as_array()
        .expect("chain")
        .iter()
        .map(|c| {
            (
                c["role"].as_str().unwrap_or_default().to_string(),
                c["thumbprint"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        chain,
        vec![
            (
                "leaf".into(),
                "9F5F05E23343FA08A8BD070A5B448B185837CF0D".into()
            ),
            (
                "intermediate".into(),
                "9AB05F3C22EF7DE47769263835F5FB0EBCD3C3A0".into()
            ),
            (
                "root".into(),
                "9AC8EB76BAA4CDB379A2A5A152EF4192FBD9C972".into()
            ),
        ]
    );
    assert_eq!(
        json["sans"],
        serde_json::json!([
            "DNS:rsa2048.example.test",
            "DNS:www.rsa2048.example.test",
            "IP:192.0.2.10"
        ])
    );
}

#[test]
fn a_store_entry_is_read_back_and_an_incomplete_chain_is_reported() {
    let bundle = akvvm_cert::certificate::decode_pem(&fixtures::text("pem/ecp384-sec1-noroot.pem"))
        .expect("bundle");
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = dir.path().join("myvault.mycert.0123456789abcdef");
    std::fs::write(&entry, bundle.to_pem().as_bytes()).expect("write");
    akvvm()
        .arg("inspect")
        .arg(&entry)
        .assert()
        .success()
        .stdout(predicate::str::contains("(PEM)"))
        .stdout(predicate::str::contains(
            "thumbprint:  267231972C0BEBCB58B38AE40DC8123B3CF66467",
        ))
        .stdout(predicate::str::contains(
            "warning:     the chain is incomplete: no certificate for \"CN=akvvm Test Root CA",
        ))
        // The key itself is never printed.
        .stdout(predicate::str::contains("PRIVATE KEY").not());
}

#[test]
fn bad_input_fails_with_the_error_code() {
    akvvm()
        .arg("inspect")
        .arg(fixtures::path("pkcs12/openssl3-aes-rsa2048.pfx"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("[cert.pfx_bad_password]"))
        .stderr(predicate::str::contains("openssl3-aes-rsa2048.pfx"));
    akvvm()
        .arg("inspect")
        .arg(fixtures::path("pem/nokey.pem"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("[cert.pem_no_key]"));
    akvvm()
        .arg("inspect")
        .arg(fixtures::path("pkcs12/README.md"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("[cert.not_a_certificate]"));
    akvvm()
        .arg("inspect")
        .arg(fixtures::path("pkcs12/does-not-exist.pfx"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("failed to read"))
        .stderr(predicate::str::contains("does-not-exist.pfx"));
}

#[test]
fn a_saved_keyvault_secret_answer_is_decoded_by_its_content_type() {
    // What `az keyvault secret show` prints for a certificate's secret (a real Key Vault value).
    let value = fixtures::text("pkcs12/kv-ecp256-net-2021.pfx.b64");
    let answer = serde_json::json!({
        "value": value.trim(),
        "contentType": "application/x-pkcs12",
        "id": "https://heathskvtest.vault.azure.net/secrets/1455109331/36307d2fcdd142999c87412b51547193",
        "managed": true,
        "attributes": {"enabled": true}
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.json");
    // Saved by PowerShell 5 (Out-File): a byte order mark and CRLF line ends.
    let saved = serde_json::to_string_pretty(&answer)
        .unwrap()
        .replace('\n', "\r\n");
    std::fs::write(&path, format!("\u{feff}{saved}")).unwrap();
    akvvm()
        .arg("inspect")
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::contains("(Key Vault secret answer)"))
        .stdout(predicate::str::contains(
            "thumbprint:  35A0201B94EAB59EDFEC709FA7015F53A15E7F3F",
        ))
        .stdout(predicate::str::contains("key:         EC P-256"));

    // JSON that is not an answer says what it wants.
    std::fs::write(&path, r#"{"name": "x"}"#).unwrap();
    akvvm()
        .arg("inspect")
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("JSON without a \"value\" string"))
        .stderr(predicate::str::contains("[cert.not_a_certificate]"));
}

#[test]
fn a_pfx_that_needs_a_password_says_to_give_it() {
    akvvm()
        .arg("inspect")
        .arg(fixtures::path("pkcs12/openssl3-aes-ecp384.pfx"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("give it with --password"))
        .stderr(predicate::str::contains("[cert.pfx_bad_password]"));
    // A wrong password given: no such hint.
    akvvm()
        .arg("inspect")
        .arg(fixtures::path("pkcs12/openssl3-aes-ecp384.pfx"))
        .args(["--password", "wrong"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("check the password"))
        .stderr(predicate::str::contains("--password").not());
}

#[test]
fn a_store_link_is_inspected_and_the_store_directory_names_its_certificates() {
    use akvvm_cert::store::{DEFAULT_KEEP, InstallRequest, Store};
    let value = fixtures::text("pkcs12/kv-ecp384-net-2021.pfx.b64");
    let bundle =
        akvvm_cert::certificate::decode_secret(Some("application/x-pkcs12"), &value).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let installed = store
        .install(&InstallRequest {
            vault: "myvault",
            name: "web",
            version: "b2b25330cf944e16b7a61914be9e285e",
            bundle: &bundle,
            link_name: Some("www"),
            acls: &[],
            keep: DEFAULT_KEEP,
            certbot_layout: false,
        })
        .unwrap();
    akvvm()
        .arg("inspect")
        .arg(&installed.link)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "thumbprint:  ED6AA5CB0EE3B9B4D857BA5F5CBB22D36F309CC3",
        ))
        .stdout(predicate::str::contains("key:         EC P-384"));
    let expected = format!(
        "is a directory; inspect one of the certificates in it: {}, {}",
        store.path().join("myvault.web").display(),
        store.path().join("www").display()
    );
    akvvm()
        .arg("inspect")
        .arg(store.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains(expected));
    akvvm()
        .arg("inspect")
        .arg(dir.path().join("store").join(".."))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is a directory; give a certificate file",
        ));
}
