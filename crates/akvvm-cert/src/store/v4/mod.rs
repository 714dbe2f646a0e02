//! The 4.x layout of the store ([`Layout::V4`](super::Layout::V4)): what the extension's 4.x
//! writes, for vault `mykv` and secret `server-tls`:
//!
//! ```text
//! mykv.server-tls.pem   -> mykv.server-tls.<version>.pem.<timestamp>      stable link
//! mykv.server-tls.keyid -> mykv.server-tls.<version>.keyid.<timestamp>    stable link
//! mykv.server-tls.<version>.pem.<timestamp>     0600: leaf, intermediates, root (no key)
//! mykv.server-tls.<version>.keyid.<timestamp>   0600: the PKCS#8 private key
//! mykv.server-tls.luma                          0644: JSON metadata naming the current pair
//! ```
//!
//! `<timestamp>` is the install's time in UTC, ISO 8601 basic format with nanoseconds
//! (`20261202T013124.123456789Z`, always 26 bytes): names sort by install time, and each install
//! of a certificate gets a timestamp later than any of that certificate's files in the store
//! ([`next_stamp`]), so a version installed again never reuses a name.
//!
//! An install writes, in this order: the `.pem` file, the `.keyid` file (each complete, fsynced,
//! with its mode, owner and ACL, through [`write_atomic_at`](super::atomic)), the store
//! directory's ACL, the `.pem` link, the `.keyid` link (each renamed over the old one), then
//! `.luma` (written atomically), then it prunes. Two links cannot move in one system call, so
//! between the two swaps the links name different installs; readers follow the protocol of
//! `docs/store.md` (read `.luma` and open the two files it names, or read both links and compare
//! their `<version>.<timestamp>`), and `.luma` never names a pair the links have not reached.
//! A crash between the two swaps, or before `.luma`, is repaired forward by the next
//! [`Store::open_layout`](super::Store::open_layout): both links go to the install the `.pem` link
//! reached (complete, since both files were fsynced before any link moved), and `.luma` is
//! rewritten to name it. An install that fails after its first link moved repairs the same way
//! before it returns its error.
//!
//! The 3.x layout's files (`<vault>.<cert>`, `<vault>.<cert>.<version>`, `.d` directories,
//! `.live` and custom links) are never touched here, and the 3.x code ignores these names:
//! [`RESERVED_VERSIONS`] are not 3.x versions, and a 4.x file name is never a 3.x one.
//!
//! - `install`: [`Store::install`](super::Store::install) in this layout, and its pruning.
//! - `read`: `current`, `installed`, `versions`, `remove_certificate`, `apply_acls`, and the
//!   repair on open.
//! - [`Luma`]: the `.luma` file's content.

mod install;
mod luma;
mod read;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::atomic::TEMP_PREFIX;
use super::names::check_key_vault_name;

pub use luma::{LUMA_FILE_MODE, Luma};

/// The suffix of the full-chain file and its link.
pub(super) const PEM: &str = "pem";
/// The suffix of the private key file and its link.
pub(super) const KEYID: &str = "keyid";
/// The suffix of the metadata file.
pub(super) const LUMA: &str = "luma";

/// Names a 3.x version may not have: `<vault>.<cert>.<version>` would be a 4.x link or `.luma`.
pub(super) const RESERVED_VERSIONS: [&str; 3] = [PEM, KEYID, LUMA];

/// The length of a timestamp in a file name: `20261202T013124.123456789Z`.
pub(super) const STAMP_LEN: usize = 26;

/// The longest `<vault>.<cert>.<version>` in this layout: with `.keyid.<timestamp>` (33 bytes)
/// and the temp name's prefix and suffix (28 bytes) a name still fits in 255 bytes.
pub(super) const MAX_STEM_LEN: usize = 194;

/// Which of a pair's two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Pem,
    Keyid,
}

impl Kind {
    pub(super) fn suffix(self) -> &'static str {
        match self {
            Kind::Pem => PEM,
            Kind::Keyid => KEYID,
        }
    }
}

