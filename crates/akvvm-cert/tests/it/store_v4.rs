//! The 4.x layout through the public API, with a reader in another thread: while one thread
//! rotates a certificate many times, another reads it the two ways docs/store.md tells
//! applications to (`.luma` then the two files it names; or both links, compared, then their
//! targets) and checks every pair it gets: the key must be the certificate's, `.luma` must
//! describe the files it names, and the links must never be behind `.luma`. A file the reader
//! chose may be gone (the reader then starts over), but only once two newer installs are
//! complete: two versions are kept, and never the pair the links and `.luma` name.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use akvvm_cert::certificate::{CertificateBundle, decode_pem};
use akvvm_cert::store::{InstallRequest, Layout, Luma, Store};
use akvvm_testkit::certs::generate;
use akvvm_testkit::files::names;

const ROTATIONS: usize = 120;

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

/// `(<version>, <timestamp>)` of a 4.x file name `mykv.server-tls.<version>.<kind>.<timestamp>`.
fn install_of(name: &str) -> (String, String) {
    let rest = name
        .strip_prefix("mykv.server-tls.")
        .unwrap_or_else(|| panic!("not a file of mykv.server-tls: {name}"));
    let (version, rest) = rest.split_once('.').unwrap();
    let (_kind, stamp) = rest.split_once('.').unwrap();
    (version.to_owned(), stamp.to_owned())
}

#[derive(Debug, Default)]
struct Reads {
    /// Pairs read through `.luma` and through the links.
    by_luma: u64,
    by_links: u64,
    /// Times the links named two installs (an install between its swaps) and the reader waited.
    links_apart: u64,
    /// Times a file was gone (pruned after the reader chose it) and the reader started over.
    gone: u64,
    /// What a reader must never see.
    violations: Vec<String>,
}

enum Read {
    Pair(Box<CertificateBundle>),
    Gone,
}

fn read_pair(dir: &Path, pem: &str, keyid: &str) -> Result<Read, String> {
    let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{name}: {e}")),
    };
    let (Some(chain), Some(key)) = (read(pem)?, read(keyid)?) else {
        return Ok(Read::Gone);
    };
    // Never print the key: only the decoder's verdict.
    decode_pem(&format!("{chain}{key}"))
        .map(|bundle| Read::Pair(Box::new(bundle)))
        .map_err(|e| format!("{pem} with {keyid}: {}", e.code()))
}

/// The rotation number of version `v<n>`.
fn rotation(version: &str) -> usize {
    version.strip_prefix('v').unwrap().parse().unwrap()
}

/// A file of `version`'s pair was gone: fine only when `.luma` has moved two installs past it
/// (the two newest are kept, and a pair is pruned after the install that makes it the third).
fn check_gone(dir: &Path, version: &str, reads: &mut Reads) {
    reads.gone += 1;
    let now = std::fs::read(dir.join("mykv.server-tls.luma"))
        .ok()
        .and_then(|bytes| Luma::parse(&bytes))
        .map(|luma| rotation(&luma.version));
    if now.is_none_or(|now| now < rotation(version) + 2) {
        let now = now.map_or_else(|| "nothing".to_owned(), |n| format!("v{n}"));
        reads.violations.push(format!(
            "{version}'s pair was pruned while .luma named {now}"
        ));
    }
}

/// One read each way; violations are recorded.
fn read_once(dir: &Path, reads: &mut Reads) {
    let luma_bytes = match std::fs::read(dir.join("mykv.server-tls.luma")) {
        Ok(bytes) => bytes,
        Err(e) => {
            reads.violations.push(format!("read .luma: {e}"));
            return;
        }
    };
    let Some(luma) = Luma::parse(&luma_bytes) else {
        reads.violations.push("a .luma that does not parse".into());
        return;
    };
    // Read after `.luma`: links only move forward and `.luma` follows them.
    let link = |suffix: &str| {
        std::fs::read_link(dir.join(format!("mykv.server-tls.{suffix}")))
            .map(|t| t.to_str().unwrap().to_owned())
    };
    let (pem, keyid) = match (link("pem"), link("keyid")) {
        (Ok(pem), Ok(keyid)) => (pem, keyid),
        (pem, keyid) => {
            reads
                .violations
                .push(format!("a link is missing: {pem:?} {keyid:?}"));
            return;
        }
    };
    for target in [&pem, &keyid] {
        if install_of(target).1 < luma.timestamp {
            reads.violations.push(format!(
                ".luma names {} but a link is behind it: {target}",
                luma.timestamp
            ));
        }
    }

    // `.luma`, then the two files it names.
    match read_pair(dir, &luma.pem, &luma.keyid) {
        Ok(Read::Pair(bundle)) => {
            if bundle.thumbprint() != luma.thumbprint || install_of(&luma.pem).0 != luma.version {
                reads
                    .violations
                    .push(format!(".luma does not describe {}", luma.pem));
            }
            reads.by_luma += 1;
        }
        Ok(Read::Gone) => check_gone(dir, &luma.version, reads),
        Err(e) => reads.violations.push(e),
    }

    // Both links, compared, then their targets.
    if install_of(&pem) != install_of(&keyid) {
        reads.links_apart += 1;
        return;
    }
    match read_pair(dir, &pem, &keyid) {
        Ok(Read::Pair(_)) => reads.by_links += 1,
        Ok(Read::Gone) => check_gone(dir, &install_of(&pem).0, reads),
        Err(e) => reads.violations.push(e),
    }
}

#[test]
fn a_reader_following_the_protocol_never_sees_a_key_of_another_certificate() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("store");
    let store = Store::open_layout(&path, Layout::V4).unwrap();
    let bundles: Vec<CertificateBundle> = (0..3)
        .map(|i| generate(&format!("host{i}.example.com"), 90).bundle)
        .collect();
    store.install(&request("v0", &bundles[0])).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (dir, done) = (path.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = Reads::default();
            // At least one read after the last rotation, whatever the threads' speeds.
            loop {
                let last = done.load(Ordering::Acquire);
                read_once(&dir, &mut reads);
                if last {
                    break reads;
                }
            }
        })
    };
    for i in 1..=ROTATIONS {
        let version = format!("v{i}");
        store
            .install(&request(&version, &bundles[i % bundles.len()]))
            .unwrap();
    }
    done.store(true, Ordering::Release);
    let reads = reader.join().unwrap();
    eprintln!(
        "{ROTATIONS} rotations: {} pairs read through .luma, {} through the links, links apart {} \
         times, a pruned file {} times",
        reads.by_luma, reads.by_links, reads.links_apart, reads.gone
    );
    assert!(reads.violations.is_empty(), "{:#?}", reads.violations);
    assert!(reads.by_luma >= 1 && reads.by_links >= 1, "{reads:?}");

    let last = format!("v{ROTATIONS}");
    let current = store.current("mykv", "server-tls").unwrap().unwrap();
    assert_eq!(current.version, last);
    assert_eq!(
        store.versions("mykv", "server-tls").unwrap(),
        [last, format!("v{}", ROTATIONS - 1)]
    );
    assert_eq!(names(&path).len(), 3 + 4);
}
