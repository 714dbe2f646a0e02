//! The certificate store: the directory web servers read their certificates from.
//!
//! Layout (the shipped 3.x Linux extension's; `docs/store.md` describes it for users; a store
//! opened with [`Layout::V4`] writes the 4.x one instead, see `v4`):
//!
//! ```text
//! <store>/                                  0700, owned by the agent's user (root)
//! <store>/<vault>.<cert>            -> <vault>.<cert>.<version>    stable link
//! <store>/<vault>.<cert>.<version>          0600: leaf, intermediates, root, then the key
//! <store>/<customSymbolicLinkName>  -> <vault>.<cert>.<version>    when set
//! <store>/<vault>.<cert>.<version>.d/       0700, certbot's cert.pem, chain.pem, fullchain.pem,
//!                                           privkey.pem, and cert.pfx (0600), when that output
//!                                           is asked for
//! <store>/<vault>.<cert>.live       -> <vault>.<cert>.<version>.d  when that output is asked for
//! ```
//!
//! Every file goes through [`write_atomic`]; every link is swapped by renaming a new link over
//! the old one, after the files it points to are complete. A crash at any moment leaves each link
//! on the old certificate or the new one, complete, never on a partial or missing file; the temp
//! files a crash leaves behind are removed by [`Store::open`]. A certificate's first install has
//! no old version to protect: it is made durable with its batch ([`Store::flush`]), and after a
//! power loss in the middle of a batch [`Store::open`] removes what it finds incomplete (`batch`). The newest `keep` versions of each
//! certificate stay (and any version a link still points to); older ones are pruned.
//!
//! This module holds the layout's constants, the request and result types and [`Store::open`];
//! the rest of [`Store`] is in its submodules:
//!
//! - `names`: the checks on vault, certificate, version and link names, and one install's names.
//! - `layout`: the one place the two layouts are told apart: [`Store::install`],
//!   [`Store::current`], [`Store::installed`], [`Store::versions`], [`Store::remove_certificate`]
//!   and the ACLs and repairs of each layout dispatch there to the 3.x code (`install`,
//!   `lookup`, `prune`, `access`) or to `v4`.
//! - `install`: the 3.x install: render, write, move the links, prune.
//! - `batch`: first installs written without `fsync`s and made durable together by
//!   [`Store::flush`]; the start-up repair of a batch a crash interrupted.
//! - `prune`: [`Store::versions`] and the pruning of old versions.
//! - `index`: what one scan of the store found, kept current by the store's own changes, so that
//!   an install costs the same whatever the store holds ([`Store::rescan`]).
//! - `access`: [`Store::apply_acls`] and the store directory's ACL.
//! - `lookup`: [`Store::current`] and [`Store::installed`], read back from the store.
//! - [`atomic`]: the write and link primitives ([`write_atomic`]).
//! - `sys`: the store's system calls, each counted where it is made ([`store_operations`],
//!   [`store_syncs`]).
//! - [`acl`]: POSIX ACLs for the `acls` setting, in the kernel's xattr form.
//! - [`path`]: the system directories the store may not be, and the walk from `/` that opens it
//!   without following a link through parents only root (or akvvm's user) can change.
//! - [`error`]: [`StoreError`] and its `store.*` codes.
//! - `v4`: the 4.x layout ([`Layout::V4`]: split `.pem`/`.keyid` files, their two links and the
//!   `.luma` metadata file), which a store opened with [`Store::open_layout`] writes instead.

pub mod acl;
pub mod atomic;
pub mod error;
pub mod path;

mod access;
mod batch;
mod index;
mod install;
mod layout;
mod lookup;
mod names;
mod prune;
mod sys;
mod v4;

use std::num::NonZeroU32;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use time::OffsetDateTime;

use crate::certificate::CertificateBundle;
use crate::locks::MutexExt;
use index::Index;

