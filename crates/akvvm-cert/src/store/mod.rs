//! The certificate store: the directory web servers read their certificates from.
//!
//! Layout (the shipped Linux extension's, DESIGN.md section 4):
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
//! files a crash leaves behind are removed by [`Store::open`]. The newest `keep` versions of each
//! certificate stay (and any version a link still points to); older ones are pruned.
//!
//! Submodules: [`atomic`] (the write and link primitives), [`acl`] (POSIX ACLs for the `acls`
//! setting), [`state`] (the state file), [`error`] (the error type and its codes).

pub mod acl;
pub mod atomic;
pub mod error;
pub mod state;

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::certificate::CertificateBundle;

pub use acl::{Acl, PosixAcl, Principal};
pub use atomic::{TEMP_PREFIX, remove_stale_temp_files, write_atomic};
pub use error::StoreError;
pub use state::{LastError, StateEntry, StateFile};

use atomic::FileOptions;

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

/// The longest Key Vault vault, certificate or version name akvvm accepts.
const MAX_NAME_LEN: usize = 127;
/// The longest `<vault>.<cert>.<version>`, so that its temp and certbot names still fit.
const MAX_FILE_NAME_LEN: usize = 200;
/// The longest `customSymbolicLinkName`: its temp name (`.akvvm-tmp-<name>.<16 hex>`) must still
/// fit the 255 bytes most Linux file systems take.
const MAX_LINK_NAME_LEN: usize = 200;

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

/// What an install put on disk.
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

/// An [`InstallRequest`] without its bundle.
struct Target<'a> {
    vault: &'a str,
    name: &'a str,
    version: &'a str,
    link_name: Option<&'a str>,
    acls: &'a [Acl],
    keep: NonZeroU32,
    certbot_layout: bool,
}

/// The content of one version, rendered from a bundle.
struct Rendered {
    /// Leaf, intermediates, root, then the key.
    full: Zeroizing<Vec<u8>>,
    leaf: Vec<u8>,
    chain: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
    /// The same as a PKCS#12 file (`cert.pfx` of the certbot-style directory), when that
    /// directory is written.
    pfx: Option<Zeroizing<Vec<u8>>>,
    thumbprint: String,
    not_after: OffsetDateTime,
}

impl Rendered {
    fn from_bundle(bundle: &CertificateBundle, with_pfx: bool) -> Result<Rendered, StoreError> {
        let pfx = if with_pfx {
            let mut certs = vec![bundle.leaf.der().to_vec()];
            certs.extend(bundle.chain.iter().map(|c| c.der().to_vec()));
            let der =
                crate::pkcs12::encode_keyvault(bundle.key.pkcs8_der(), &certs).map_err(|e| {
                    StoreError::Write {
                        path: PathBuf::from(PFX_FILE),
                        step: "encode the PKCS#12 file",
                        source: std::io::Error::other(e.to_string()),
                    }
                })?;
            Some(Zeroizing::new(der))
        } else {
            None
        };
        Ok(Rendered {
            full: Zeroizing::new(bundle.to_pem().as_bytes().to_vec()),
            leaf: bundle.leaf_pem().into_bytes(),
            chain: bundle.chain_pem().into_bytes(),
            key: Zeroizing::new(bundle.key_pem().as_bytes().to_vec()),
            pfx,
            thumbprint: bundle.thumbprint(),
            not_after: bundle.not_after(),
        })
    }
}

/// An open store directory.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    dir: OwnedFd,
    /// Installs are serialised: each recomputes the directory's ACL from all files.
    lock: Mutex<()>,
}