/// A 4.x versioned file name, `<vault>.<cert>.<version>.<pem|keyid>.<timestamp>`, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) struct FileName<'a> {
    /// `<vault>.<cert>`.
    pub(super) certificate: &'a str,
    pub(super) version: &'a str,
    pub(super) kind: Kind,
    pub(super) stamp: &'a str,
}

impl<'a> FileName<'a> {
    /// Splits `name` when it is a 4.x versioned file name of valid Key Vault names.
    pub(in crate::store) fn parse(name: &'a str) -> Option<FileName<'a>> {
        let split = name.len().checked_sub(STAMP_LEN)?;
        if !name.is_char_boundary(split) {
            return None;
        }
        let (rest, stamp) = name.split_at(split);
        parse_stamp(stamp)?;
        let (stem, kind) = rest.strip_suffix('.')?.rsplit_once('.')?;
        let kind = match kind {
            PEM => Kind::Pem,
            KEYID => Kind::Keyid,
            _ => return None,
        };
        let (certificate, version) = stem.rsplit_once('.')?;
        split_certificate(certificate)?;
        check_key_vault_name("version", version).ok()?;
        Some(FileName {
            certificate,
            version,
            kind,
            stamp,
        })
    }
}

/// `<vault>.<cert>` split into its two Key Vault names.
fn split_certificate(certificate: &str) -> Option<(&str, &str)> {
    let (vault, cert) = certificate.split_once('.')?;
    (check_key_vault_name("vault name", vault).is_ok()
        && check_key_vault_name("certificate name", cert).is_ok())
    .then_some((vault, cert))
}

/// `<vault>.<cert>.<suffix>`: one of a certificate's two links or its `.luma`.
pub(super) fn stable_name(certificate: &str, suffix: &str) -> String {
    format!("{certificate}.{suffix}")
}

/// `<vault>.<cert>.<version>.<kind>.<timestamp>`.
pub(super) fn file_name(certificate: &str, version: &str, kind: Kind, stamp: &str) -> String {
    format!("{certificate}.{version}.{}.{stamp}", kind.suffix())
}

/// Whether `name` is one of this layout's names: a versioned file, a `.pem` or `.keyid` link, or
/// a `.luma` file.
pub(super) fn is_v4_name(name: &str) -> bool {
    if FileName::parse(name).is_some() {
        return true;
    }
    name.rsplit_once('.').is_some_and(|(certificate, suffix)| {
        RESERVED_VERSIONS.contains(&suffix) && split_certificate(certificate).is_some()
    })
}

/// Whether the temp entry `temp` (`.akvvm-tmp-<name>.<16 hex>`) was made for a 4.x name, so
/// that each layout's [`Store::open_layout`](super::Store::open_layout) removes only its own
/// debris.
pub(in crate::store) fn is_temp_of_v4(temp: &str) -> bool {
    temp.strip_prefix(TEMP_PREFIX)
        .and_then(|rest| rest.rsplit_once('.'))
        .is_some_and(|(name, random)| {
            random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()) && is_v4_name(name)
        })
}

