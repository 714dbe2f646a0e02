//! The one place the store's two layouts are told apart: each operation whose files differ
//! between them ([`Layout::V3`], `<vault>.<cert>.<version>` files, in this module's siblings
//! `install`, `lookup`, `prune`, `access`; [`Layout::V4`], the `.pem`/`.keyid`/`.luma` files, in
//! `v4`) is dispatched here, and nowhere else. What both share (the names, the index, the write
//! and link primitives, ACLs, the batch) is layout-free.

use std::path::PathBuf;
use std::sync::MutexGuard;

use super::acl::Principal;
use super::index::Index;
use super::{Current, FileAccess, InstallRequest, Installed, Layout, Store, StoreError, v4};

impl Store {
    /// Installs one version of a certificate and points its links at it.
    ///
    /// Order: the version file (complete, with its ACL), the certbot-style directory, the store's
    /// ACL, then the links (the stable link last), then pruning. A failure before the links move leaves the previous
    /// version linked and untouched; the names and ACL principals are checked before anything is
    /// written.
    ///
    /// In the 4.x layout ([`Layout::V4`]): the `.pem` and `.keyid` files, the store's ACL, the
    /// `.pem` link, the `.keyid` link, then `.luma`, then pruning (`link_name` and
    /// `certbot_layout` are not written: 4.x has neither).
    pub fn install(&self, request: &InstallRequest<'_>) -> Result<Installed, StoreError> {
        match self.layout {
            Layout::V3 => self.install_v3(request, None),
            Layout::V4 => self.install_v4(request, None),
        }
    }

    /// Like [`Self::install`], with the files' owner, group and mode of `access` (the
    /// certificate's `owner`, `group` and `mode` settings), applied to this version's files
    /// before any byte is written. A group that may read (mode `0640`/`0440`) and an owner other
    /// than the agent are also granted traverse on the store directory (through its ACL, as
    /// `acls` principals are), so that they can reach the file.
    pub fn install_with_access(
        &self,
        request: &InstallRequest<'_>,
        access: &FileAccess,
    ) -> Result<Installed, StoreError> {
        match self.layout {
            Layout::V3 => self.install_v3(request, Some(access)),
            Layout::V4 => self.install_v4(request, Some(access)),
        }
    }

    /// The version the stable link `<vault>.<name>` points to, or `None` when there is no link,
    /// or it points to a missing file or to something akvvm did not make.
    ///
    /// In the 4.x layout: the version both `<vault>.<name>.pem` and `<vault>.<name>.keyid` point
    /// to, `None` also when they point to different installs (an interrupted install).
    pub fn current(&self, vault: &str, name: &str) -> Result<Option<Current>, StoreError> {
        match self.layout {
            Layout::V3 => self.current_v3(vault, name),
            Layout::V4 => self.current_v4(vault, name),
        }
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
        match self.layout {
            Layout::V3 => self.installed_v3(vault, name, link_name),
            Layout::V4 => self.installed_v4(vault, name),
        }
    }

    /// The versions of `vault.name` present in the store (as a file, a certbot-style directory or
    /// both), newest first by modification time. Read from the index: call [`Store::rescan`]
    /// first to see changes made by others since the store's last change.
    pub fn versions(&self, vault: &str, name: &str) -> Result<Vec<String>, StoreError> {
        match self.layout {
            Layout::V3 => self.versions_v3(vault, name),
            Layout::V4 => self.versions_v4(vault, name),
        }
    }

    /// Removes everything akvvm installed for `vault.name` (`akvvm uninstall
    /// --remove-certificates`): every version file and certbot-style directory, also of versions
    /// no link points to any more, and the stable link, the `.live` link and `link_name` when
    /// they are symbolic links. Everything goes through the store's handle (`unlinkat`, and
    /// [`remove_tree_at`](super::atomic) for the directories), never following a link. Returns
    /// the paths removed. In the 4.x layout: `.luma`, the `.pem` and `.keyid` links and every
    /// versioned file of the certificate (`link_name` is not used); 3.x files are never touched.
    pub fn remove_certificate(
        &self,
        vault: &str,
        name: &str,
        link_name: Option<&str>,
    ) -> Result<Vec<PathBuf>, StoreError> {
        match self.layout {
            Layout::V3 => self.remove_certificate_v3(vault, name, link_name),
            Layout::V4 => self.remove_certificate_v4(vault, name),
        }
    }

    /// [`Store::apply_acls`]'s work on this layout's files, under the index lock.
    pub(super) fn apply_acls_of_layout(
        &self,
        guard: &mut MutexGuard<'_, Option<Index>>,
        vault: &str,
        name: &str,
        principals: &[Principal],
    ) -> Result<usize, StoreError> {
        match self.layout {
            Layout::V3 => self.apply_acls_indexed(guard, vault, name, principals),
            Layout::V4 => self.apply_acls_v4(guard, vault, name, principals),
        }
    }

    /// What opening the store repairs in this layout's files (a 4.x install a crash interrupted
    /// is moved forward; 3.x files need nothing past the temp files and the batch).
    pub(super) fn repair_layout(&self) {
        match self.layout {
            Layout::V3 => {}
            Layout::V4 => self.repair_v4(),
        }
    }
}

impl Layout {
    /// Whether the temp file `temp` is this layout's debris, which opening a store of this
    /// layout removes (a 3.x and a 4.x store may share a directory: each leaves the other's).
    pub(super) fn owns_temp(self, temp: &str) -> bool {
        v4::is_temp_of_v4(temp) == (self == Layout::V4)
    }

    /// Whether this layout has certbot-style subdirectories, whose temp files opening the store
    /// removes too.
    pub(super) fn has_certbot_directories(self) -> bool {
        self == Layout::V3
    }
}