impl Store {
    /// Opens the store at `path`, creating it (mode 0700; missing parents 0755) if needed,
    /// narrowing a wider mode to 0700 (or, with ACLs, rewriting the exact ACL), and removing the
    /// temp files an interrupted install left.
    ///
    /// Fails when `path` is not a directory or belongs to another user than the one running
    /// akvvm (who could then swap certificates under it).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source: std::io::Error| StoreError::OpenDir {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(open_error)?;
        }
        match rustix::fs::mkdir(path, Mode::from_raw_mode(STORE_DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(open_error(e.into())),
        }
        let dir = match rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(dir) => dir,
            Err(Errno::NOTDIR) => {
                return Err(StoreError::NotADirectory {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(open_error(e.into())),
        };
        let stat = rustix::fs::fstat(&dir).map_err(|e| open_error(e.into()))?;
        let euid = rustix::process::geteuid().as_raw();
        if stat.st_uid != euid {
            return Err(StoreError::UnsafeOwner {
                path: path.to_path_buf(),
                owner: stat.st_uid,
                expected: euid,
            });
        }
        let has_acl = PosixAcl::read(path).map_err(open_error)?.is_some();
        if !has_acl && stat.st_mode & 0o7777 != STORE_DIR_MODE {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", stat.st_mode & 0o7777),
                "narrowing the certificate store's mode to 0700"
            );
            rustix::fs::fchmod(&dir, Mode::from_raw_mode(STORE_DIR_MODE))
                .map_err(|e| open_error(e.into()))?;
        }
        let mut removed = atomic::remove_temp_files(dir.as_fd(), path)?;
        // The certbot-style directories get their files through temp files of their own.
        for (name, file_type) in atomic::list_dir(dir.as_fd(), path)? {
            if file_type != FileType::Directory || !name.ends_with(CERTBOT_DIR_SUFFIX) {
                continue;
            }
            let sub_path = path.join(&name);
            let sub = match rustix::fs::openat(
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
        let store = Store {
            path: path.to_path_buf(),
            dir,
            lock: Mutex::new(()),
        };
        if has_acl {
            // A chmod since the last install may have widened the ACL's mask or "other" entry.
            store.update_directory_acl()?;
        }
        Ok(store)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Installs one version of a certificate and points its links at it.
    ///
    /// Order: the version file (complete, with its ACL), the certbot-style directory, the store's
    /// ACL, then the links, then pruning. A failure before the links move leaves the previous
    /// version linked and untouched; the names and ACL principals are checked before anything is
    /// written.
    pub fn install(&self, request: &InstallRequest<'_>) -> Result<Installed, StoreError> {
        let rendered = Rendered::from_bundle(request.bundle, request.certbot_layout)?;
        let target = Target {
            vault: request.vault,
            name: request.name,
            version: request.version,
            link_name: request.link_name,
            acls: request.acls,
            keep: request.keep,
            certbot_layout: request.certbot_layout,
        };
        self.install_rendered(&target, &rendered)
    }

    fn install_rendered(
        &self,
        request: &Target<'_>,
        rendered: &Rendered,
    ) -> Result<Installed, StoreError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let names = Names::new(request)?;
        let principals = request
            .acls
            .iter()
            .map(Acl::resolve)
            .collect::<Result<Vec<_>, _>>()?;
        let dir = self.dir.as_fd();

        // Refuse up front to replace anything that is not a link.
        atomic::ensure_link_or_absent(dir, &self.path, &names.link)?;
        if let Some(custom) = &names.custom_link {
            atomic::ensure_link_or_absent(dir, &self.path, custom)?;
        }
        if request.certbot_layout {
            atomic::ensure_link_or_absent(dir, &self.path, &names.live_link)?;
        }

        let file_acl = (!principals.is_empty()).then(|| PosixAcl::for_file(&principals).to_xattr());
        let file_options = FileOptions {
            mode: CERT_FILE_MODE,
            owner: None,
            acl: file_acl.as_deref(),
        };
        atomic::write_atomic_at(dir, &self.path, &names.file, &rendered.full, &file_options)?;
        if request.certbot_layout {
            self.write_certbot_dir(&names.certbot_dir, rendered, &principals, &file_options)?;
        }
        self.update_directory_acl()?;

        atomic::swap_symlink_at(dir, &self.path, &names.link, &names.file)?;
        if let Some(custom) = &names.custom_link {
            atomic::swap_symlink_at(dir, &self.path, custom, &names.file)?;
        }
        if request.certbot_layout {
            atomic::swap_symlink_at(dir, &self.path, &names.live_link, &names.certbot_dir)?;
        } else {
            // The output was turned off: a `.live` link left behind would serve an old
            // certificate forever.
            self.remove_link(&names.live_link);
        }

        let pruned = self.prune(request.vault, request.name, request.keep);
        if !pruned.is_empty()
            && let Err(error) = self.update_directory_acl()
        {
            tracing::warn!(%error, "cannot narrow the store's ACL after pruning");
        }
        Ok(Installed {
            version: request.version.to_owned(),
            file: self.path.join(&names.file),
            link: self.path.join(&names.link),
            custom_link: names.custom_link.as_ref().map(|c| self.path.join(c)),
            live_link: request
                .certbot_layout
                .then(|| self.path.join(&names.live_link)),
            thumbprint: rendered.thumbprint.clone(),
            not_after: rendered.not_after,
            pruned,
        })
    }

    /// Removes the link `name` if it is one; failures are logged.
    fn remove_link(&self, name: &str) {
        let path = self.path.join(name);
        match rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {}
            _ => return,
        }
        match rustix::fs::unlinkat(&self.dir, name, AtFlags::empty()) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a link to an output that is no longer asked for")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale link")
            }
        }
    }

    /// Writes `<store>/<name>/` with certbot's four files. The directory is only reached through
    /// the `.live` link, which moves after all four are complete.
    fn write_certbot_dir(
        &self,
        name: &str,
        rendered: &Rendered,
        principals: &[Principal],
        file_options: &FileOptions<'_>,
    ) -> Result<(), StoreError> {
        let dir_path = self.path.join(name);
        let write_error = |step: &'static str| {
            let path = dir_path.clone();
            move |e: Errno| StoreError::Write {
                path,
                step,
                source: e.into(),
            }
        };
        match rustix::fs::mkdirat(&self.dir, name, Mode::from_raw_mode(CERTBOT_DIR_MODE)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(write_error("create the directory")(e)),
        }
        let sub = rustix::fs::openat(
            &self.dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOTDIR | Errno::LOOP => StoreError::LinkOccupied {
                path: dir_path.clone(),
            },
            e => write_error("open the directory")(e),
        })?;
        let acl = PosixAcl::for_directory(principals);
        acl::set_directory_acl(&sub, &dir_path, &acl, CERTBOT_DIR_MODE)?;

        let mut fullchain = Vec::with_capacity(rendered.leaf.len() + rendered.chain.len());
        fullchain.extend_from_slice(&rendered.leaf);
        fullchain.extend_from_slice(&rendered.chain);
        let contents: [&[u8]; 4] = [&rendered.leaf, &rendered.chain, &fullchain, &rendered.key];
        for (file, bytes) in CERTBOT_FILES.into_iter().zip(contents) {
            atomic::write_atomic_at(sub.as_fd(), &dir_path, file, bytes, file_options)?;
        }
        if let Some(pfx) = &rendered.pfx {
            atomic::write_atomic_at(sub.as_fd(), &dir_path, PFX_FILE, pfx, file_options)?;
        }
        rustix::fs::fsync(&self.dir).map_err(write_error("fsync the store directory"))
    }

    /// Sets the store directory's ACL to traverse for every principal named in the ACL of any
    /// certificate file in the store (and no one else), or removes it when there is none.
    fn update_directory_acl(&self) -> Result<(), StoreError> {
        let mut principals = BTreeSet::new();
        for (name, file_type) in atomic::list_dir(self.dir.as_fd(), &self.path)? {
            // Only akvvm's own version files count: another file's ACL widens nothing.
            if file_type != FileType::RegularFile || !is_version_file_name(&name) {
                continue;
            }
            let path = self.path.join(&name);
            match PosixAcl::read(&path) {
                Ok(Some(acl)) => principals.extend(acl.principals()),
                Ok(None) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StoreError::Read { path, source }),
            }
        }
        let principals: Vec<_> = principals.into_iter().collect();
        let acl = PosixAcl::for_directory(&principals);
        acl::set_directory_acl(&self.dir, &self.path, &acl, STORE_DIR_MODE)
    }

    /// Applies `acls` to every version of `vault.name` in the store (the files, and the
    /// certbot-style directories and their files) and recomputes the store's ACL: for a change of
    /// `acls` or `aclEnabled` while the installed version stays. An empty `acls` removes every
    /// grant. Returns how many versions were updated (0 when none is installed).
    pub fn apply_acls(&self, vault: &str, name: &str, acls: &[Acl]) -> Result<usize, StoreError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        check_key_vault_name("vault name", vault)?;
        check_key_vault_name("certificate name", name)?;
        let principals = acls
            .iter()
            .map(Acl::resolve)
            .collect::<Result<Vec<_>, _>>()?;
        let file_acl = PosixAcl::for_file(&principals);
        let dir_acl = PosixAcl::for_directory(&principals);
        let versions = self.versions_by_age(vault, name)?;
        for entry in &versions {
            let file = format!("{vault}.{name}.{}", entry.version);
            if entry.has_file {
                set_file_acl(self.dir.as_fd(), &self.path, &file, &file_acl)?;
            }
            if entry.has_certbot_dir {
                let dir_name = format!("{file}{CERTBOT_DIR_SUFFIX}");
                let dir_path = self.path.join(&dir_name);
                let sub = rustix::fs::openat(
                    &self.dir,
                    dir_name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| StoreError::Read {
                    path: dir_path.clone(),
                    source: e.into(),
                })?;
                acl::set_directory_acl(&sub, &dir_path, &dir_acl, CERTBOT_DIR_MODE)?;
                for file in CERTBOT_FILES {
                    set_file_acl(sub.as_fd(), &dir_path, file, &file_acl)?;
                }
            }
        }
        self.update_directory_acl()?;
        Ok(versions.len())
    }

    /// Removes the versions of `vault.name` beyond the newest `keep` (by install time), never one
    /// that a link in the store points to. Failures are logged, not returned: the install itself
    /// succeeded.
    fn prune(&self, vault: &str, name: &str, keep: NonZeroU32) -> Vec<PathBuf> {
        let mut pruned = Vec::new();
        let versions = match self.versions_by_age(vault, name) {
            Ok(versions) => versions,
            Err(error) => {
                tracing::warn!(%error, "cannot list old versions to prune");
                return pruned;
            }
        };
        let linked = match self.link_targets() {
            Ok(linked) => linked,
            Err(error) => {
                tracing::warn!(%error, "cannot list links; not pruning");
                return pruned;
            }
        };
        let keep = usize::try_from(keep.get()).unwrap_or(usize::MAX);
        for entry in versions.into_iter().skip(keep) {
            let file = format!("{vault}.{name}.{}", entry.version);
            let certbot_dir = format!("{file}{CERTBOT_DIR_SUFFIX}");
            if linked.contains(&file) || linked.contains(&certbot_dir) {
                continue;
            }
            if entry.has_file {
                match rustix::fs::unlinkat(&self.dir, file.as_str(), AtFlags::empty()) {
                    Ok(()) => pruned.push(self.path.join(&file)),
                    Err(e) => {
                        tracing::warn!(path = %self.path.join(&file).display(), error = %e, "cannot prune an old version");
                        continue;
                    }
                }
            }
            if entry.has_certbot_dir {
                let path = self.path.join(&certbot_dir);
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => pruned.push(path),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot prune an old version's directory");
                    }
                }
            }
        }
        if !pruned.is_empty()
            && let Err(e) = rustix::fs::fsync(&self.dir)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot fsync the store after pruning");
        }
        pruned
    }

    /// The versions of `vault.name` present in the store (as a file, a certbot-style directory or
    /// both), newest first by modification time.
    pub fn versions(&self, vault: &str, name: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .versions_by_age(vault, name)?
            .into_iter()
            .map(|entry| entry.version)
            .collect())
    }

    fn versions_by_age(&self, vault: &str, name: &str) -> Result<Vec<VersionEntry>, StoreError> {
        let prefix = format!("{vault}.{name}.");
        let mut found: Vec<VersionEntry> = Vec::new();
        for (entry_name, file_type) in atomic::list_dir(self.dir.as_fd(), &self.path)? {
            let Some(rest) = entry_name.strip_prefix(&prefix) else {
                continue;
            };
            let (version, is_dir) = match rest.strip_suffix(CERTBOT_DIR_SUFFIX) {
                Some(version) if file_type == FileType::Directory => (version, true),
                _ if file_type == FileType::RegularFile => (rest, false),
                _ => continue,
            };
            if check_key_vault_name("version", version).is_err() {
                continue;
            }
            let stat =
                match rustix::fs::statat(&self.dir, entry_name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                {
                    Ok(stat) => stat,
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        return Err(StoreError::Read {
                            path: self.path.join(&entry_name),
                            source: e.into(),
                        });
                    }
                };
            let modified = (stat.st_mtime, stat.st_mtime_nsec);
            match found.iter_mut().find(|e| e.version == version) {
                Some(existing) => {
                    existing.modified = existing.modified.max(modified);
                    existing.has_file |= !is_dir;
                    existing.has_certbot_dir |= is_dir;
                }
                None => found.push(VersionEntry {
                    version: version.to_owned(),
                    modified,
                    has_file: !is_dir,
                    has_certbot_dir: is_dir,
                }),
            }
        }
        found.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then_with(|| b.version.cmp(&a.version))
        });
        Ok(found)
    }

    /// The names every symbolic link in the store points to.
    fn link_targets(&self) -> Result<BTreeSet<String>, StoreError> {
        let mut targets = BTreeSet::new();
        for (name, file_type) in atomic::list_dir(self.dir.as_fd(), &self.path)? {
            if file_type != FileType::Symlink || name.starts_with(TEMP_PREFIX) {
                continue;
            }
            match rustix::fs::readlinkat(&self.dir, name.as_str(), Vec::new()) {
                Ok(target) => {
                    if let Ok(target) = target.into_string() {
                        targets.insert(target);
                    }
                }
                Err(Errno::NOENT) => {}
                Err(e) => {
                    return Err(StoreError::Read {
                        path: self.path.join(&name),
                        source: e.into(),
                    });
                }
            }
        }
        Ok(targets)
    }

    /// What is installed for `vault.name`, read back from the store: the version the stable link
    /// points to, decoded for its thumbprint and expiry, with the custom link (`link_name`) and the
    /// `.live` link when they point to the same version. `None` when nothing complete is
    /// installed (no link, a missing file, or a file that no longer decodes, which is logged).
    /// This rebuilds a lost or corrupt state file without writing anything.
    pub fn installed(
        &self,
        vault: &str,
        name: &str,
        link_name: Option<&str>,
    ) -> Result<Option<Installed>, StoreError> {
        let Some(current) = self.current(vault, name)? else {
            return Ok(None);
        };
        let text = Zeroizing::new(std::fs::read_to_string(&current.file).map_err(|source| {
            StoreError::Read {
                path: current.file.clone(),
                source,
            }
        })?);
        let bundle = match crate::certificate::decode_pem(&text) {
            Ok(bundle) => bundle,
            Err(error) => {
                tracing::warn!(
                    path = %current.file.display(),
                    code = error.code(),
                    %error,
                    "the installed certificate no longer decodes; it will be installed again"
                );
                return Ok(None);
            }
        };
        let file_name = format!("{vault}.{name}.{}", current.version);
        let points_here = |link: &str, target: &str| {
            rustix::fs::readlinkat(&self.dir, link, Vec::new())
                .ok()
                .is_some_and(|t| t.as_bytes() == target.as_bytes())
        };
        let custom_link = link_name
            .filter(|link| check_link_name(link).is_ok() && points_here(link, &file_name))
            .map(|link| self.path.join(link));
        let live = format!("{vault}.{name}.{LIVE_LINK_SUFFIX}");
        let live_link = points_here(&live, &format!("{file_name}{CERTBOT_DIR_SUFFIX}"))
            .then(|| self.path.join(&live));
        Ok(Some(Installed {
            version: current.version,
            file: current.file,
            link: current.link,
            custom_link,
            live_link,
            thumbprint: bundle.thumbprint(),
            not_after: bundle.not_after(),
            pruned: Vec::new(),
        }))
    }

    /// The version the stable link `<vault>.<name>` points to, or `None` when there is no link,
    /// or it points to a missing file or to something akvvm did not make.
    pub fn current(&self, vault: &str, name: &str) -> Result<Option<Current>, StoreError> {
        check_key_vault_name("vault name", vault)?;
        check_key_vault_name("certificate name", name)?;
        let link = format!("{vault}.{name}");
        let link_path = self.path.join(&link);
        let target = match rustix::fs::readlinkat(&self.dir, link.as_str(), Vec::new()) {
            Ok(target) => target,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::INVAL) => {
                return Err(StoreError::LinkOccupied { path: link_path });
            }
            Err(e) => {
                return Err(StoreError::Read {
                    path: link_path,
                    source: e.into(),
                });
            }
        };
        let Ok(target) = target.into_string() else {
            return Ok(None);
        };
        let Some(version) = target.strip_prefix(&format!("{link}.")) else {
            tracing::warn!(link = %link_path.display(), %target, "the link points outside akvvm's layout");
            return Ok(None);
        };
        if check_key_vault_name("version", version).is_err() {
            return Ok(None);
        }
        match rustix::fs::statat(&self.dir, target.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => {
                Ok(Some(Current {
                    version: version.to_owned(),
                    file: self.path.join(&target),
                    link: link_path,
                }))
            }
            Ok(_) | Err(Errno::NOENT) => {
                tracing::warn!(link = %link_path.display(), %target, "the link points to a missing file");
                Ok(None)
            }
            Err(e) => Err(StoreError::Read {
                path: self.path.join(&target),
                source: e.into(),
            }),
        }
    }
}

