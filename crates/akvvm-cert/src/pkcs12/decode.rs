//! Opening a PFX: the structure walked (DER or BER), the MAC checked with each encoding of the
//! password, the encrypted parts decrypted, and the key and certificate bags collected.

use der::asn1::OctetString;
use der::{Any, Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use super::asn1::{
    CertBag, ContentInfo, EncryptedData, EncryptedDataChunked, EncryptedPrivateKeyInfo, Pfx,
    SafeBag, oid,
};
use super::ber::lenient;
use super::crypto::{Passwords, Walk, decrypt, mac_verifies};
use crate::error::CertError;

/// What a PFX holds once opened: PKCS#8 private keys and DER certificates, in file order.
pub struct Pkcs12Contents {
    /// PKCS#8 `PrivateKeyInfo` DER of each key bag.
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    /// DER of each X.509 certificate bag.
    pub certs: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Pkcs12Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs12Contents")
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .field("certs", &self.certs.len())
            .finish()
    }
}

/// Opens a PFX with `password` ("" for Key Vault's files) and returns its keys and certificates.
/// The work is bounded: at most [`MAX_WORK`](crate::pkcs12::MAX_WORK) key-derivation iterations
/// in all.
pub fn decode(der: &[u8], password: &str) -> Result<Pkcs12Contents, CertError> {
    decode_within(der, password, super::crypto::MAX_WORK)
}

/// [`decode`], with at most `max_work` key-derivation iterations.
pub(super) fn decode_within(
    der: &[u8],
    password: &str,
    max_work: u64,
) -> Result<Pkcs12Contents, CertError> {
    let pfx: Pfx = lenient(der).map_err(|e| CertError::corrupt(format!("PFX structure: {e}")))?;
    if pfx.version != 3 {
        return Err(CertError::unsupported(format!(
            "PFX version {} (only version 3 exists)",
            pfx.version
        )));
    }
    let auth_safe = data_content(&pfx.auth_safe, "authSafe")?;
    let auth_safe_items: Vec<ContentInfo> = lenient(auth_safe.as_bytes())
        .map_err(|e| CertError::corrupt(format!("AuthenticatedSafe: {e}")))?;

    let mut passwords = Passwords::new(password);
    passwords.budget = super::crypto::Budget::new(max_work);
    let Some(mac) = &pfx.mac_data else {
        return open_with_any(&auth_safe_items, &passwords, &passwords.bmp);
    };
    let mut verified = None;
    for candidate in &passwords.bmp {
        passwords.budget.charge(u64::from(mac.iterations()))?;
        if mac_verifies(mac, auth_safe.as_bytes(), candidate)? {
            verified = Some(candidate);
            break;
        }
    }
    match verified {
        Some(bmp) => open(&auth_safe_items, &passwords, bmp).map_err(|e| match e {
            Walk::Cert(err) => err,
            Walk::DecryptFailed => CertError::corrupt(
                "the integrity MAC verifies but an encrypted part does not decrypt",
            ),
        }),
        None => {
            // The MAC is wrong for this password: either the password is wrong or the file was
            // altered. If the content opens with the password, it is the latter.
            let encrypted = auth_safe_items
                .iter()
                .any(|item| item.content_type == oid::ENCRYPTED_DATA);
            let opens = passwords
                .bmp
                .iter()
                .any(|bmp| open(&auth_safe_items, &passwords, bmp).is_ok());
            if encrypted && opens {
                Err(CertError::PfxMacMismatch)
            } else {
                Err(CertError::PfxBadPassword {
                    detail: passwords.describe(" (the integrity MAC does not verify)"),
                })
            }
        }
    }
}

/// Without a MAC nothing says which password encoding is right: try each.
fn open_with_any(
    items: &[ContentInfo],
    passwords: &Passwords,
    candidates: &[Zeroizing<Vec<u8>>],
) -> Result<Pkcs12Contents, CertError> {
    for bmp in candidates {
        match open(items, passwords, bmp) {
            Ok(contents) => return Ok(contents),
            Err(Walk::Cert(err)) => return Err(err),
            Err(Walk::DecryptFailed) => continue,
        }
    }
    Err(CertError::PfxBadPassword {
        detail: passwords.describe(" (the content does not decrypt)"),
    })
}

fn open(items: &[ContentInfo], passwords: &Passwords, bmp: &[u8]) -> Result<Pkcs12Contents, Walk> {
    let mut contents = Pkcs12Contents {
        keys: Vec::new(),
        certs: Vec::new(),
    };
    for item in items {
        if item.content_type == oid::DATA {
            let bytes = data_content(item, "SafeContents")?;
            let bags: Vec<SafeBag> = lenient(bytes.as_bytes())
                .map_err(|e| CertError::corrupt(format!("SafeContents: {e}")))?;
            collect_bags(&bags, passwords, bmp, &mut contents, 0)?;
        } else if item.content_type == oid::ENCRYPTED_DATA {
            let any = item
                .content
                .as_ref()
                .ok_or_else(|| CertError::corrupt("EncryptedData without content"))?;
            let (algorithm, ciphertext) = encrypted_content(any)?;
            let plain = decrypt(&algorithm, &ciphertext, passwords, bmp)?;
            // A wrong password whose padding happens to look right yields garbage here.
            let bags: Vec<SafeBag> = lenient(&plain).map_err(|_| Walk::DecryptFailed)?;
            collect_bags(&bags, passwords, bmp, &mut contents, 0)?;
        } else if item.content_type == oid::ENVELOPED_DATA {
            return Err(CertError::unsupported(
                "a PFX in public-key privacy mode (EnvelopedData content)",
            )
            .into());
        } else {
            return Err(CertError::unsupported(format!(
                "AuthenticatedSafe content type {}",
                item.content_type
            ))
            .into());
        }
    }
    Ok(contents)
}