pub use acl::{Acl, PosixAcl, Principal};
pub use atomic::{DIGEST_XATTR, TEMP_PREFIX, remove_stale_temp_files, write_atomic};
pub use batch::UNSYNCED_XATTR;
pub use error::StoreError;
pub use sys::{store_operations, store_syncs};
pub use v4::{LUMA_FILE_MODE, Luma};

/// Which file layout a store writes and reads: the extension's 3.x one (one file per version,
/// key included, behind `<vault>.<cert>`) or its 4.x one (a full-chain `.pem` and a `.keyid` key
/// per version behind two links, and a `.luma` metadata file). Both may share one directory:
/// each layout's scans, pruning and cleanup ignore the other's files (`docs/store.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Layout {
    /// The 3.x layout, what [`Store::open`] opens.
    #[default]
    V3,
    /// The 4.x layout.
    V4,
}

/// Mode of the store directory.
pub const STORE_DIR_MODE: u32 = 0o700;
/// Mode of every certificate file (and of the certbot-style directory's files).
pub const CERT_FILE_MODE: u32 = 0o600;
/// Mode of the certbot-style directory of a version.
pub const CERTBOT_DIR_MODE: u32 = 0o700;
/// How many versions of a certificate are kept by default (the current one included).
pub const DEFAULT_KEEP: NonZeroU32 = NonZeroU32::new(2).expect("2 is not zero");
/// Suffix of a version's certbot-style directory: `<vault>.<cert>.<version>.d`.
pub const CERTBOT_DIR_SUFFIX: &str = ".d";
/// The name that ends the link to the current certbot-style directory: `<vault>.<cert>.live`.
pub const LIVE_LINK_SUFFIX: &str = "live";

/// The files of a certbot-style directory: the leaf, the chain, both, the key.
const CERTBOT_FILES: [&str; 4] = ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"];

/// The PKCS#12 file of a certbot-style directory: leaf, chain and key, zero-length password,
/// encoded the way Key Vault encodes its PFX secrets (what Windows, .NET and Java load).
const PFX_FILE: &str = "cert.pfx";

/// One certificate to install.
#[derive(Debug, Clone, Copy)]
pub struct InstallRequest<'a> {
    /// The vault name (the first label of the vault's host name).
    pub vault: &'a str,
    /// The certificate (secret) name.
    pub name: &'a str,
    /// The Key Vault version (the last segment of the secret's `id`).
    pub version: &'a str,
    /// The decoded certificate; decoding already checked that its key matches its leaf.
    pub bundle: &'a CertificateBundle,
    /// `customSymbolicLinkName`: an extra link in the store to this version's file.
    pub link_name: Option<&'a str>,
    /// Users and groups granted read on the file and traverse on the store. Pass an empty slice
    /// unless `aclEnabled` is set.
    pub acls: &'a [Acl],
    /// How many versions of this certificate to keep, the new one included.
    pub keep: NonZeroU32,
    /// Also write certbot's layout (`cert.pem`, `chain.pem`, `fullchain.pem`, `privkey.pem`) in
    /// `<vault>.<cert>.<version>.d/`, switched through the `<vault>.<cert>.live` link.
    pub certbot_layout: bool,
}

/// A certificate's `owner`, `group` and `mode` for its installed files
/// ([`Store::install_with_access`]); unset parts keep the defaults (the agent's user and group,
/// [`CERT_FILE_MODE`]). `mode` may grant at most `0640`: never others, never write or execute
/// beyond the owner's `rw`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileAccess {
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<u32>,
}

