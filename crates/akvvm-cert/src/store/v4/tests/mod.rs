//! Tests of the 4.x layout on real directories and real certificates: names, modes, links and
//! `.luma`; pruning; the two layouts in one directory; ACLs; and, through the install's
//! checkpoints ([`CHECKPOINT`]), a failure and a crash before every step, and a reader's view of
//! the store at every step of many rotations.

use std::num::NonZeroU32;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use akvvm_testkit::certs::generate;
use akvvm_testkit::files::names;

use super::super::{
    Acl, FileAccess, InstallRequest, Installed, Layout, PosixAcl, Principal, Store, StoreError,
    TEMP_PREFIX,
};
use super::install::{CHECKPOINT, Step};
use super::*;
use crate::certificate::{CertificateBundle, decode_pem};

const STEPS: [Step; 8] = [
    Step::PemFile,
    Step::KeyFile,
    Step::DirectoryAcl,
    Step::PemLink,
    Step::KeyLink,
    Step::Luma,
    Step::Prune,
    Step::Done,
];

/// `n` real certificates (leaf, intermediate, root), decoded by this crate (the testkit's own
/// bundles are of its copy of akvvm-cert).
fn bundles(n: usize) -> Vec<CertificateBundle> {
    (0..n)
        .map(|i| decode_pem(&generate(&format!("host{i}.example.com"), 90).pem).unwrap())
        .collect()
}

fn request<'a>(version: &'a str, bundle: &'a CertificateBundle) -> InstallRequest<'a> {
    InstallRequest {
        vault: "mykv",
        name: "server-tls",
        version,
        bundle,
        link_name: None,
        acls: &[],
        keep: NonZeroU32::new(2).unwrap(),
        certbot_layout: false,
    }
}

fn open_v4(path: &Path) -> Store {
    Store::open_layout(path, Layout::V4).unwrap()
}

