//! The store's path (issue 11, finding 4): system directories are refused and left as they are,
//! the path is walked from `/` without following a link or trusting a parent others can change,
//! and once the store is open every later step (reading back what is installed, pruning,
//! uninstalling) goes through the directory handle, so a path swapped afterwards redirects
//! nothing.

use std::num::NonZeroU32;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use akvvm_cert::certificate::CertificateBundle;
use akvvm_cert::store::path::{SUGGESTED_STORE, normalize, system_directory};
use akvvm_cert::store::{InstallRequest, Store};
use akvvm_testkit::certs::generate;
use akvvm_testkit::files::{mode, names};

fn request<'a>(version: &'a str, bundle: &'a CertificateBundle) -> InstallRequest<'a> {
    InstallRequest {
        vault: "myvault",
        name: "web",
        version,
        bundle,
        link_name: Some("nginx.pem"),
        acls: &[],
        keep: NonZeroU32::new(1).unwrap(),
        certbot_layout: true,
    }
}

#[test]
fn system_directories_are_refused_in_every_spelling_and_left_as_they_are() {
    for path in [
        "/",
        "//",
        "/etc",
        "/etc/",
        "/etc/ssl",
        "/etc/ssl/certs",
        "/etc/ssl/certs/",
        "//etc//ssl/./certs",
        "/etc/ssl/private/../certs",
        "/etc/pki",
        "/etc/pki/tls/certs",
        "/etc/pki/ca-trust/source/anchors",
        "/usr",
        "/usr/local",
        "/usr/lib64",
        "/usr/local/share/ca-certificates",
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
        "/boot",
        "/dev",
        "/dev/shm",
        "/proc",
        "/proc/self/cwd",
        "/sys/kernel",
        "/run",
        "/var",
        "/var/lib",
        "/var/lib/waagent",
        "/home",
        "/root",
        "/tmp",
        "/var/tmp/",
    ] {
        let normalized = normalize(Path::new(path)).unwrap();
        assert!(
            system_directory(&normalized).is_some(),
            "{path} ({}) is not refused",
            normalized.display()
        );
        let before = std::fs::symlink_metadata(&normalized).ok();
        let error = Store::open(Path::new(path)).unwrap_err();
        assert_eq!(error.code(), "store.system_directory", "{path}: {error}");
        let message = error.to_string();
        assert!(message.contains(SUGGESTED_STORE), "{message}");
        assert!(
            message.contains(&format!(
                "certificateStoreLocation {} is",
                normalized.display()
            )),
            "{message}"
        );
        let after = std::fs::symlink_metadata(&normalized).ok();
        assert_eq!(
            before.map(|m| (m.mode(), m.uid())),
            after.map(|m| (m.mode(), m.uid())),
            "{path} changed"
        );
    }
    for path in [
        "/etc/nginx/certs",
        "/etc/ssl/kv",
        "/var/lib/waagent/Microsoft.Azure.KeyVault.Store",
        "/var/lib/akvvm-certs",
        "/tmp/akvvm/store",
        "/opt/app/certs",
    ] {
        assert_eq!(system_directory(Path::new(path)), None, "{path}");
    }
}

#[test]
fn etc_ssl_certs_keeps_its_mode() {
    let certs = Path::new("/etc/ssl/certs");
    let Ok(before) = std::fs::metadata(certs) else {
        return;
    };
    assert_eq!(
        Store::open(certs).unwrap_err().code(),
        "store.system_directory"
    );
    assert_eq!(std::fs::metadata(certs).unwrap().mode(), before.mode());
}