struct VersionEntry {
    version: String,
    modified: (i64, u64),
    has_file: bool,
    has_certbot_dir: bool,
}

/// The entry names of one install, validated.
struct Names {
    file: String,
    link: String,
    custom_link: Option<String>,
    certbot_dir: String,
    live_link: String,
}

impl Names {
    fn new(request: &Target<'_>) -> Result<Names, StoreError> {
        check_key_vault_name("vault name", request.vault)?;
        check_key_vault_name("certificate name", request.name)?;
        check_key_vault_name("version", request.version)?;
        if request.version == LIVE_LINK_SUFFIX {
            return Err(StoreError::InvalidName {
                what: "version",
                value: request.version.to_owned(),
                reason: "it is the name of the certbot-style link",
            });
        }
        let link = format!("{}.{}", request.vault, request.name);
        let file = format!("{link}.{}", request.version);
        if file.len() > MAX_FILE_NAME_LEN {
            return Err(StoreError::InvalidName {
                what: "version",
                value: request.version.to_owned(),
                reason: "vault, certificate and version names together exceed 200 bytes",
            });
        }
        if let Some(custom) = request.link_name {
            check_link_name(custom)?;
            if custom == file {
                return Err(StoreError::InvalidName {
                    what: "customSymbolicLinkName",
                    value: custom.to_owned(),
                    reason: "it is the name of the certificate file itself",
                });
            }
        }
        Ok(Names {
            certbot_dir: format!("{file}{CERTBOT_DIR_SUFFIX}"),
            live_link: format!("{link}.{LIVE_LINK_SUFFIX}"),
            custom_link: request.link_name.map(str::to_owned),
            file,
            link,
        })
    }
}

