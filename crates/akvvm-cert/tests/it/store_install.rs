//! The store with real certificates: what lands on disk, in which order, with which permissions,
//! and that a bad secret or a failed install never disturbs the installed version.

use std::path::Path;
use std::process::Command;

use akvvm_cert::certificate::{CONTENT_TYPE_PEM, CONTENT_TYPE_PKCS12, decode_pem, decode_secret};
use akvvm_cert::store::{Acl, DEFAULT_KEEP, InstallRequest, PosixAcl, Store, TEMP_PREFIX};
use akvvm_testkit::certs::{assert_same_secret, generate, pem_labels};
use akvvm_testkit::files::{mode, names};
use akvvm_testkit::fixtures;
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
fn installs_leaf_intermediate_root_then_key_behind_a_stable_link() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    let generated = generate("www.example.com", 90);
    let version = "0123456789abcdef0123456789abcdef";
    let installed = store.install(&request(version, &generated.bundle)).unwrap();

    let file = store.path().join(format!("myvault.web-cert.{version}"));
    assert_eq!(installed.file, file);
    assert_eq!(installed.link, store.path().join("myvault.web-cert"));
    assert_eq!(
        std::fs::read_link(&installed.link).unwrap(),
        Path::new(&format!("myvault.web-cert.{version}"))
    );
    assert_eq!(mode(store.path()), 0o700);
    assert_eq!(mode(&file), 0o600);

    let text = std::fs::read_to_string(&installed.link).unwrap();
    assert_same_secret(&text, &*generated.bundle.to_pem(), "the stable link's file");
    assert_eq!(
        pem_labels(&text),
        ["CERTIFICATE", "CERTIFICATE", "CERTIFICATE", "PRIVATE KEY"]
    );
    // Leaf first, then each certificate's issuer, root last.
    let reread = decode_pem(&text).unwrap();
    assert!(text.starts_with(&reread.leaf_pem()));
    assert_eq!(reread.leaf.subject, generated.bundle.leaf.subject);
    assert!(reread.leaf.subject.contains("www.example.com"));
    assert!(reread.chain[0].subject.contains("test intermediate"));
    assert!(reread.chain[1].subject.contains("test root"));
    assert!(reread.key.matches(&reread.leaf));

    assert_eq!(installed.thumbprint, generated.bundle.thumbprint());
    assert_eq!(installed.thumbprint.len(), 40);
    assert!(
        installed
            .thumbprint
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    assert_eq!(installed.not_after, generated.bundle.not_after());
    assert!(installed.not_after > OffsetDateTime::now_utc());

    let current = store.current("myvault", "web-cert").unwrap().unwrap();
    assert_eq!(current.version, version);
    assert_eq!(current.file, file);
}

#[test]
fn a_renewal_moves_both_links_and_keeps_the_previous_version() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    let old = generate("www.example.com", 30);
    let new = generate("www.example.com", 90);
    let with_link = |version, bundle| InstallRequest {
        link_name: Some("nginx.pem"),
        ..request(version, bundle)
    };
    store.install(&with_link("v1", &old.bundle)).unwrap();
    let installed = store.install(&with_link("v2", &new.bundle)).unwrap();
    assert_eq!(installed.custom_link, Some(store.path().join("nginx.pem")));
    for link in ["myvault.web-cert", "nginx.pem"] {
        let text = std::fs::read_to_string(store.path().join(link)).unwrap();
        assert_same_secret(&text, &*new.bundle.to_pem(), link);
    }
    assert_eq!(
        names(store.path()),
        [
            "myvault.web-cert",
            "myvault.web-cert.v1",
            "myvault.web-cert.v2",
            "nginx.pem"
        ]
    );
    let previous = std::fs::read_to_string(store.path().join("myvault.web-cert.v1")).unwrap();
    assert_same_secret(
        &previous,
        &*old.bundle.to_pem(),
        "the previous version's file",
    );
}

