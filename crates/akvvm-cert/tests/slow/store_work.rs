//! The work of an install does not grow with the store: counted with
//! [`store_operations`] (the store's system calls and the directory entries it reads, on this
//! thread), one new certificate, one rotation that prunes, one ACL change and one turned-off
//! certbot output cost the same in a store of 10 certificates and in one of 1,000. A scan per
//! install (what akvvm 3.x did: every link and every ACL of the store read again) fails here.
//! The same holds in the 4.x layout (`Layout::V4`: two files, two links and `.luma` per install).

use std::num::NonZeroU32;

use akvvm_cert::certificate::CertificateBundle;
use akvvm_cert::store::{Acl, InstallRequest, Layout, Store, store_operations, store_syncs};
use akvvm_testkit::certs::generate;

fn request<'a>(
    name: &'a str,
    version: &'a str,
    bundle: &'a CertificateBundle,
    acls: &'a [Acl],
) -> InstallRequest<'a> {
    InstallRequest {
        vault: "myvault",
        name,
        version,
        bundle,
        link_name: None,
        acls,
        keep: NonZeroU32::new(2).unwrap(),
        certbot_layout: false,
    }
}

/// The operations of each measured step in a store that already holds `certificates`
/// certificates (the even ones with a custom link and an ACL).
fn work_in_a_store_of(certificates: usize, bundle: &CertificateBundle) -> Vec<(&'static str, u64)> {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    let acls = [Acl::User("4321".into())];
    let names: Vec<String> = (0..certificates).map(|i| format!("cert-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let link = format!("{name}.pem");
        let even = i % 2 == 0;
        let granted: &[Acl] = if even { &acls } else { &[] };
        store
            .install(&InstallRequest {
                link_name: even.then_some(link.as_str()),
                ..request(name, "v1", bundle, granted)
            })
            .unwrap();
    }
    // A new cycle: the first change scans the store once (not measured), the rest do not.
    store.rescan();
    store
        .install(&request("cert-0", "v2", bundle, &acls))
        .unwrap();

    let mut work = Vec::new();
    let mut measure = |step: &'static str, run: &mut dyn FnMut()| {
        let before = store_operations();
        run();
        work.push((step, store_operations() - before));
    };
    measure("a new certificate", &mut || {
        store.install(&request("extra", "v1", bundle, &[])).unwrap();
    });
    measure("a new version", &mut || {
        store
            .install(&request("cert-1", "v2", bundle, &[]))
            .unwrap();
    });
    measure("a new version that prunes one", &mut || {
        let installed = store
            .install(&request("cert-1", "v3", bundle, &[]))
            .unwrap();
        assert_eq!(installed.pruned.len(), 1);
    });
    measure("a new version with an ACL", &mut || {
        store
            .install(&request("cert-2", "v2", bundle, &acls))
            .unwrap();
    });
    measure("an ACL change", &mut || {
        assert_eq!(store.apply_acls("myvault", "cert-2", &[]).unwrap(), 2);
    });
    measure("the certbot output turned on", &mut || {
        store
            .install(&InstallRequest {
                certbot_layout: true,
                ..request("cert-3", "v2", bundle, &[])
            })
            .unwrap();
    });
    measure("the certbot output turned off", &mut || {
        store
            .install(&request("cert-3", "v3", bundle, &[]))
            .unwrap();
    });
    work
}

/// [`work_in_a_store_of`] in the 4.x layout.
fn work_in_a_4x_store_of(
    certificates: usize,
    bundle: &CertificateBundle,
) -> Vec<(&'static str, u64)> {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("store");
    let store = Store::open_layout(&path, Layout::V4).unwrap();
    let acls = [Acl::User("4321".into())];
    for i in 0..certificates {
        let granted: &[Acl] = if i % 2 == 0 { &acls } else { &[] };
        store
            .install(&request(&format!("cert-{i}"), "v1", bundle, granted))
            .unwrap();
    }
    // Opened again, as the agent starts: the open's check of every certificate's links is not
    // measured, nor the cycle's first change (one scan).
    drop(store);
    let store = Store::open_layout(&path, Layout::V4).unwrap();
    store.rescan();
    store
        .install(&request("cert-0", "v2", bundle, &acls))
        .unwrap();

    let mut work = Vec::new();
    let mut measure = |step: &'static str, run: &mut dyn FnMut()| {
        let before = store_operations();
        run();
        work.push((step, store_operations() - before));
    };
    measure("a new certificate", &mut || {
        store.install(&request("extra", "v1", bundle, &[])).unwrap();
    });
    measure("a new version", &mut || {
        store
            .install(&request("cert-1", "v2", bundle, &[]))
            .unwrap();
    });
    measure("a new version that prunes one", &mut || {
        let installed = store
            .install(&request("cert-1", "v3", bundle, &[]))
            .unwrap();
        assert_eq!(installed.pruned.len(), 2, "the .pem and .keyid of v1");
    });
    measure("a new version with an ACL", &mut || {
        store
            .install(&request("cert-2", "v2", bundle, &acls))
            .unwrap();
    });
    measure("an ACL change", &mut || {
        assert_eq!(store.apply_acls("myvault", "cert-2", &[]).unwrap(), 2);
    });
    measure("the current version read back", &mut || {
        let current = store.current("myvault", "cert-3").unwrap().unwrap();
        assert_eq!(current.version, "v1");
    });
    work
}