/// Gives the existing file `name` in `dir` exactly `acl` (no ACL, mode 0600, when it names no
/// principal). Setting an ACL replaces the previous one in one step.
fn set_file_acl(
    dir: std::os::fd::BorrowedFd<'_>,
    dir_path: &Path,
    name: &str,
    acl: &PosixAcl,
) -> Result<(), StoreError> {
    let path = dir_path.join(name);
    let file = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StoreError::Read {
        path: path.clone(),
        source: e.into(),
    })?;
    if acl.users.is_empty() && acl.groups.is_empty() {
        match rustix::fs::fremovexattr(&file, acl::ACL_XATTR) {
            // No ACL, or a file system without ACLs: nothing to remove.
            Ok(()) | Err(Errno::NODATA | Errno::NOTSUP) => {}
            Err(e) => return Err(acl::acl_error(&path, e)),
        }
        rustix::fs::fchmod(&file, Mode::from_raw_mode(CERT_FILE_MODE))
            .map_err(|e| acl::acl_error(&path, e))
    } else {
        rustix::fs::fsetxattr(
            &file,
            acl::ACL_XATTR,
            &acl.to_xattr(),
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|e| acl::acl_error(&path, e))
    }
}

/// Whether `name` has the form `<vault>.<cert>.<version>` of a version file.
fn is_version_file_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|part| check_key_vault_name("name", part).is_ok())
}