/// What an install put on disk. In the 4.x layout `file` is the versioned `.pem` (the full
/// chain, without the key) and `link` the `<vault>.<cert>.pem` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The installed Key Vault version.
    pub version: String,
    /// `<store>/<vault>.<cert>.<version>`.
    pub file: PathBuf,
    /// `<store>/<vault>.<cert>`, now pointing at `file`.
    pub link: PathBuf,
    /// `<store>/<customSymbolicLinkName>`, when asked for.
    pub custom_link: Option<PathBuf>,
    /// `<store>/<vault>.<cert>.live`, pointing at the certbot-style directory, when asked for.
    pub live_link: Option<PathBuf>,
    /// SHA-1 of the DER leaf, upper-case hex.
    pub thumbprint: String,
    /// The leaf's expiry.
    pub not_after: OffsetDateTime,
    /// Older versions (files and directories) removed after the install.
    pub pruned: Vec<PathBuf>,
    /// 4.x layout: `<store>/<vault>.<cert>.<version>.keyid.<timestamp>`, the private key.
    pub key_file: Option<PathBuf>,
    /// 4.x layout: `<store>/<vault>.<cert>.keyid`, now pointing at `key_file`.
    pub key_link: Option<PathBuf>,
    /// 4.x layout: `<store>/<vault>.<cert>.luma`, the metadata naming this install's two files.
    pub luma: Option<PathBuf>,
}

/// The version a certificate's stable link points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The Key Vault version.
    pub version: String,
    /// `<store>/<vault>.<cert>.<version>`.
    pub file: PathBuf,
    /// `<store>/<vault>.<cert>`.
    pub link: PathBuf,
}

/// An open store directory.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    dir: OwnedFd,
    /// Installs are serialised under this lock, which also holds the index (`None` until the
    /// first change after [`Store::open`] or [`Store::rescan`]).
    index: Mutex<Option<Index>>,
    layout: Layout,
    /// The batch of first installs not yet durable (`batch`); locked after `index`.
    batch: Mutex<batch::Batch>,
}