/// `time` in a file name's format (UTC, nanoseconds).
pub(super) fn format_stamp(time: OffsetDateTime) -> String {
    let t = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// The instant a file name's timestamp stands for; `None` if it is not one.
pub(super) fn parse_stamp(stamp: &str) -> Option<OffsetDateTime> {
    let b = stamp.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    if b.len() != STAMP_LEN || b[8] != b'T' || b[15] != b'.' || b[25] != b'Z' {
        return None;
    }
    let date = Date::from_calendar_date(
        i32::try_from(digits(0..4)?).ok()?,
        Month::try_from(u8::try_from(digits(4..6)?).ok()?).ok()?,
        u8::try_from(digits(6..8)?).ok()?,
    )
    .ok()?;
    let time = Time::from_hms_nano(
        u8::try_from(digits(9..11)?).ok()?,
        u8::try_from(digits(11..13)?).ok()?,
        u8::try_from(digits(13..15)?).ok()?,
        digits(16..25)?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// The timestamp of a new install: `now`, or one nanosecond after `newest` (the latest of the
/// certificate's files in the store) when the clock is not past it, so that timestamps sort by
/// install and never repeat.
pub(super) fn next_stamp(now: OffsetDateTime, newest: Option<&str>) -> String {
    let mut at = now;
    if let Some(newest) = newest.and_then(parse_stamp)
        && at <= newest
    {
        at = newest + Duration::nanoseconds(1);
    }
    format_stamp(at)
}

/// One install of a certificate found in the store: its version and timestamp, and which of its
/// two files are present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pair {
    pub(super) version: String,
    pub(super) stamp: String,
    pub(super) pem: bool,
    pub(super) keyid: bool,
}

impl Pair {
    /// Both files are there (each was complete before it got its name).
    pub(super) fn is_complete(&self) -> bool {
        self.pem && self.keyid
    }

    /// The name of this pair's `kind` file.
    pub(super) fn file(&self, certificate: &str, kind: Kind) -> String {
        file_name(certificate, &self.version, kind, &self.stamp)
    }

    fn has(&self, kind: Kind) -> bool {
        match kind {
            Kind::Pem => self.pem,
            Kind::Keyid => self.keyid,
        }
    }
}

/// The 4.x part of the store's index ([`super::index`]): every versioned file of every
/// certificate, grouped into installs. Filled by the index's scan and kept current by this
/// layout's installs, prunes and removals.
#[derive(Debug, Default)]
pub(in crate::store) struct Files {
    /// `<vault>.<cert>` -> its installs (in no particular order).
    pairs: HashMap<String, Vec<Pair>>,
}

impl Files {
    /// Records the versioned file `file`.
    pub(in crate::store) fn add(&mut self, file: &FileName<'_>) {
        let pairs = self.pairs.entry(file.certificate.to_owned()).or_default();
        let pair = match pairs
            .iter_mut()
            .find(|p| p.version == file.version && p.stamp == file.stamp)
        {
            Some(pair) => pair,
            None => {
                pairs.push(Pair {
                    version: file.version.to_owned(),
                    stamp: file.stamp.to_owned(),
                    pem: false,
                    keyid: false,
                });
                pairs.last_mut().expect("just pushed")
            }
        };
        match file.kind {
            Kind::Pem => pair.pem = true,
            Kind::Keyid => pair.keyid = true,
        }
    }

    /// Forgets the versioned file `file`.
    pub(super) fn remove(&mut self, file: &FileName<'_>) {
        let Some(pairs) = self.pairs.get_mut(file.certificate) else {
            return;
        };
        for pair in pairs.iter_mut() {
            if pair.version == file.version && pair.stamp == file.stamp {
                match file.kind {
                    Kind::Pem => pair.pem = false,
                    Kind::Keyid => pair.keyid = false,
                }
            }
        }
        pairs.retain(|p| p.pem || p.keyid);
        if pairs.is_empty() {
            self.pairs.remove(file.certificate);
        }
    }

    /// The installs of `<vault>.<cert>`, newest first.
    pub(super) fn pairs(&self, certificate: &str) -> Vec<Pair> {
        let mut pairs = self.pairs.get(certificate).cloned().unwrap_or_default();
        pairs.sort_by(|a, b| {
            b.stamp
                .cmp(&a.stamp)
                .then_with(|| b.version.cmp(&a.version))
        });
        pairs
    }

    /// The install of `certificate` whose `kind` file is `name`, if that file is in the store.
    pub(super) fn pair_of(&self, certificate: &str, name: &str, kind: Kind) -> Option<Pair> {
        let file = FileName::parse(name)?;
        if file.certificate != certificate || file.kind != kind {
            return None;
        }
        self.pairs
            .get(certificate)?
            .iter()
            .find(|p| p.version == file.version && p.stamp == file.stamp && p.has(kind))
            .cloned()
    }

    /// The latest timestamp among `certificate`'s files.
    pub(super) fn newest_stamp(&self, certificate: &str) -> Option<&str> {
        self.pairs
            .get(certificate)?
            .iter()
            .map(|p| p.stamp.as_str())
            .max()
    }

    /// Every certificate with a versioned file in the store.
    pub(super) fn certificates(&self) -> Vec<String> {
        let mut certificates: Vec<String> = self.pairs.keys().cloned().collect();
        certificates.sort();
        certificates
    }
}
