//! PEM text: split into its blocks ([`pem_blocks`]) and written with 64-column lines.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use crate::error::CertError;

/// One block of PEM text: its label and content. The content may be a key: it is wiped on drop
/// and `Debug` shows only its length.
pub struct PemBlock {
    /// The label of the BEGIN line: `CERTIFICATE`, `PRIVATE KEY`, ...
    pub label: String,
    /// The decoded base64 content.
    pub der: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for PemBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemBlock")
            .field("label", &self.label)
            .field("der", &format_args!("<{} bytes>", self.der.len()))
            .finish()
    }
}

/// Splits PEM text into its blocks, in order; text between blocks is ignored. A block with
/// headers (an encrypted PEM) is refused: akvvm only reads unencrypted keys.
pub fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, CertError> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let index = blocks.len();
        let after = &rest[start + "-----BEGIN ".len()..];
        let label_end = after.find("-----").ok_or_else(|| CertError::PemInvalid {
            index,
            label: "?".into(),
            reason: "a BEGIN line without its closing dashes".into(),
        })?;
        let label = after[..label_end].to_string();
        let body_and_rest = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body_and_rest
            .find(&end_marker)
            .ok_or_else(|| CertError::PemInvalid {
                index,
                label: label.clone(),
                reason: format!("no \"{end_marker}\" line (truncated?)"),
            })?;
        let body = &body_and_rest[..end];
        rest = &body_and_rest[end + end_marker.len()..];
        if body.contains(':') {
            return Err(CertError::unsupported(format!(
                "an encrypted PEM block ({label} with headers); store the key unencrypted in PKCS#8"
            )));
        }
        let compact: Zeroizing<String> =
            Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        let der = BASE64
            .decode(compact.as_bytes())
            .map_err(|e| CertError::PemInvalid {
                index,
                label: label.clone(),
                reason: format!("bad base64: {e}"),
            })?;
        blocks.push(PemBlock {
            label,
            der: Zeroizing::new(der),
        });
    }
    Ok(blocks)
}

/// Appends a PEM block with 64-column base64 lines.
pub(super) fn pem_block(out: &mut String, label: &str, der: &[u8]) {
    let encoded = Zeroizing::new(BASE64.encode(der));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in encoded.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}