fn collect_bags(
    bags: &[SafeBag],
    passwords: &Passwords,
    bmp: &[u8],
    contents: &mut Pkcs12Contents,
    depth: usize,
) -> Result<(), Walk> {
    if depth > 4 {
        return Err(CertError::corrupt("SafeContents nested more than 4 deep").into());
    }
    for bag in bags {
        // A key bag's value is the key itself: the copy is wiped when dropped.
        let value = Zeroizing::new(
            bag.bag_value
                .to_der()
                .map_err(|e| CertError::corrupt(format!("bag value: {e}")))?,
        );
        if bag.bag_id == oid::SHROUDED_KEY_BAG {
            let info = EncryptedPrivateKeyInfo::from_der(&value)
                .map_err(|e| CertError::corrupt(format!("shrouded key bag: {e}")))?;
            let plain = decrypt(
                &info.encryption_algorithm,
                info.encrypted_data.as_bytes(),
                passwords,
                bmp,
            )?;
            // Garbage from a wrong password would not parse as a PKCS#8 structure.
            pkcs8::PrivateKeyInfo::from_der(&plain).map_err(|_| Walk::DecryptFailed)?;
            contents.keys.push(plain);
        } else if bag.bag_id == oid::KEY_BAG {
            pkcs8::PrivateKeyInfo::from_der(&value)
                .map_err(|e| CertError::corrupt(format!("key bag: {e}")))?;
            contents.keys.push(value);
        } else if bag.bag_id == oid::CERT_BAG {
            let cert = CertBag::from_der(&value)
                .map_err(|e| CertError::corrupt(format!("certificate bag: {e}")))?;
            if cert.cert_id == oid::X509_CERTIFICATE {
                contents.certs.push(cert.cert_value.as_bytes().to_vec());
            } else {
                tracing::debug!(cert_type = %cert.cert_id, "skipping a non-X.509 certificate bag");
            }
        } else if bag.bag_id == oid::SAFE_CONTENTS_BAG {
            let nested: Vec<SafeBag> = Vec::from_der(&value)
                .map_err(|e| CertError::corrupt(format!("nested SafeContents: {e}")))?;
            collect_bags(&nested, passwords, bmp, contents, depth + 1)?;
        } else {
            tracing::debug!(bag = %bag.bag_id, "skipping a CRL, secret or unknown PFX bag");
        }
    }
    Ok(())
}

/// The algorithm and ciphertext of an `EncryptedData`.
fn encrypted_content(any: &Any) -> Result<(AlgorithmIdentifierOwned, Vec<u8>), CertError> {
    let bytes = any
        .to_der()
        .map_err(|e| CertError::corrupt(format!("EncryptedData: {e}")))?;
    match lenient::<EncryptedData>(&bytes) {
        Ok(data) => {
            let info = data.enc_content_info;
            let ciphertext = info
                .encrypted_content
                .ok_or_else(|| CertError::corrupt("EncryptedData without encryptedContent"))?;
            Ok((info.content_enc_alg, ciphertext.as_bytes().to_vec()))
        }
        Err(err) => {
            let data = lenient::<EncryptedDataChunked>(&bytes)
                .map_err(|_| CertError::corrupt(format!("EncryptedData: {err}")))?;
            let info = data.enc_content_info;
            let chunks = info
                .encrypted_content
                .ok_or_else(|| CertError::corrupt("EncryptedData without encryptedContent"))?;
            let ciphertext = chunks
                .iter()
                .flat_map(|c| c.as_bytes().iter().copied())
                .collect();
            Ok((info.content_enc_alg, ciphertext))
        }
    }
}

/// The bytes of a `ContentInfo` of type `data` (an OCTET STRING).
pub(super) fn data_content(info: &ContentInfo, what: &str) -> Result<OctetString, CertError> {
    if info.content_type == oid::SIGNED_DATA {
        return Err(CertError::unsupported(format!(
            "{what} in public-key integrity mode (SignedData)"
        )));
    }
    if info.content_type != oid::DATA {
        return Err(CertError::corrupt(format!(
            "{what} has content type {} where data was expected",
            info.content_type
        )));
    }
    let any = info
        .content
        .as_ref()
        .ok_or_else(|| CertError::corrupt(format!("{what} has no content")))?;
    any.decode_as::<OctetString>()
        .map_err(|e| CertError::corrupt(format!("{what}: {e}")))
}

/// The `MacData` of a PFX as written: the digest OID and the iteration count, `None` when left
/// out (as Key Vault does). `Ok(None)` for a PFX without a MAC.
pub fn mac_summary(der: &[u8]) -> Result<Option<(String, Option<u32>)>, CertError> {
    let pfx = Pfx::from_der(der).map_err(|e| CertError::corrupt(format!("PFX structure: {e}")))?;
    Ok(pfx
        .mac_data
        .map(|mac| (mac.mac.algorithm.oid.to_string(), mac.iterations)))
}
