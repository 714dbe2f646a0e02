//! `akvvm.pruneRemovedCertificates`: at start, what akvvm installed for a certificate no longer
//! in `observedCertificates` (known from its state entry) is removed through the store's handle
//! ([`Store::remove_certificate`]). Off by default: like the extension, akvvm then deletes
//! nothing and only forgets the entry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use akvvm_cert::store::Store;

use super::state::StateEntry;

use crate::settings::Settings;

/// Removes the files and links of the removed certificate `url` (its state `entry`), unless a
/// certificate still observed uses the same stable link. Failures are logged, never fatal: the
/// agent keeps running and the files stay.
pub(super) fn prune(
    settings: &Settings,
    stores: &BTreeMap<PathBuf, Arc<Store>>,
    url: &str,
    entry: &StateEntry,
) {
    let Some(link) = &entry.link else { return };
    let (Some(dir), Some(stable)) = (link.parent(), link.file_name().and_then(|n| n.to_str()))
    else {
        return;
    };
    // Key Vault names have no '.': `<vault>.<name>` (3.x) splits at its first one; a 4.x entry
    // records the `<vault>.<name>.pem` link, and its files are the 4.x layout's.
    let (stable, layout) = match stable.strip_suffix(".pem") {
        Some(stem) if stem.contains('.') => (stem, akvvm_cert::store::Layout::V4),
        _ => (stable, akvvm_cert::store::Layout::V3),
    };
    let Some((vault, name)) = stable.split_once('.') else {
        return;
    };
    if settings
        .observed
        .iter()
        .any(|c| c.store_dir == dir && c.url.stable_name() == stable)
    {
        tracing::info!(url, link = %link.display(), "not pruning: the same certificate is still observed in this store");
        return;
    }
    let custom = entry
        .custom_link
        .as_ref()
        .and_then(|l| l.file_name())
        .and_then(|n| n.to_str())
        .map(str::to_owned);
    let opened;
    let store = match stores.get(dir) {
        Some(store) if store.layout() == layout => store.as_ref(),
        _ => match Store::open_layout(dir, layout) {
            Ok(store) => {
                opened = store;
                &opened
            }
            Err(e) => {
                tracing::warn!(url, store = %dir.display(), error = %e, code = e.code(), "cannot open the store of a removed certificate; its files stay");
                return;
            }
        },
    };
    match store.remove_certificate(vault, name, custom.as_deref()) {
        Ok(removed) => {
            for path in removed {
                tracing::info!(url, path = %path.display(), "removed a file of a certificate no longer observed (pruneRemovedCertificates)");
            }
        }
        Err(e) => {
            tracing::warn!(url, error = %e, code = e.code(), "cannot remove the files of a certificate no longer observed");
        }
    }
}