#[test]
fn a_4x_install_costs_the_same_in_a_store_of_10_and_of_1000_certificates() {
    let bundle = generate("www.example.com", 90).bundle;
    let small = work_in_a_4x_store_of(10, &bundle);
    let large = work_in_a_4x_store_of(1_000, &bundle);
    assert_eq!(
        small, large,
        "store operations per step, 10 vs 1,000 certificates"
    );
    for (step, operations) in &small {
        assert!(*operations >= 4, "{step}: {operations} operations counted");
    }
}

#[test]
fn an_install_costs_the_same_in_a_store_of_10_and_of_1000_certificates() {
    let bundle = generate("www.example.com", 90).bundle;
    let small = work_in_a_store_of(10, &bundle);
    let large = work_in_a_store_of(1_000, &bundle);
    assert_eq!(
        small, large,
        "store operations per step, 10 vs 1,000 certificates"
    );
    for (step, operations) in &small {
        assert!(*operations > 5, "{step}: {operations} operations counted");
    }
}

#[test]
fn the_first_change_of_a_cycle_scans_once_and_nothing_else_does() {
    let bundle = generate("www.example.com", 90).bundle;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    for i in 0..50 {
        store
            .install(&request(&format!("c{i}"), "v1", &bundle, &[]))
            .unwrap();
    }
    store.rescan();
    let before = store_operations();
    store.install(&request("c0", "v2", &bundle, &[])).unwrap();
    let first = store_operations() - before;
    let before = store_operations();
    store.install(&request("c1", "v2", &bundle, &[])).unwrap();
    let second = store_operations() - before;
    // The scan reads each of the 100 entries (50 links, 50 files) and one call for each.
    assert!(first >= second + 200, "first {first}, second {second}");

    // Someone else's link, made between cycles, is seen after the next rescan: the version it
    // points to is never pruned.
    std::os::unix::fs::symlink("myvault.c2.v1", store.path().join("kept-by-hand")).unwrap();
    store.rescan();
    for version in ["v2", "v3"] {
        store
            .install(&request("c2", version, &bundle, &[]))
            .unwrap();
    }
    assert!(store.path().join("myvault.c2.v1").exists());
    assert_eq!(store.versions("myvault", "c2").unwrap(), ["v3", "v2", "v1"]);
}

/// Whether the file system under `path` takes user extended attributes: where it does not, the
/// store cannot mark a batch and installs every certificate with its fsyncs.
fn user_xattrs(path: &std::path::Path) -> bool {
    let probe = path.join("xattr-probe");
    std::fs::write(&probe, b"").unwrap();
    let supported =
        rustix::fs::setxattr(&probe, "user.probe", b"1", rustix::fs::XattrFlags::empty()).is_ok();
    std::fs::remove_file(&probe).unwrap();
    supported
}

/// The fsyncs (and syncfs) of `certificates` first installs, then of the flush that ends their
/// batch.
fn syncs_of_first_installs(certificates: usize, bundle: &CertificateBundle) -> (u64, u64) {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(&root.path().join("store")).unwrap();
    let acls = [Acl::User("4321".into())];
    let before = store_syncs();
    for i in 0..certificates {
        let name = format!("cert-{i}");
        let link = format!("{name}.pem");
        let even = i % 2 == 0;
        let granted: &[Acl] = if even { &acls } else { &[] };
        store
            .install(&InstallRequest {
                link_name: even.then_some(link.as_str()),
                ..request(&name, "v1", bundle, granted)
            })
            .unwrap();
    }
    let installs = store_syncs() - before;
    store.flush().unwrap();
    (installs, store_syncs() - before - installs)
}

#[test]
fn a_batch_of_first_installs_syncs_once_and_a_rotation_as_before() {
    let bundle = generate("www.example.com", 90).bundle;
    let root = tempfile::tempdir().unwrap();
    if !user_xattrs(root.path()) {
        // No marker possible: every install keeps its fsyncs (file, directory, each link).
        let (installs, flush) = syncs_of_first_installs(10, &bundle);
        assert_eq!((installs, flush), (10 * 3 + 5, 0));
        eprintln!("no user extended attributes here: first installs are not batched");
        return;
    }
    // The marker's fsync, then the flush's syncfs: the same for 10 and for 1,000.
    assert_eq!(syncs_of_first_installs(10, &bundle), (1, 1));
    assert_eq!(syncs_of_first_installs(1_000, &bundle), (1, 1));

    let store = Store::open(&root.path().join("store")).unwrap();
    store.install(&request("c", "v1", &bundle, &[])).unwrap();
    store.flush().unwrap();
    let rotation = |version: &str| {
        let before = store_syncs();
        let installed = store.install(&request("c", version, &bundle, &[])).unwrap();
        (store_syncs() - before, installed.pruned.len())
    };
    // The file, its directory, the link's directory; and the directory after pruning.
    assert_eq!(rotation("v2"), (3, 0));
    assert_eq!(rotation("v3"), (4, 1));
    let before = store_syncs();
    store.flush().unwrap();
    assert_eq!(
        store_syncs(),
        before,
        "a flush with no first install does nothing"
    );
}