impl Store {
    /// Opens the store at `path`, creating it (mode 0700; missing parents 0755) if needed,
    /// narrowing a wider mode to 0700 (or, with ACLs, rewriting the exact ACL), and removing the
    /// temp files an interrupted install left.
    ///
    /// The path is walked once from `/` without following links, each parent checked (see
    /// [`path`]); everything after goes through the directory handle held here. Fails when `path`
    /// is a system directory ([`path::SYSTEM_DIRECTORIES`]: nothing is created or changed then),
    /// when a component is a link or a parent others could write, when it is not a directory, or
    /// when it belongs to another user than the one running akvvm (who could then swap
    /// certificates under it).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_layout(path, Layout::V3)
    }

    /// [`Store::open`] for the given layout. With [`Layout::V4`] only the temp files of 4.x
    /// names are removed (a 3.x store in the same directory is left as it is), and each 4.x
    /// certificate whose two links disagree, or whose `.luma` disagrees with them (a crash in
    /// the middle of an install), is repaired forward (see `v4`).
    pub fn open_layout(path: &Path, layout: Layout) -> Result<Store, StoreError> {
        let path = &path::check_store_location(path)?;
        let open_error = |source: std::io::Error| StoreError::OpenDir {
            path: path.to_path_buf(),
            source,
        };
        let dir = path::open_store_dir(path)?;
        let stat = sys::fstat(&dir).map_err(|e| open_error(e.into()))?;
        // The store is the running user's own (`crate::trust`'s owner rule; its mode is
        // narrowed below, not refused).
        let euid = rustix::process::geteuid().as_raw();
        if crate::trust::check_owner(stat.st_uid, &[euid]).is_err() {
            return Err(StoreError::UnsafeOwner {
                path: path.to_path_buf(),
                owner: stat.st_uid,
                expected: euid,
            });
        }
        let has_acl = PosixAcl::read_fd(&dir).map_err(open_error)?.is_some();
        if !has_acl && stat.st_mode & 0o7777 != STORE_DIR_MODE {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", stat.st_mode & 0o7777),
                "narrowing the certificate store's mode to 0700"
            );
            sys::fchmod(&dir, Mode::from_raw_mode(STORE_DIR_MODE))
                .map_err(|e| open_error(e.into()))?;
        }
        // Each layout removes only the debris of its own names.
        let mut removed =
            atomic::remove_temp_files_if(dir.as_fd(), path, |temp| layout.owns_temp(temp))?;
        // The certbot-style directories get their files through temp files of their own.
        let subdirectories = if layout.has_certbot_directories() {
            atomic::list_dir(dir.as_fd(), path)?
        } else {
            Vec::new()
        };
        for (name, file_type) in subdirectories {
            if file_type != FileType::Directory || !name.ends_with(CERTBOT_DIR_SUFFIX) {
                continue;
            }
            let sub_path = path.join(&name);
            let sub = match sys::openat(
                &dir,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(sub) => sub,
                Err(Errno::NOENT) => continue,
                Err(e) => {
                    return Err(StoreError::Read {
                        path: sub_path,
                        source: e.into(),
                    });
                }
            };
            removed.extend(atomic::remove_temp_files(sub.as_fd(), &sub_path)?);
        }
        if !removed.is_empty() {
            tracing::info!(
                path = %path.display(),
                count = removed.len(),
                "removed temp files left by an interrupted install"
            );
        }
        // A batch of first installs a dead process left unsynced: what a power loss could have
        // left incomplete is removed, to be installed again.
        batch::repair(dir.as_fd(), path)?;
        let store = Store {
            path: path.to_path_buf(),
            dir,
            index: Mutex::new(None),
            layout,
            batch: Mutex::new(batch::Batch::default()),
        };
        store.repair_layout();
        if has_acl {
            // A chmod since the last install may have widened the ACL's mask or "other" entry.
            let mut guard = store.lock_index();
            let index = store.index(&mut guard)?;
            store.update_directory_acl(index)?;
        }
        Ok(store)
    }

    /// Forgets what the store's index knows, so that the next install, prune or ACL change scans
    /// the store directory again (once) and sees what others changed in it. The engine calls this
    /// at the start of each cycle; a cycle that installs nothing then never scans.
    pub fn rescan(&self) {
        *self.lock_index() = None;
    }

    /// [`Store::rescan`] only if the store directory changed (its `st_ctime`) since the index was
    /// built or last changed by this store: one `fstat` instead of a scan, for a cycle of a few
    /// certificates (a pushed rotation) in a store of thousands. Entries added, removed or
    /// renamed by others, and a chmod or ACL change of the directory, change its ctime; a change
    /// made in the same clock tick as one of this store's own is seen at the next
    /// [`Store::rescan`] (the daemon's full cycles call it), as is a change to a version file's
    /// ACL alone.
    pub fn rescan_if_changed(&self) {
        let mut guard = self.lock_index();
        let stamp = guard.as_ref().and_then(|index| index.stamp);
        if stamp.is_none() || stamp != self.directory_stamp() {
            *guard = None;
        }
    }

    /// The store directory's `st_ctime`, `None` if it cannot be read.
    fn directory_stamp(&self) -> Option<(i64, i64)> {
        sys::fstat(&self.dir)
            .ok()
            .map(|stat| (stat.st_ctime, stat.st_ctime_nsec as i64))
    }

    /// After one of this store's own changes: the index matches the directory as it now is.
    fn restamp(&self, guard: &mut std::sync::MutexGuard<'_, Option<Index>>) {
        if let Some(index) = guard.as_mut() {
            index.stamp = self.directory_stamp();
        }
    }

    /// Takes the store's lock (installs are serialised).
    fn lock_index(&self) -> std::sync::MutexGuard<'_, Option<Index>> {
        self.index.lock_or_recover()
    }

    /// The index under `guard`, scanning the store directory when there is none. A failed
    /// change may leave the index behind the directory: it is then dropped.
    fn index<'g>(
        &self,
        guard: &'g mut std::sync::MutexGuard<'_, Option<Index>>,
    ) -> Result<&'g mut Index, StoreError> {
        if guard.is_none() {
            // Taken before the scan: a change made during it makes the next check scan again.
            let stamp = self.directory_stamp();
            let mut index = Index::scan(self.dir.as_fd(), &self.path)?;
            index.stamp = stamp;
            **guard = Some(index);
        }
        Ok(guard.as_mut().expect("the index was just built"))
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layout this store writes and reads.
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

#[cfg(test)]
mod tests;
