//! The store's file names: the limits and checks on vault, certificate, version and link names,
//! and the names one install uses (`<vault>.<cert>.<version>`, its links and its certbot-style
//! directory). Nothing else builds a name from user input: add a check here first.

use super::atomic::TEMP_PREFIX;
use super::install::Target;
use super::{CERTBOT_DIR_SUFFIX, LIVE_LINK_SUFFIX, StoreError};

/// The longest Key Vault vault, certificate or version name akvvm accepts.
const MAX_NAME_LEN: usize = 127;
/// The longest `<vault>.<cert>.<version>`, so that its temp and certbot names still fit.
const MAX_FILE_NAME_LEN: usize = 200;
/// The longest `customSymbolicLinkName`: its temp name (`.akvvm-tmp-<name>.<16 hex>`) must still
/// fit the 255 bytes most Linux file systems take.
const MAX_LINK_NAME_LEN: usize = 200;

/// The entry names of one install, validated.
pub(super) struct Names {
    pub(super) file: String,
    pub(super) link: String,
    pub(super) custom_link: Option<String>,
    pub(super) certbot_dir: String,
    pub(super) live_link: String,
}

impl Names {
    pub(super) fn new(request: &Target<'_>) -> Result<Names, StoreError> {
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
        if super::v4::RESERVED_VERSIONS.contains(&request.version) {
            return Err(StoreError::InvalidName {
                what: "version",
                value: request.version.to_owned(),
                reason: "it is the suffix of a 4.x layout's link or metadata file",
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

/// A Key Vault vault, object or version name: 1 to 127 letters, digits and '-'.
pub(super) fn check_key_vault_name(what: &'static str, value: &str) -> Result<(), StoreError> {
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
pub(super) fn check_link_name(value: &str) -> Result<(), StoreError> {
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