#[test]
fn bad_secrets_fail_to_decode_and_leave_the_installed_version_untouched() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    let good = generate("www.example.com", 90);
    store.install(&request("v1", &good.bundle)).unwrap();
    let before = std::fs::read(store.path().join("myvault.web-cert")).unwrap();

    let other = generate("other.example.com", 90);
    let key_of_other = other
        .pem
        .split("-----BEGIN CERTIFICATE-----")
        .next()
        .unwrap();
    let certs_of_good = &good.pem[good.pem.find("-----BEGIN CERTIFICATE-----").unwrap()..];
    let truncated = &good.pem[..good.pem.len() / 2];
    let b64 = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    // A real Key Vault PFX cut short, and one with a byte of its MAC salt changed.
    let keyvault = {
        use base64::Engine as _;
        let text = fixtures::text("pkcs12/kv-ecp256-net-2021.pfx.b64");
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap()
    };
    let mut altered = keyvault.clone();
    let salt = altered.len() - 30;
    altered[salt] ^= 0x01;
    let cases: [(&str, Option<&str>, String); 10] = [
        (
            "cert.not_a_certificate",
            Some(CONTENT_TYPE_PKCS12),
            "hello".into(),
        ),
        (
            "cert.pem_no_key",
            Some(CONTENT_TYPE_PEM),
            certs_of_good.into(),
        ),
        (
            "cert.key_mismatch",
            Some(CONTENT_TYPE_PEM),
            format!("{key_of_other}{certs_of_good}"),
        ),
        ("cert.pem_invalid", Some(CONTENT_TYPE_PEM), truncated.into()),
        (
            "cert.pfx_corrupt",
            Some(CONTENT_TYPE_PKCS12),
            "MIIBAAAA".into(),
        ),
        (
            "cert.pfx_corrupt",
            Some(CONTENT_TYPE_PKCS12),
            b64(&keyvault[..keyvault.len() * 2 / 3]),
        ),
        (
            "cert.pfx_mac_mismatch",
            Some(CONTENT_TYPE_PKCS12),
            b64(&altered),
        ),
        (
            "cert.pfx_bad_password",
            Some(CONTENT_TYPE_PKCS12),
            b64(&fixtures::bytes("pkcs12/openssl3-aes-rsa2048.pfx")),
        ),
        (
            "cert.empty_chain",
            Some(CONTENT_TYPE_PEM),
            fixtures::text("pem/keyonly.pem"),
        ),
        (
            "cert.pfx_no_key",
            Some(CONTENT_TYPE_PKCS12),
            b64(&fixtures::bytes("pkcs12/openssl3-nokey.pfx")),
        ),
    ];
    for (what, content_type, value) in &cases {
        // The agent decodes first; only a bundle reaches the store, so nothing is written.
        let error = decode_secret(*content_type, value).unwrap_err();
        assert_eq!(error.code(), *what);
        assert_same_secret(
            std::fs::read(store.path().join("myvault.web-cert")).unwrap(),
            &before,
            what,
        );
    }
    assert_eq!(
        names(store.path()),
        ["myvault.web-cert", "myvault.web-cert.v1"]
    );
}

#[test]
fn an_install_failing_half_way_leaves_the_old_version_linked_and_readable() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    let old = generate("www.example.com", 30);
    let new = generate("www.example.com", 90);
    store.install(&request("v1", &old.bundle)).unwrap();

    // Something else sits where the new version's file must go: the write's rename fails.
    let blocker = store.path().join("myvault.web-cert.v2");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), b"x").unwrap();
    let error = store.install(&request("v2", &new.bundle)).unwrap_err();
    assert_eq!(error.code(), "store.write");
    assert!(error.to_string().contains("myvault.web-cert.v2"), "{error}");

    // A regular file where the custom link must go: refused before anything is written.
    std::fs::write(store.path().join("nginx.pem"), b"an admin's file").unwrap();
    let with_link = InstallRequest {
        link_name: Some("nginx.pem"),
        ..request("v3", &new.bundle)
    };
    let error = store.install(&with_link).unwrap_err();
    assert_eq!(error.code(), "store.link_occupied");
    assert_eq!(
        std::fs::read(store.path().join("nginx.pem")).unwrap(),
        b"an admin's file"
    );

    let text = std::fs::read_to_string(store.path().join("myvault.web-cert")).unwrap();
    assert_same_secret(&text, &*old.bundle.to_pem(), "the old version's file");
    assert_eq!(
        store
            .current("myvault", "web-cert")
            .unwrap()
            .unwrap()
            .version,
        "v1"
    );
    assert!(
        names(store.path())
            .iter()
            .all(|n| !n.starts_with(TEMP_PREFIX))
    );
    assert!(!store.path().join("myvault.web-cert.v3").exists());
}