#[test]
fn a_link_on_the_way_to_the_store_or_as_the_store_is_refused_and_nothing_is_changed() {
    let root = tempfile::tempdir().unwrap();
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();

    // A parent that is a link: the store would be made wherever it points.
    let link = root.path().join("link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let error = Store::open(&link.join("store")).unwrap_err();
    assert_eq!(error.code(), "store.symlink_in_path", "{error}");
    assert!(
        error.to_string().contains(&link.display().to_string()),
        "{error}"
    );
    assert!(
        names(&elsewhere).is_empty(),
        "something was made through the link"
    );

    // The store directory itself a link: it would be narrowed to 0700 and written to.
    let error = Store::open(&link).unwrap_err();
    assert_eq!(error.code(), "store.symlink_in_path", "{error}");
    assert_eq!(mode(&elsewhere), 0o755);

    // A link further up, and a `..` spelled after it: the walk never resolves a link.
    let deep = root.path().join("a/b");
    std::fs::create_dir_all(&deep).unwrap();
    std::os::unix::fs::symlink(&elsewhere, deep.join("c")).unwrap();
    let error = Store::open(&deep.join("c/d/store")).unwrap_err();
    assert_eq!(error.code(), "store.symlink_in_path");
    assert!(names(&elsewhere).is_empty());
    // `..` is taken lexically, so `c/..` never goes through the link.
    let store = Store::open(&deep.join("c/../store")).unwrap();
    assert_eq!(store.path(), deep.join("store"));
}

#[test]
fn a_parent_others_can_write_is_refused_but_a_root_sticky_one_is_not() {
    let root = tempfile::tempdir().unwrap();
    let open = root.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = Store::open(&open.join("store")).unwrap_err();
    assert_eq!(error.code(), "store.unsafe_path", "{error}");
    let message = error.to_string();
    assert!(message.contains("mode 0777"), "{message}");
    assert!(message.contains(&open.display().to_string()), "{message}");
    assert!(names(&open).is_empty(), "the store was made under it");

    let group = root.path().join("group");
    std::fs::create_dir(&group).unwrap();
    std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o775)).unwrap();
    assert_eq!(
        Store::open(&group.join("x/store")).unwrap_err().code(),
        "store.unsafe_path"
    );
    assert!(names(&group).is_empty());

    if !akvvm_cert::machine::require_root("store path: a sticky root directory") {
        return;
    }
    // /tmp's kind: root's, sticky, writable by all. Only an entry's owner can move it.
    let sticky = root.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let store = Store::open(&sticky.join("certs/store")).unwrap();
    assert_eq!(mode(store.path()), 0o700);
    assert_eq!(mode(&sticky.join("certs")), 0o755);
    // ... but a directory another user made there first is theirs.
    let planted = sticky.join("planted");
    std::fs::create_dir(&planted).unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    let error = Store::open(&planted.join("store")).unwrap_err();
    assert_eq!(error.code(), "store.unsafe_path");
    assert!(error.to_string().contains("uid 65534"), "{error}");
    // A sticky directory that is not root's is not trusted.
    std::os::unix::fs::chown(&sticky, Some(65534), Some(65534)).unwrap();
    assert_eq!(
        Store::open(&sticky.join("certs/store")).unwrap_err().code(),
        "store.unsafe_path"
    );
}

/// The store at `<root>/p/store` after an install, and `<root>/p` swapped for a link to a
/// look-alike `<root>/decoy/store` holding another certificate's files under the same names.
struct Swapped {
    _root: tempfile::TempDir,
    store: Store,
    real: std::path::PathBuf,
    decoy: std::path::PathBuf,
}

fn install_then_swap_the_parent(bundle: &CertificateBundle, other: &CertificateBundle) -> Swapped {
    let root = tempfile::tempdir().unwrap();
    let parent = root.path().join("p");
    let store = Store::open(&parent.join("store")).unwrap();
    store.install(&request("v1", bundle)).unwrap();

    // The decoy: the same layout with another certificate (as another store would hold it).
    let decoy_parent = root.path().join("decoy");
    let decoy_store = Store::open(&decoy_parent.join("store")).unwrap();
    decoy_store.install(&request("v1", other)).unwrap();
    drop(decoy_store);

    std::fs::rename(&parent, root.path().join("p-moved")).unwrap();
    std::os::unix::fs::symlink(&decoy_parent, &parent).unwrap();
    Swapped {
        real: root.path().join("p-moved/store"),
        decoy: decoy_parent.join("store"),
        _root: root,
        store,
    }
}