fn new_store() -> (tempfile::TempDir, Store) {
    let root = tempfile::tempdir().unwrap();
    let store = open_v4(&root.path().join("store"));
    (root, store)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn set_hook(hook: impl FnMut(Step) -> Result<(), StoreError> + 'static) {
    CHECKPOINT.with(|c| *c.borrow_mut() = Some(Box::new(hook)));
}

fn clear_hook() {
    CHECKPOINT.with(|c| *c.borrow_mut() = None);
}

/// What a reader following docs/store.md's protocols sees in `dir` for mykv.server-tls, with the
/// writer paused; `reader_view` fails for anything a reader must never see.
#[derive(Debug)]
struct View {
    /// What the two links name (protocol B).
    links: Links,
    /// The version `.luma` names (protocol A), `None` before the first install.
    luma: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Links {
    /// No link yet.
    Absent,
    /// The links name two installs, or one is missing: protocol B waits and reads again
    /// (allowed only between the two swaps).
    Apart,
    /// Both name this version's pair, which decodes into a certificate and its key.
    Pair(String),
}

/// The `<version>.<timestamp>` part of a 4.x file name.
fn install_of(name: &str) -> (String, String) {
    let file = FileName::parse(name).unwrap_or_else(|| panic!("not a 4.x file name: {name}"));
    (file.version.to_owned(), file.stamp.to_owned())
}

/// Decodes the pair `pem`/`keyid` of `dir`; the key must be the certificate's.
fn decode(dir: &Path, pem: &str, keyid: &str) -> Result<CertificateBundle, String> {
    let pem_text = std::fs::read_to_string(dir.join(pem)).map_err(|e| format!("{pem}: {e}"))?;
    let key_text = std::fs::read_to_string(dir.join(keyid)).map_err(|e| format!("{keyid}: {e}"))?;
    if pem_text.contains("PRIVATE KEY") {
        return Err(format!("{pem} holds a private key"));
    }
    if key_text.contains("CERTIFICATE") {
        return Err(format!("{keyid} holds a certificate"));
    }
    decode_pem(&format!("{pem_text}{key_text}")).map_err(|e| format!("{pem} + {keyid}: {e}"))
}

fn reader_view(dir: &Path) -> Result<View, String> {
    let link = |suffix: &str| -> Result<Option<String>, String> {
        match std::fs::read_link(dir.join(format!("mykv.server-tls.{suffix}"))) {
            Ok(target) => Ok(Some(target.to_str().unwrap().to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("readlink .{suffix}: {e}")),
        }
    };
    // Protocol B: both links, compared, then their targets.
    let (pem, keyid) = (link("pem")?, link("keyid")?);
    let links = match (&pem, &keyid) {
        (None, None) => Links::Absent,
        (Some(pem), Some(keyid)) if install_of(pem) == install_of(keyid) => {
            decode(dir, pem, keyid)?;
            Links::Pair(install_of(pem).0)
        }
        _ => Links::Apart,
    };
    // Protocol A: `.luma`, then the two files it names.
    let luma = match std::fs::read(dir.join("mykv.server-tls.luma")) {
        Ok(bytes) => {
            let luma = Luma::parse(&bytes).ok_or("a .luma that does not parse")?;
            let bundle = decode(dir, &luma.pem, &luma.keyid)?;
            if bundle.thumbprint() != luma.thumbprint || install_of(&luma.pem).0 != luma.version {
                return Err(format!(".luma describes another pair than {}", luma.pem));
            }
            // `.luma` is written after both links moved, and links only move forward.
            for target in [&pem, &keyid] {
                let behind = target
                    .as_ref()
                    .is_none_or(|t| install_of(t).1 < luma.timestamp);
                if behind {
                    return Err(format!(
                        ".luma names {} but a link is behind it: {target:?}",
                        luma.pem
                    ));
                }
            }
            Some(luma.version)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("read .luma: {e}")),
    };
    Ok(View { links, luma })
}

/// The store after a finished (or repaired) install: links and `.luma` agree on `version`.
fn assert_settled(dir: &Path, version: &str) {
    let view = reader_view(dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(view.links, Links::Pair(version.to_owned()), "links");
    assert_eq!(view.luma.as_deref(), Some(version), ".luma");
    let temps: Vec<String> = names(dir)
        .into_iter()
        .filter(|n| n.starts_with(TEMP_PREFIX))
        .collect();
    assert!(temps.is_empty(), "temp files left: {temps:?}");
}

#[test]
fn lays_out_the_full_chain_the_key_two_links_and_luma() {
    let (_root, store) = new_store();
    assert_eq!(store.layout(), Layout::V4);
    let bundle = &bundles(1)[0];
    let installed = store.install(&request("v1", bundle)).unwrap();
    let dir = store.path();
    let pem = installed.file.file_name().unwrap().to_str().unwrap();
    let file = FileName::parse(pem).unwrap();
    assert_eq!((file.certificate, file.version), ("mykv.server-tls", "v1"));
    let keyid = format!("mykv.server-tls.v1.keyid.{}", file.stamp);
    assert_eq!(installed.link, dir.join("mykv.server-tls.pem"));
    assert_eq!(installed.key_file, Some(dir.join(&keyid)));
    assert_eq!(installed.key_link, Some(dir.join("mykv.server-tls.keyid")));
    assert_eq!(installed.luma, Some(dir.join("mykv.server-tls.luma")));
    assert_eq!((installed.custom_link, installed.live_link), (None, None));
    assert_eq!(installed.thumbprint, bundle.thumbprint());
    assert_eq!(
        names(dir),
        [
            "mykv.server-tls.keyid".to_owned(),
            "mykv.server-tls.luma".to_owned(),
            "mykv.server-tls.pem".to_owned(),
            keyid.clone(),
            pem.to_owned(),
        ]
    );
    assert_eq!(
        std::fs::read_link(dir.join("mykv.server-tls.pem")).unwrap(),
        Path::new(pem)
    );
    assert_eq!(
        std::fs::read_link(dir.join("mykv.server-tls.keyid")).unwrap(),
        Path::new(&keyid)
    );
    assert_eq!(mode(&dir.join(pem)), 0o600);
    assert_eq!(mode(&dir.join(&keyid)), 0o600);
    assert_eq!(mode(&dir.join("mykv.server-tls.luma")), 0o644);
    // The chain leaf first, without the key; the key alone.
    assert_eq!(
        std::fs::read_to_string(dir.join(pem)).unwrap(),
        bundle.fullchain_pem()
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(&keyid)).unwrap(),
        *bundle.key_pem()
    );
    let luma = Luma::parse(&std::fs::read(dir.join("mykv.server-tls.luma")).unwrap()).unwrap();
    assert_eq!(
        luma,
        Luma {
            format: 1,
            vault: "mykv".into(),
            certificate: "server-tls".into(),
            version: "v1".into(),
            timestamp: file.stamp.into(),
            pem: pem.into(),
            keyid: keyid.clone(),
            thumbprint: bundle.thumbprint(),
            sha256: bundle.sha256_fingerprint(),
            subject: "CN=host0.example.com".into(),
            not_before: bundle.leaf.not_before,
            not_after: bundle.leaf.not_after,
            installed_at: parse_stamp(file.stamp).unwrap(),
        }
    );
    assert_settled(dir, "v1");

    let current = store.current("mykv", "server-tls").unwrap().unwrap();
    assert_eq!(current.version, "v1");
    assert_eq!(current.file, installed.file);
    assert_eq!(current.link, installed.link);
    let read_back = store
        .installed("mykv", "server-tls", None)
        .unwrap()
        .unwrap();
    assert_eq!(read_back.thumbprint, bundle.thumbprint());
    assert_eq!(read_back.key_file, installed.key_file);
    assert_eq!(read_back.luma, installed.luma);
    assert_eq!(store.versions("mykv", "server-tls").unwrap(), ["v1"]);
    assert_eq!(store.current("mykv", "other").unwrap(), None);
}

#[test]
fn keeps_two_versions_and_gives_each_install_its_own_names() {
    let (_root, store) = new_store();
    let bundles = bundles(3);
    let mut files = Vec::new();
    for (version, bundle) in ["v1", "v2"].iter().zip(&bundles) {
        let installed = store.install(&request(version, bundle)).unwrap();
        assert!(installed.pruned.is_empty());
        files.push(installed);
    }
    let v3 = store.install(&request("v3", &bundles[2])).unwrap();
    let mut pruned = v3.pruned.clone();
    pruned.sort();
    let mut expected = vec![files[0].file.clone(), files[0].key_file.clone().unwrap()];
    expected.sort();
    assert_eq!(pruned, expected);
    assert_eq!(store.versions("mykv", "server-tls").unwrap(), ["v3", "v2"]);
    assert_eq!(names(store.path()).len(), 3 + 4);

    // v2 again: new names (a later timestamp), the older v2 pair goes, v3 stays.
    let again = store.install(&request("v2", &bundles[1])).unwrap();
    assert_ne!(again.file, files[1].file);
    assert!(again.pruned.contains(&files[1].file));
    assert_eq!(store.versions("mykv", "server-tls").unwrap(), ["v2", "v3"]);
    assert_settled(store.path(), "v2");

    let keep_one = InstallRequest {
        keep: NonZeroU32::MIN,
        ..request("v4", &bundles[0])
    };
    store.install(&keep_one).unwrap();
    assert_eq!(store.versions("mykv", "server-tls").unwrap(), ["v4"]);
    assert_eq!(names(store.path()).len(), 3 + 2);
    assert_settled(store.path(), "v4");
}

#[test]
fn never_prunes_a_pair_a_link_points_to() {
    let (_root, store) = new_store();
    let bundles = bundles(3);
    let first = store.install(&request("v1", &bundles[0])).unwrap();
    // Someone's own link to the first pair's key.
    std::os::unix::fs::symlink(
        first.key_file.as_ref().unwrap().file_name().unwrap(),
        store.path().join("pinned.key"),
    )
    .unwrap();
    store.rescan();
    for (version, bundle) in ["v2", "v3"].iter().zip(&bundles[1..]) {
        let keep_one = InstallRequest {
            keep: NonZeroU32::MIN,
            ..request(version, bundle)
        };
        store.install(&keep_one).unwrap();
    }
    assert_eq!(store.versions("mykv", "server-tls").unwrap(), ["v3", "v1"]);
    assert!(first.key_file.unwrap().exists());
}

#[test]
fn timestamps_sort_by_install_and_never_repeat() {
    let at = time::macros::datetime!(2026-12-02 01:31:24.123456789 UTC);
    let stamp = format_stamp(at);
    assert_eq!(stamp, "20261202T013124.123456789Z");
    assert_eq!(stamp.len(), STAMP_LEN);
    assert_eq!(parse_stamp(&stamp), Some(at));
    // A clock behind the newest install: one nanosecond after it.
    assert_eq!(
        next_stamp(at - Duration::seconds(5), Some(&stamp)),
        "20261202T013124.123456790Z"
    );
    assert_eq!(next_stamp(at, Some(&stamp)), "20261202T013124.123456790Z");
    assert_eq!(
        next_stamp(at + Duration::seconds(1), Some(&stamp)),
        "20261202T013125.123456789Z"
    );
    assert!(format_stamp(at + Duration::nanoseconds(1)) > stamp);
    assert!(format_stamp(at + Duration::days(400)) > stamp);
    for bad in [
        "20261202T013124Z",
        "20261302T013124.123456789Z",
        "20261202T253124.123456789Z",
        "20261202X013124.123456789Z",
        "2026120aT013124.123456789Z",
        "20261202T013124.123456789z",
    ] {
        assert_eq!(parse_stamp(bad), None, "{bad}");
    }

    let name = format!("mykv.server-tls.0123abcd.keyid.{stamp}");
    let file = FileName::parse(&name).unwrap();
    assert_eq!(
        (file.certificate, file.version, file.kind, file.stamp),
        ("mykv.server-tls", "0123abcd", Kind::Keyid, stamp.as_str())
    );
    for not_ours in [
        format!("mykv.server-tls.0123abcd.der.{stamp}"),
        format!("mykv.server-tls.pem.{stamp}"),
        format!("mykv.server.tls.0123abcd.pem.{stamp}"),
        "mykv.server-tls.0123abcd".to_owned(),
        "mykv.server-tls".to_owned(),
    ] {
        assert_eq!(FileName::parse(&not_ours), None, "{not_ours}");
    }
    assert!(is_v4_name("mykv.server-tls.luma"));
    assert!(is_v4_name("mykv.server-tls.pem"));
    assert!(!is_v4_name("mykv.server-tls"));
    assert!(!is_v4_name("mykv.server-tls.0123abcd"));
    assert!(!is_v4_name("mykv.server-tls.live"));
    let temp = |name: &str| format!("{TEMP_PREFIX}{name}.0123456789abcdef");
    assert!(is_temp_of_v4(&temp("mykv.server-tls.luma")));
    assert!(is_temp_of_v4(&temp(&name)));
    assert!(!is_temp_of_v4(&temp("mykv.server-tls.0123abcd")));
    assert!(!is_temp_of_v4(&temp("mykv.server-tls")));
}

#[test]
fn a_3x_and_a_4x_store_share_a_directory_without_touching_each_other() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("store");
    let bundles = bundles(3);
    let v3 = Store::open(&path).unwrap();
    let v4 = open_v4(&path);
    // The same certificate in both layouts, three versions each: each prunes its own.
    for (version, bundle) in ["a1", "a2", "a3"].iter().zip(&bundles) {
        v3.install(&InstallRequest {
            link_name: Some("web.pem"),
            certbot_layout: true,
            ..request(version, bundle)
        })
        .unwrap();
        v4.install(&request(version, bundle)).unwrap();
    }
    let is_3x = |n: &String| !is_v4_name(n);
    let file_name = |p: &std::path::PathBuf| p.file_name().unwrap().to_str().unwrap().to_owned();
    let all = names(&path);
    let (v4_names, v3_names): (Vec<String>, Vec<String>) =
        all.iter().cloned().partition(|n| is_v4_name(n));
    assert_eq!(
        v3_names,
        [
            "mykv.server-tls",
            "mykv.server-tls.a2",
            "mykv.server-tls.a2.d",
            "mykv.server-tls.a3",
            "mykv.server-tls.a3.d",
            "mykv.server-tls.live",
            "web.pem",
        ]
    );
    assert_eq!(v4_names.len(), 3 + 4);
    assert_eq!(v3.versions("mykv", "server-tls").unwrap(), ["a3", "a2"]);
    assert_eq!(v4.versions("mykv", "server-tls").unwrap(), ["a3", "a2"]);
    assert_settled(&path, "a3");
    assert_eq!(
        v3.current("mykv", "server-tls").unwrap().unwrap().file,
        path.join("mykv.server-tls.a3")
    );

    // A 3.x version may not take a 4.x name.
    for reserved in ["luma", "pem", "keyid"] {
        let error = v3.install(&request(reserved, &bundles[0])).unwrap_err();
        assert_eq!(error.code(), "store.invalid_name", "{reserved}");
    }

    // Each open removes only its own layout's debris.
    let v3_temp = format!("{TEMP_PREFIX}mykv.server-tls.a9.0123456789abcdef");
    let v4_temp = format!("{TEMP_PREFIX}mykv.server-tls.luma.0123456789abcdef");
    for temp in [&v3_temp, &v4_temp] {
        std::fs::write(path.join(temp), b"partial").unwrap();
    }
    drop(open_v4(&path));
    assert!(path.join(&v3_temp).exists() && !path.join(&v4_temp).exists());
    std::fs::write(path.join(&v4_temp), b"partial").unwrap();
    drop(Store::open(&path).unwrap());
    assert!(!path.join(&v3_temp).exists() && path.join(&v4_temp).exists());
    std::fs::remove_file(path.join(&v4_temp)).unwrap();

    // Removing the certificate in one layout leaves the other's files.
    let v3 = Store::open(&path).unwrap();
    let removed = v3
        .remove_certificate("mykv", "server-tls", Some("web.pem"))
        .unwrap();
    assert!(removed.iter().all(|p| is_3x(&file_name(p))));
    assert_eq!(names(&path), v4_names);
    assert_settled(&path, "a3");

    let v4 = open_v4(&path);
    for (version, bundle) in ["a1", "a2", "a3"].iter().zip(&bundles) {
        v3.install(&request(version, bundle)).unwrap();
    }
    let v3_now: Vec<String> = names(&path).into_iter().filter(is_3x).collect();
    let removed = v4.remove_certificate("mykv", "server-tls", None).unwrap();
    assert_eq!(removed.len(), 3 + 4);
    assert_eq!(names(&path), v3_now);
    assert_eq!(v3.versions("mykv", "server-tls").unwrap(), ["a3", "a2"]);
    assert_eq!(v4.current("mykv", "server-tls").unwrap(), None);
}

#[test]
fn acls_and_file_access_apply_to_the_key_and_the_chain() {
    let (_root, store) = new_store();
    let bundle = &bundles(1)[0];
    let acls = [Acl::User("4321".into()), Acl::Group("4322".into())];
    let installed = store
        .install(&InstallRequest {
            acls: &acls,
            ..request("v1", bundle)
        })
        .unwrap();
    let files = [installed.file.clone(), installed.key_file.clone().unwrap()];
    let principals = [Principal::User(4321), Principal::Group(4322)];
    for file in &files {
        let acl = PosixAcl::read(file).unwrap().expect("an ACL");
        assert_eq!(acl.principals(), principals, "{}", file.display());
    }
    let dir_acl = PosixAcl::read(store.path())
        .unwrap()
        .expect("a directory ACL");
    assert_eq!(dir_acl.principals(), principals);
    // `.luma` is readable by all and has no ACL.
    assert_eq!(
        PosixAcl::read(installed.luma.as_ref().unwrap()).unwrap(),
        None
    );

    assert_eq!(store.apply_acls("mykv", "server-tls", &[]).unwrap(), 1);
    for file in &files {
        assert_eq!(PosixAcl::read(file).unwrap(), None);
        assert_eq!(mode(file), 0o600);
    }
    assert_eq!(PosixAcl::read(store.path()).unwrap(), None);

    let me = rustix::process::getegid().as_raw().to_string();
    let access = FileAccess {
        owner: None,
        group: Some(me),
        mode: Some(0o640),
    };
    let installed = store
        .install_with_access(&request("v2", bundle), &access)
        .unwrap();
    for file in [installed.file, installed.key_file.unwrap()] {
        assert_eq!(mode(&file), 0o640, "{}", file.display());
    }
    assert_eq!(mode(&installed.luma.unwrap()), 0o644);
    let bad = FileAccess {
        mode: Some(0o644),
        ..FileAccess::default()
    };
    let error = store
        .install_with_access(&request("v3", bundle), &bad)
        .unwrap_err();
    assert_eq!(error.code(), "store.bad_file_mode");
    assert_eq!(store.versions("mykv", "server-tls").unwrap(), ["v2", "v1"]);
}

#[test]
fn an_occupied_link_or_a_bad_name_changes_nothing() {
    let (_root, store) = new_store();
    let bundle = &bundles(1)[0];
    std::fs::write(store.path().join("mykv.server-tls.keyid"), b"someone's").unwrap();
    let error = store.install(&request("v1", bundle)).unwrap_err();
    assert_eq!(error.code(), "store.link_occupied");
    assert_eq!(names(store.path()), ["mykv.server-tls.keyid"]);
    let long = "v".repeat(127);
    let long_vault = InstallRequest {
        vault: &long[..60],
        ..request(&long, bundle)
    };
    let error = store.install(&long_vault).unwrap_err();
    assert_eq!(error.code(), "store.invalid_name");
    assert!(error.to_string().contains("194 bytes"), "{error}");
    assert_eq!(names(store.path()), ["mykv.server-tls.keyid"]);
}

#[test]
fn open_repairs_links_that_disagree_and_a_luma_behind_them() {
    let (_root, store) = new_store();
    let path = store.path().to_path_buf();
    let bundles = bundles(2);
    let first = store.install(&request("v1", &bundles[0])).unwrap();
    let first_key = first.key_file.clone().unwrap();
    let luma = path.join("mykv.server-tls.luma");
    let first_luma = std::fs::read(&luma).unwrap();
    let second = store.install(&request("v2", &bundles[1])).unwrap();
    drop(store);
    // The `.keyid` link back on v1 and `.luma` still naming v1: a crash between the swaps.
    let keyid_link = path.join("mykv.server-tls.keyid");
    std::fs::remove_file(&keyid_link).unwrap();
    std::os::unix::fs::symlink(first_key.file_name().unwrap(), &keyid_link).unwrap();
    std::fs::write(&luma, &first_luma).unwrap();
    let store = open_v4(&path);
    assert_settled(&path, "v2");
    assert_eq!(
        std::fs::read_link(&keyid_link).unwrap(),
        second.key_file.unwrap().file_name().unwrap()
    );

    // A `.luma` that does not parse is rewritten from the links.
    std::fs::write(&luma, b"{ not json").unwrap();
    drop(store);
    let store = open_v4(&path);
    assert_settled(&path, "v2");

    // The `.pem` link on a pair whose key is gone: to the `.keyid` link's complete pair.
    std::fs::remove_file(&first_key).unwrap();
    let pem_link = path.join("mykv.server-tls.pem");
    std::fs::remove_file(&pem_link).unwrap();
    std::os::unix::fs::symlink(first.file.file_name().unwrap(), &pem_link).unwrap();
    drop(store);
    let store = open_v4(&path);
    assert_settled(&path, "v2");
    assert_eq!(
        store
            .installed("mykv", "server-tls", None)
            .unwrap()
            .unwrap()
            .thumbprint,
        bundles[1].thumbprint()
    );
}

#[test]
fn a_reader_sees_a_matching_pair_at_every_step_of_every_rotation() {
    let (_root, store) = new_store();
    let path = store.path().to_path_buf();
    let bundles = bundles(3);
    let checked = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let between = std::rc::Rc::new(std::cell::Cell::new(0u32));
    {
        let (path, checked, between) = (path.clone(), checked.clone(), between.clone());
        set_hook(move |step| {
            let view = reader_view(&path).unwrap_or_else(|e| panic!("before {step:?}: {e}"));
            if view.links == Links::Apart {
                // Only between the two swaps may the links name two installs.
                assert_eq!(step, Step::KeyLink, "links apart before {step:?}");
                between.set(between.get() + 1);
            }
            if step == Step::Done {
                let luma = view.luma.expect("a .luma once installed");
                assert_eq!(
                    view.links,
                    Links::Pair(luma),
                    "settled at the end of an install"
                );
            }
            checked.set(checked.get() + 1);
            Ok(())
        });
    }
    let rotations = 30;
    for i in 0..rotations {
        let version = format!("v{i}");
        let installed = store
            .install(&request(&version, &bundles[i % bundles.len()]))
            .unwrap();
        assert_eq!(installed.version, version);
    }
    clear_hook();
    assert_eq!(checked.get(), 8 * rotations as u32);
    // Every rotation but the first (no `.keyid` link yet) had its links apart once.
    assert_eq!(between.get(), rotations as u32);
    assert_settled(&path, &format!("v{}", rotations - 1));
}

#[test]
fn the_reader_check_catches_a_luma_ahead_of_the_links_and_a_lost_pair() {
    let (_root, store) = new_store();
    let path = store.path().to_path_buf();
    let bundles = bundles(2);
    store.install(&request("v1", &bundles[0])).unwrap();
    let v1_luma = std::fs::read(path.join("mykv.server-tls.luma")).unwrap();
    let second = store.install(&request("v2", &bundles[1])).unwrap();
    let v2_luma = std::fs::read(path.join("mykv.server-tls.luma")).unwrap();
    drop(store);
    assert_settled(&path, "v2");

    // `.luma` written before the links moved: the links (on v1) are behind it.
    let pem_link = path.join("mykv.server-tls.pem");
    let keyid_link = path.join("mykv.server-tls.keyid");
    let point = |link: &Path, target: &Path| {
        std::fs::remove_file(link).unwrap();
        std::os::unix::fs::symlink(target.file_name().unwrap(), link).unwrap();
    };
    let v1_pem = Luma::parse(&v1_luma).unwrap().pem;
    let v1_keyid = Luma::parse(&v1_luma).unwrap().keyid;
    point(&pem_link, Path::new(&v1_pem));
    point(&keyid_link, Path::new(&v1_keyid));
    let error = reader_view(&path).expect_err("a .luma ahead of the links");
    assert!(error.contains("behind"), "{error}");

    // Links on a mismatched pair compared by name: protocol B waits, it never pairs them.
    point(&pem_link, &second.file);
    let view = reader_view(&path).expect_err("still behind for .keyid");
    assert!(view.contains("behind"), "{view}");
    std::fs::write(path.join("mykv.server-tls.luma"), &v1_luma).unwrap();
    assert_eq!(reader_view(&path).unwrap().links, Links::Apart);

    // The pair `.luma` names pruned under a reader: caught.
    std::fs::write(path.join("mykv.server-tls.luma"), &v2_luma).unwrap();
    point(&keyid_link, second.key_file.as_ref().unwrap());
    std::fs::remove_file(second.key_file.as_ref().unwrap()).unwrap();
    assert!(reader_view(&path).is_err());
}

mod crash;