#[test]
fn writes_certbot_files_that_nginx_would_load() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    let generated = generate("www.example.com", 90);
    let certbot = InstallRequest {
        certbot_layout: true,
        ..request("v1", &generated.bundle)
    };
    let installed = store.install(&certbot).unwrap();
    let live = installed.live_link.unwrap();
    assert_eq!(live, store.path().join("myvault.web-cert.live"));
    let read = |file: &str| std::fs::read_to_string(live.join(file)).unwrap();
    let bundle = &generated.bundle;
    assert_eq!(read("cert.pem"), bundle.leaf_pem());
    assert_eq!(read("chain.pem"), bundle.chain_pem());
    assert_eq!(read("fullchain.pem"), bundle.fullchain_pem());
    assert_same_secret(read("privkey.pem"), &*bundle.key_pem(), "privkey.pem");
    assert_eq!(
        pem_labels(&read("chain.pem")),
        ["CERTIFICATE", "CERTIFICATE"]
    );
    let pair = decode_pem(&format!("{}{}", read("cert.pem"), read("privkey.pem"))).unwrap();
    assert_eq!(pair.thumbprint(), bundle.thumbprint());
    assert_eq!(mode(&live.join("privkey.pem")), 0o600);
}

#[test]
fn acls_grant_exactly_read_and_traverse() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    let generated = generate("www.example.com", 90);
    let acls = [Acl::User("4711".into()), Acl::Group("root".into())];
    let with_acls = InstallRequest {
        acls: &acls,
        ..request("v1", &generated.bundle)
    };
    let installed = store.install(&with_acls).unwrap();

    let file_acl = PosixAcl::read(&installed.file).unwrap().unwrap();
    assert_eq!(file_acl.users, [(4711, 4)].into());
    assert_eq!(file_acl.groups, [(0, 4)].into());
    assert_eq!(
        (
            file_acl.user_obj,
            file_acl.group_obj,
            file_acl.mask,
            file_acl.other
        ),
        (6, 0, Some(4), 0)
    );
    let dir_acl = PosixAcl::read(store.path()).unwrap().unwrap();
    assert_eq!(dir_acl.users, [(4711, 1)].into());
    assert_eq!(dir_acl.groups, [(0, 1)].into());
    assert_eq!(
        (
            dir_acl.user_obj,
            dir_acl.group_obj,
            dir_acl.mask,
            dir_acl.other
        ),
        (7, 0, Some(1), 0)
    );

    // Cross-check with getfacl (Debian's `acl` package).
    if akvvm_cert::machine::require_program("getfacl cross-check", "getfacl", &["--version"]) {
        let output = Command::new("getfacl")
            .args(["--omit-header", "--numeric"])
            .arg(&installed.file)
            .arg(store.path())
            .output()
            .unwrap();
        assert!(output.status.success());
        let text = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            text,
            "user::rw-\nuser:4711:r--\ngroup::---\ngroup:0:r--\nmask::r--\nother::---\n\n\
             user::rwx\nuser:4711:--x\ngroup::---\ngroup:0:--x\nmask::--x\nother::---\n\n"
        );
    }
}

#[test]
fn a_lost_state_is_rebuilt_from_the_store_without_writing() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    assert_eq!(store.installed("myvault", "web-cert", None).unwrap(), None);
    let generated = generate("www.example.com", 90);
    let installed = store
        .install(&InstallRequest {
            link_name: Some("web"),
            certbot_layout: true,
            ..request("v1", &generated.bundle)
        })
        .unwrap();
    let modified = std::fs::metadata(&installed.file)
        .unwrap()
        .modified()
        .unwrap();

    let read_back = store
        .installed("myvault", "web-cert", Some("web"))
        .unwrap()
        .unwrap();
    assert_eq!(read_back, installed);
    assert_eq!(
        std::fs::metadata(&installed.file)
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );
    // A custom link that points elsewhere is not reported as this certificate's.
    let elsewhere = store
        .installed("myvault", "web-cert", Some("other"))
        .unwrap()
        .unwrap();
    assert_eq!(elsewhere.custom_link, None);

    // A file damaged behind akvvm's back counts as not installed, so it is installed again.
    std::fs::write(&installed.file, b"damaged").unwrap();
    assert_eq!(store.installed("myvault", "web-cert", None).unwrap(), None);
}