#[test]
fn a_parent_swapped_after_open_redirects_neither_reads_nor_prunes() {
    let bundle = generate("www.example.com", 30).bundle;
    let other = generate("evil.example.com", 30).bundle;
    let swapped = install_then_swap_the_parent(&bundle, &other);
    let decoy_before = names(&swapped.decoy);
    assert!(decoy_before.contains(&"myvault.web.v1.d".to_string()));

    // Reading back reads the store akvvm opened, not the decoy.
    let installed = swapped
        .store
        .installed("myvault", "web", Some("nginx.pem"))
        .unwrap()
        .unwrap();
    assert_eq!(installed.thumbprint, bundle.thumbprint());

    // A new version prunes v1 (keep 1): in the real store, never in the decoy.
    let installed = swapped.store.install(&request("v2", &bundle)).unwrap();
    assert_eq!(installed.pruned.len(), 2, "{:?}", installed.pruned);
    assert_eq!(names(&swapped.decoy), decoy_before, "the decoy was pruned");
    assert!(
        std::fs::read_dir(swapped.decoy.join("myvault.web.v1.d"))
            .unwrap()
            .count()
            >= 4
    );
    let real = names(&swapped.real);
    assert!(real.contains(&"myvault.web.v2".to_string()), "{real:?}");
    assert!(!real.contains(&"myvault.web.v1.d".to_string()), "{real:?}");
}

#[test]
fn uninstall_after_a_parent_swap_removes_only_what_akvvm_installed_in_its_store() {
    let bundle = generate("www.example.com", 30).bundle;
    let other = generate("evil.example.com", 30).bundle;
    let swapped = install_then_swap_the_parent(&bundle, &other);
    let decoy_before = names(&swapped.decoy);

    let removed = swapped
        .store
        .remove_certificate("myvault", "web", Some("nginx.pem"))
        .unwrap();
    assert_eq!(removed.len(), 5, "{removed:?}");
    assert!(
        names(&swapped.real).is_empty(),
        "{:?}",
        names(&swapped.real)
    );
    assert_eq!(names(&swapped.decoy), decoy_before, "the decoy was touched");
}

#[test]
fn pruning_and_uninstalling_remove_a_planted_link_never_what_it_points_to() {
    let bundle = generate("www.example.com", 30).bundle;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    store.install(&request("v1", &bundle)).unwrap();
    let outside = root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"keep").unwrap();

    // v1's certbot-style directory replaced by a link to a directory outside the store.
    let v1_dir = store.path().join("myvault.web.v1.d");
    std::fs::remove_dir_all(&v1_dir).unwrap();
    std::os::unix::fs::symlink(&outside, &v1_dir).unwrap();
    // And a link inside v2's directory, for the uninstall.
    store.install(&request("v2", &bundle)).unwrap();
    assert!(std::fs::symlink_metadata(&v1_dir).is_err(), "v1 was pruned");
    assert_eq!(names(&outside), ["precious"]);

    let v2_dir = store.path().join("myvault.web.v2.d");
    std::os::unix::fs::symlink(&outside, v2_dir.join("sub")).unwrap();
    std::fs::create_dir(v2_dir.join("nested")).unwrap();
    std::os::unix::fs::symlink(&outside, v2_dir.join("nested/sub")).unwrap();
    // Another certificate, and someone else's file, stay.
    let mut other = request("v1", &bundle);
    other.name = "api";
    other.link_name = None;
    store.install(&other).unwrap();
    std::fs::write(store.path().join("README"), b"admin's").unwrap();

    store
        .remove_certificate("myvault", "web", Some("nginx.pem"))
        .unwrap();
    assert_eq!(names(&outside), ["precious"]);
    assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep");
    assert_eq!(
        names(store.path()),
        [
            "README",
            "myvault.api",
            "myvault.api.live",
            "myvault.api.v1",
            "myvault.api.v1.d"
        ]
    );
}