/// A Key Vault vault, object or version name: 1 to 127 letters, digits and '-'.
fn check_key_vault_name(what: &'static str, value: &str) -> Result<(), StoreError> {
    let reason = if value.is_empty() {
        "it is empty"
    } else if value.len() > MAX_NAME_LEN {
        "it is longer than 127 characters"
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        "it contains a character other than a letter, a digit or '-'"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    })
}

/// `customSymbolicLinkName`: a plain file name in the store.
fn check_link_name(value: &str) -> Result<(), StoreError> {
    let reason = if value.is_empty() {
        "it is empty"
    } else if value.len() > MAX_LINK_NAME_LEN {
        "it is longer than 200 bytes"
    } else if value == "." || value == ".." {
        "it names a directory"
    } else if value.contains('/') {
        "it contains '/'; it is a name inside the store, not a path"
    } else if value.contains('\0') {
        "it contains a NUL character"
    } else if value.starts_with(TEMP_PREFIX) {
        "it starts with akvvm's temp file prefix"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidName {
        what: "customSymbolicLinkName",
        value: value.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn rendered(tag: &str) -> Rendered {
        Rendered {
            full: Zeroizing::new(format!("LEAF-{tag}\nCHAIN-{tag}\nKEY-{tag}\n").into_bytes()),
            leaf: format!("LEAF-{tag}\n").into_bytes(),
            chain: format!("CHAIN-{tag}\n").into_bytes(),
            key: Zeroizing::new(format!("KEY-{tag}\n").into_bytes()),
            pfx: Some(Zeroizing::new(format!("PFX-{tag}").into_bytes())),
            thumbprint: format!("THUMB-{tag}"),
            not_after: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn target<'a>(version: &'a str) -> Target<'a> {
        Target {
            vault: "vault",
            name: "cert",
            version,
            link_name: None,
            acls: &[],
            keep: DEFAULT_KEEP,
            certbot_layout: false,
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn new_store() -> (tempfile::TempDir, Store) {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(&root.path().join("store")).unwrap();
        (root, store)
    }

    #[test]
    fn key_vault_names_are_checked() {
        assert!(check_key_vault_name("vault name", "my-vault-01").is_ok());
        for bad in ["", "a.b", "../x", "a/b", "a b", &"x".repeat(128)] {
            let error = check_key_vault_name("vault name", bad).unwrap_err();
            assert_eq!(error.code(), "store_invalid_name", "{bad:?}");
        }
    }

    #[test]
    fn link_names_are_checked() {
        assert!(check_link_name("web.pem").is_ok());
        let long = "l".repeat(201);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "/etc/passwd",
            ".akvvm-tmp-x",
            "a\0b",
            &long,
        ] {
            let error = check_link_name(bad).unwrap_err();
            assert_eq!(error.code(), "store_invalid_name", "{bad:?}");
            assert!(error.to_string().contains("customSymbolicLinkName"));
        }
    }

    #[test]
    fn lays_out_files_and_links_as_the_shipped_extension() {
        let (_root, store) = new_store();
        assert_eq!(mode(store.path()), 0o700);
        let installed = store
            .install_rendered(&target("v1"), &rendered("1"))
            .unwrap();
        assert_eq!(installed.file, store.path().join("vault.cert.v1"));
        assert_eq!(installed.link, store.path().join("vault.cert"));
        assert_eq!(installed.thumbprint, "THUMB-1");
        assert_eq!(installed.custom_link, None);
        assert_eq!(installed.live_link, None);
        assert_eq!(mode(&installed.file), 0o600);
        assert_eq!(
            std::fs::read_link(&installed.link).unwrap(),
            Path::new("vault.cert.v1")
        );
        assert_eq!(
            std::fs::read_to_string(&installed.link).unwrap(),
            "LEAF-1\nCHAIN-1\nKEY-1\n"
        );
        assert_eq!(names(store.path()), ["vault.cert", "vault.cert.v1"]);
        let current = store.current("vault", "cert").unwrap().unwrap();
        assert_eq!(current.version, "v1");
        assert_eq!(current.file, installed.file);
        assert_eq!(store.current("vault", "other").unwrap(), None);
    }

    #[test]
    fn keeps_the_newest_versions_and_prunes_the_rest() {
        let (_root, store) = new_store();
        for (version, tag) in [("v1", "1"), ("v2", "2")] {
            let installed = store
                .install_rendered(&target(version), &rendered(tag))
                .unwrap();
            assert!(installed.pruned.is_empty());
        }
        assert_eq!(
            names(store.path()),
            ["vault.cert", "vault.cert.v1", "vault.cert.v2"]
        );
        let installed = store
            .install_rendered(&target("v3"), &rendered("3"))
            .unwrap();
        assert_eq!(installed.pruned, vec![store.path().join("vault.cert.v1")]);
        assert_eq!(
            names(store.path()),
            ["vault.cert", "vault.cert.v2", "vault.cert.v3"]
        );
        assert_eq!(store.versions("vault", "cert").unwrap(), ["v3", "v2"]);

        // Re-installing an old version makes it the newest again.
        let installed = store
            .install_rendered(&target("v2"), &rendered("2"))
            .unwrap();
        assert!(installed.pruned.is_empty());
        assert_eq!(store.versions("vault", "cert").unwrap(), ["v2", "v3"]);
        let keep_one = Target {
            keep: NonZeroU32::MIN,
            ..target("v4")
        };
        let installed = store.install_rendered(&keep_one, &rendered("4")).unwrap();
        assert_eq!(installed.pruned.len(), 2);
        assert_eq!(names(store.path()), ["vault.cert", "vault.cert.v4"]);
    }

    #[test]
    fn never_prunes_a_version_a_link_points_to_or_another_certificate() {
        let (_root, store) = new_store();
        let with_link = Target {
            link_name: Some("web"),
            ..target("v1")
        };
        store.install_rendered(&with_link, &rendered("1")).unwrap();
        let other = Target {
            name: "cert-two",
            ..target("x1")
        };
        store.install_rendered(&other, &rendered("x")).unwrap();
        // "web" stays on v1 while the stable link moves on, with only one version kept.
        for version in ["v2", "v3"] {
            let keep_one = Target {
                keep: NonZeroU32::MIN,
                ..target(version)
            };
            store
                .install_rendered(&keep_one, &rendered(version))
                .unwrap();
        }
        assert_eq!(
            names(store.path()),
            [
                "vault.cert",
                "vault.cert-two",
                "vault.cert-two.x1",
                "vault.cert.v1",
                "vault.cert.v3",
                "web"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(store.path().join("web")).unwrap(),
            "LEAF-1\nCHAIN-1\nKEY-1\n"
        );
    }

    #[test]
    fn moves_the_custom_link_with_the_certificate() {
        let (_root, store) = new_store();
        for version in ["v1", "v2"] {
            let request = Target {
                link_name: Some("web.pem"),
                ..target(version)
            };
            let installed = store
                .install_rendered(&request, &rendered(version))
                .unwrap();
            assert_eq!(installed.custom_link, Some(store.path().join("web.pem")));
        }
        assert_eq!(
            std::fs::read_link(store.path().join("web.pem")).unwrap(),
            Path::new("vault.cert.v2")
        );
    }

    #[test]
    fn an_occupied_link_name_changes_nothing() {
        let (_root, store) = new_store();
        store
            .install_rendered(&target("v1"), &rendered("1"))
            .unwrap();
        std::fs::write(store.path().join("web"), b"someone's file").unwrap();
        let request = Target {
            link_name: Some("web"),
            ..target("v2")
        };
        let error = store
            .install_rendered(&request, &rendered("2"))
            .unwrap_err();
        assert_eq!(error.code(), "store_link_occupied");
        assert!(error.to_string().contains("/web exists"), "{error}");
        assert_eq!(
            std::fs::read(store.path().join("web")).unwrap(),
            b"someone's file"
        );
        assert_eq!(names(store.path()), ["vault.cert", "vault.cert.v1", "web"]);
        assert_eq!(
            store.current("vault", "cert").unwrap().unwrap().version,
            "v1"
        );
    }

    #[test]
    fn a_write_failing_half_way_leaves_the_old_version_linked() {
        let (_root, store) = new_store();
        store
            .install_rendered(&target("v1"), &rendered("1"))
            .unwrap();
        // A directory where the new version's file must go: the final rename fails.
        std::fs::create_dir(store.path().join("vault.cert.v2")).unwrap();
        std::fs::write(store.path().join("vault.cert.v2/x"), b"x").unwrap();
        let error = store
            .install_rendered(&target("v2"), &rendered("2"))
            .unwrap_err();
        assert_eq!(error.code(), "store_write");
        assert_eq!(
            std::fs::read_to_string(store.path().join("vault.cert")).unwrap(),
            "LEAF-1\nCHAIN-1\nKEY-1\n"
        );
        assert!(
            names(store.path())
                .iter()
                .all(|n| !n.starts_with(TEMP_PREFIX))
        );
    }

    #[test]
    fn writes_the_certbot_layout_and_switches_it_with_one_link() {
        let (_root, store) = new_store();
        for version in ["v1", "v2", "v3"] {
            let request = Target {
                certbot_layout: true,
                ..target(version)
            };
            let installed = store
                .install_rendered(&request, &rendered(version))
                .unwrap();
            assert_eq!(
                installed.live_link,
                Some(store.path().join("vault.cert.live"))
            );
        }
        let live = store.path().join("vault.cert.live");
        assert_eq!(
            std::fs::read_link(&live).unwrap(),
            Path::new("vault.cert.v3.d")
        );
        assert_eq!(mode(&store.path().join("vault.cert.v3.d")), 0o700);
        let read = |file: &str| std::fs::read_to_string(live.join(file)).unwrap();
        assert_eq!(read("cert.pem"), "LEAF-v3\n");
        assert_eq!(read("chain.pem"), "CHAIN-v3\n");
        assert_eq!(read("fullchain.pem"), "LEAF-v3\nCHAIN-v3\n");
        assert_eq!(read("privkey.pem"), "KEY-v3\n");
        assert_eq!(read("cert.pfx"), "PFX-v3");
        for file in [
            "cert.pem",
            "chain.pem",
            "fullchain.pem",
            "privkey.pem",
            "cert.pfx",
        ] {
            assert_eq!(mode(&live.join(file)), 0o600, "{file}");
        }
        // v1 and its directory went together.
        assert_eq!(
            names(store.path()),
            [
                "vault.cert",
                "vault.cert.live",
                "vault.cert.v2",
                "vault.cert.v2.d",
                "vault.cert.v3",
                "vault.cert.v3.d"
            ]
        );
    }

    #[test]
    fn grants_read_on_the_file_and_traverse_on_the_store_and_nothing_else() {
        let (_root, store) = new_store();
        let acls = [Acl::User("4321".into()), Acl::Group("4322".into())];
        let request = Target {
            acls: &acls,
            certbot_layout: true,
            ..target("v1")
        };
        let installed = store.install_rendered(&request, &rendered("1")).unwrap();

        let file_acl = PosixAcl::read(&installed.file).unwrap().unwrap();
        assert_eq!(
            file_acl,
            PosixAcl {
                user_obj: READ_WRITE,
                users: [(4321, acl::READ)].into(),
                group_obj: 0,
                groups: [(4322, acl::READ)].into(),
                mask: Some(acl::READ),
                other: 0,
            }
        );
        let dir_acl = PosixAcl::read(store.path()).unwrap().unwrap();
        assert_eq!(
            dir_acl,
            PosixAcl {
                user_obj: 7,
                users: [(4321, acl::EXECUTE)].into(),
                group_obj: 0,
                groups: [(4322, acl::EXECUTE)].into(),
                mask: Some(acl::EXECUTE),
                other: 0,
            }
        );
        let certbot_dir = store.path().join("vault.cert.v1.d");
        assert_eq!(PosixAcl::read(&certbot_dir).unwrap().unwrap(), dir_acl);
        assert_eq!(
            PosixAcl::read(&certbot_dir.join("privkey.pem"))
                .unwrap()
                .unwrap(),
            file_acl
        );
        // The group bits show the mask; the owning group's own entry stays empty.
        assert_eq!(mode(&installed.file), 0o640);
        assert_eq!(mode(store.path()), 0o710);

        // Once no file names a principal any more, the store is plain 0700 again (the certbot
        // output was turned off too, so its link and v1's directory go).
        let request = Target {
            keep: NonZeroU32::MIN,
            ..target("v2")
        };
        let installed = store.install_rendered(&request, &rendered("2")).unwrap();
        assert_eq!(PosixAcl::read(&installed.file).unwrap(), None);
        assert_eq!(mode(&installed.file), 0o600);
        assert_eq!(PosixAcl::read(store.path()).unwrap(), None);
        assert_eq!(mode(store.path()), 0o700);
        assert_eq!(names(store.path()), ["vault.cert", "vault.cert.v2"]);
    }

    const READ_WRITE: u8 = acl::READ | acl::WRITE;

    #[test]
    fn acls_can_change_without_a_new_version() {
        let (_root, store) = new_store();
        let certbot = |version| Target {
            certbot_layout: true,
            ..target(version)
        };
        store
            .install_rendered(&certbot("v1"), &rendered("1"))
            .unwrap();
        store
            .install_rendered(&certbot("v2"), &rendered("2"))
            .unwrap();
        // Someone else's file with an ACL in the store widens nothing.
        let foreign = store.path().join("notes.txt");
        std::fs::write(&foreign, b"x").unwrap();
        let foreign_acl = PosixAcl::for_file(&[Principal::User(999)]).to_xattr();
        rustix::fs::setxattr(
            &foreign,
            acl::ACL_XATTR,
            &foreign_acl,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();

        let acls = [Acl::User("4321".into())];
        assert_eq!(store.apply_acls("vault", "cert", &acls).unwrap(), 2);
        let granted = PosixAcl::for_file(&[Principal::User(4321)]);
        for path in [
            "vault.cert.v1",
            "vault.cert.v2",
            "vault.cert.v2.d/privkey.pem",
            "vault.cert.v1.d/cert.pem",
        ] {
            assert_eq!(
                PosixAcl::read(&store.path().join(path)).unwrap(),
                Some(granted.clone()),
                "{path}"
            );
        }
        let traverse = PosixAcl::for_directory(&[Principal::User(4321)]);
        assert_eq!(
            PosixAcl::read(store.path()).unwrap(),
            Some(traverse.clone())
        );
        assert_eq!(
            PosixAcl::read(&store.path().join("vault.cert.v2.d")).unwrap(),
            Some(traverse)
        );

        // Revoking removes every grant, on old versions too.
        assert_eq!(store.apply_acls("vault", "cert", &[]).unwrap(), 2);
        for path in [
            "vault.cert.v1",
            "vault.cert.v2",
            "vault.cert.v1.d/privkey.pem",
        ] {
            assert_eq!(
                PosixAcl::read(&store.path().join(path)).unwrap(),
                None,
                "{path}"
            );
            assert_eq!(mode(&store.path().join(path)), 0o600, "{path}");
        }
        assert_eq!(PosixAcl::read(store.path()).unwrap(), None);
        assert_eq!(mode(store.path()), 0o700);
        assert_eq!(mode(&store.path().join("vault.cert.v1.d")), 0o700);
        assert_eq!(store.apply_acls("vault", "none", &acls).unwrap(), 0);
    }

    #[test]
    fn open_cleans_temp_files_and_narrows_the_mode() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("store");
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            path.join(".akvvm-tmp-vault.cert.v1.0123456789abcdef"),
            b"LEAF",
        )
        .unwrap();
        std::fs::write(path.join("unrelated"), b"stays").unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(names(store.path()), ["unrelated"]);
        assert_eq!(mode(&path), 0o700);
    }

    #[test]
    fn open_narrows_a_store_with_an_acl_that_was_chmodded() {
        let (root, store) = new_store();
        let acls = [Acl::User("4321".into())];
        let request = Target {
            acls: &acls,
            ..target("v1")
        };
        store.install_rendered(&request, &rendered("1")).unwrap();
        drop(store);
        let path = root.path().join("store");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(PosixAcl::read(&path).unwrap().unwrap().other, 5);
        let store = Store::open(&path).unwrap();
        assert_eq!(
            PosixAcl::read(store.path()).unwrap(),
            Some(PosixAcl::for_directory(&[Principal::User(4321)]))
        );
        assert_eq!(mode(store.path()), 0o710);
    }

    #[test]
    fn open_cleans_temp_files_inside_certbot_directories() {
        let (root, store) = new_store();
        let request = Target {
            certbot_layout: true,
            ..target("v1")
        };
        store.install_rendered(&request, &rendered("1")).unwrap();
        let sub = store.path().join("vault.cert.v1.d");
        std::fs::write(sub.join(".akvvm-tmp-privkey.pem.0123456789abcdef"), b"KEY").unwrap();
        drop(store);
        let store = Store::open(&root.path().join("store")).unwrap();
        assert_eq!(
            names(&store.path().join("vault.cert.v1.d")),
            [
                "cert.pem",
                "cert.pfx",
                "chain.pem",
                "fullchain.pem",
                "privkey.pem"
            ]
        );
    }

    #[test]
    fn open_refuses_a_file_a_foreign_directory_and_an_impossible_path() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let error = Store::open(&file).unwrap_err();
        assert_eq!(error.code(), "store_not_a_directory");
        let error = Store::open(&file.join("store")).unwrap_err();
        assert_eq!(error.code(), "store_open_dir");
        assert!(error.to_string().contains("file/store"), "{error}");

        if rustix::process::geteuid().is_root() {
            let foreign = root.path().join("foreign");
            std::fs::create_dir(&foreign).unwrap();
            std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
            let error = Store::open(&foreign).unwrap_err();
            assert_eq!(error.code(), "store_unsafe_owner");
            assert!(error.to_string().contains("uid 65534"), "{error}");
        } else {
            // Only root can make a directory that belongs to someone else.
            let meta = std::fs::metadata("/").unwrap();
            assert_eq!(meta.uid(), 0);
            let error = Store::open(Path::new("/")).unwrap_err();
            assert_eq!(error.code(), "store_unsafe_owner");
        }
    }

    #[test]
    fn bad_names_are_refused_before_anything_is_written() {
        let (_root, store) = new_store();
        let cases = [
            Target {
                vault: "a.b",
                ..target("v1")
            },
            Target {
                name: "../etc",
                ..target("v1")
            },
            Target {
                version: "live",
                ..target("v1")
            },
            Target {
                link_name: Some("../web"),
                ..target("v1")
            },
            Target {
                link_name: Some("vault.cert.v1"),
                ..target("v1")
            },
        ];
        for case in &cases {
            let error = store.install_rendered(case, &rendered("1")).unwrap_err();
            assert_eq!(error.code(), "store_invalid_name");
        }
        let acls = [Acl::User("no-such-user-akvvm".into())];
        let error = store
            .install_rendered(
                &Target {
                    acls: &acls,
                    ..target("v1")
                },
                &rendered("1"),
            )
            .unwrap_err();
        assert_eq!(error.code(), "store_unknown_user");
        assert!(names(store.path()).is_empty());
    }
}
