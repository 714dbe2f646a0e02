//! A pure-Rust PKCS#12 (PFX, RFC 7292) codec.
//!
//! [`decode`] opens every variant akvvm meets: Key Vault's own files (3DES key bag, RC2-40 or 3DES
//! certificate bag, HMAC-SHA1 MAC, a zero-length password), OpenSSL 3's default (PBES2 with
//! PBKDF2-HMAC-SHA256 and AES-256-CBC, HMAC-SHA256 MAC), OpenSSL `-legacy`, files with a
//! password, without a MAC or without encryption, in DER or in the BER forms (indefinite
//! lengths, chunked OCTET STRINGs) some writers use. [`encode_keyvault`] writes a PFX exactly the way
//! Key Vault does, for the emulator and for tests.
//!
//! The empty password has two encodings: PKCS#12 turns a password into a NUL-terminated
//! big-endian UTF-16 string, so OpenSSL feeds the KDF two zero bytes for "", while Key Vault (and
//! Windows) feeds it zero bytes. Decoding an empty password therefore tries both; encoding writes
//! Key Vault's zero-length form.
//!
//! To support another cipher, add its OID to `decrypt` (and a fixture under
//! `tests/fixtures/pkcs12/`).

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyIvInit};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Sequence};
use hmac::{Hmac, Mac};
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use rand::RngCore;
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

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

/// Iteration counts above this are refused: no real PFX uses them, and a hostile file could
/// otherwise make decoding take hours.
const MAX_ITERATIONS: u32 = 1_000_000;
/// The iteration count Key Vault uses for its key and certificate bags.
const KEYVAULT_PBE_ITERATIONS: u32 = 2000;

mod oid {
    use der::asn1::ObjectIdentifier as Oid;

    pub const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    pub const ENCRYPTED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.6");
    pub const ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
    pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");

    pub const KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.1");
    pub const SHROUDED_KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.2");
    pub const CERT_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.3");
    pub const SAFE_CONTENTS_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.6");
    pub const X509_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.22.1");
    pub const LOCAL_KEY_ID: Oid = Oid::new_unwrap("1.2.840.113549.1.9.21");

    pub const PBE_SHA1_RC4_128: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.1");
    pub const PBE_SHA1_RC4_40: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.2");
    pub const PBE_SHA1_3DES: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.3");
    pub const PBE_SHA1_2DES: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.4");
    pub const PBE_SHA1_RC2_128: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.5");
    pub const PBE_SHA1_RC2_40: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.6");

    pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    pub const SHA224: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.4");
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
}

// ---- ASN.1 (RFC 7292 and the parts of RFC 5652 it uses) ----

#[derive(Sequence)]
struct Pfx {
    version: u8,
    auth_safe: ContentInfo,
    mac_data: Option<MacData>,
}

#[derive(Clone, Sequence)]
struct ContentInfo {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    content: Option<Any>,
}

/// `iterations` is `DEFAULT 1`: an `Option` so that both a left-out count (Key Vault, OpenSSL)
/// and an explicit 1 decode, and so that encoding can leave it out.
#[derive(Sequence)]
struct MacData {
    mac: DigestInfo,
    mac_salt: OctetString,
    iterations: Option<u32>,
}

impl MacData {
    fn iterations(&self) -> u32 {
        self.iterations.unwrap_or(1)
    }
}

#[derive(Sequence)]
struct DigestInfo {
    algorithm: AlgorithmIdentifierOwned,
    digest: OctetString,
}

#[derive(Sequence)]
struct EncryptedData {
    version: u8,
    enc_content_info: EncryptedContentInfo,
}

#[derive(Sequence)]
struct EncryptedContentInfo {
    content_type: ObjectIdentifier,
    content_enc_alg: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    encrypted_content: Option<OctetString>,
}

#[derive(Sequence)]
struct SafeBag {
    bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    bag_value: Any,
    bag_attributes: Option<Any>,
}

#[derive(Sequence)]
struct CertBag {
    cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    cert_value: OctetString,
}

#[derive(Sequence)]
struct EncryptedPrivateKeyInfo {
    encryption_algorithm: AlgorithmIdentifierOwned,
    encrypted_data: OctetString,
}

#[derive(Sequence)]
struct PbeParams {
    salt: OctetString,
    iterations: u32,
}

// ---- decoding ----

/// Opens a PFX with `password` ("" for Key Vault's files) and returns its keys and certificates.
pub fn decode(der: &[u8], password: &str) -> Result<Pkcs12Contents, CertError> {
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

    let passwords = Passwords::new(password);
    let Some(mac) = &pfx.mac_data else {
        return open_with_any(&auth_safe_items, &passwords, &passwords.bmp);
    };
    let mut verified = None;
    for candidate in &passwords.bmp {
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

/// The password in the byte forms the algorithms want.
struct Passwords {
    /// BMPString encodings to try for the PKCS#12 KDF (two for the empty password).
    bmp: Vec<Zeroizing<Vec<u8>>>,
    /// UTF-8 bytes, for PBES2 (PKCS#5) schemes.
    utf8: Zeroizing<Vec<u8>>,
    empty: bool,
}

impl Passwords {
    fn new(password: &str) -> Self {
        let mut terminated = Zeroizing::new(Vec::with_capacity(password.len() * 2 + 2));
        for unit in password.encode_utf16() {
            terminated.extend_from_slice(&unit.to_be_bytes());
        }
        terminated.extend_from_slice(&[0, 0]);
        let bmp = if password.is_empty() {
            // Key Vault's zero-length form first, then OpenSSL's two zero bytes.
            vec![Zeroizing::new(Vec::new()), terminated]
        } else {
            vec![terminated]
        };
        Self {
            bmp,
            utf8: Zeroizing::new(password.as_bytes().to_vec()),
            empty: password.is_empty(),
        }
    }

    fn describe(&self, why: &str) -> String {
        if self.empty {
            format!(
                "{why}; an empty password was tried in both its zero-length and its \
                 two-zero-byte form: pass the PFX password"
            )
        } else {
            format!("{why}; check the password")
        }
    }
}

enum Walk {
    Cert(CertError),
    /// Decryption produced garbage: the usual sign of a wrong password.
    DecryptFailed,
}

impl From<CertError> for Walk {
    fn from(err: CertError) -> Self {
        Self::Cert(err)
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
        let value = bag
            .bag_value
            .to_der()
            .map_err(|e| CertError::corrupt(format!("bag value: {e}")))?;
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
            contents.keys.push(Zeroizing::new(value));
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

/// Decodes DER, or BER that differs from DER only in its lengths and string chunking (as some
/// PKCS#12 writers produce), by re-encoding it as DER first.
fn lenient<T: der::DecodeOwned>(bytes: &[u8]) -> der::Result<T> {
    match T::from_der(bytes) {
        Ok(value) => Ok(value),
        Err(err) => match ber::to_der(bytes) {
            Some(normalised) if normalised != bytes => T::from_der(&normalised).map_err(|_| err),
            _ => Err(err),
        },
    }
}

/// `EncryptedData` whose `[0] IMPLICIT OCTET STRING` content is in BER's constructed form.
#[derive(Sequence)]
struct EncryptedDataChunked {
    version: u8,
    enc_content_info: EncryptedContentInfoChunked,
}

#[derive(Sequence)]
struct EncryptedContentInfoChunked {
    content_type: ObjectIdentifier,
    content_enc_alg: AlgorithmIdentifierOwned,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    encrypted_content: Option<Vec<OctetString>>,
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

/// BER to DER for the encodings PKCS#12 writers use: indefinite lengths become definite, and
/// constructed OCTET STRINGs are joined into one. Anything else BER allows is refused (`None`).
mod ber {
    const MAX_DEPTH: usize = 32;
    const OCTET_STRING: u8 = 0x04;
    const OCTET_STRING_CONSTRUCTED: u8 = 0x24;

    pub fn to_der(input: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len());
        let mut pos = 0;
        element(input, &mut pos, &mut out, 0)?;
        (pos == input.len()).then_some(out)
    }

    /// `Some(None)` is the indefinite length.
    fn length(input: &[u8], pos: &mut usize) -> Option<Option<usize>> {
        let first = *input.get(*pos)?;
        *pos += 1;
        match first {
            0x00..=0x7f => Some(Some(usize::from(first))),
            0x80 => Some(None),
            0x81..=0x84 => {
                let count = usize::from(first & 0x7f);
                let bytes = input.get(*pos..*pos + count)?;
                *pos += count;
                let value = bytes
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                Some(Some(value))
            }
            _ => None,
        }
    }

    fn element(input: &[u8], pos: &mut usize, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let tag = *input.get(*pos)?;
        *pos += 1;
        if tag & 0x1f == 0x1f {
            return None; // high tag numbers do not occur in PKCS#12
        }
        let constructed = tag & 0x20 != 0;
        match length(input, pos)? {
            Some(len) => {
                let end = pos.checked_add(len).filter(|&end| end <= input.len())?;
                if !constructed {
                    write(out, tag, &input[*pos..end]);
                    *pos = end;
                    return Some(());
                }
                let mut content = Vec::new();
                while *pos < end {
                    element(input, pos, &mut content, depth + 1)?;
                }
                (*pos == end).then_some(())?;
                finish(out, tag, &content)
            }
            None => {
                if !constructed {
                    return None;
                }
                let mut content = Vec::new();
                loop {
                    if input.get(*pos..*pos + 2)? == [0, 0] {
                        *pos += 2;
                        break;
                    }
                    element(input, pos, &mut content, depth + 1)?;
                }
                finish(out, tag, &content)
            }
        }
    }

    fn finish(out: &mut Vec<u8>, tag: u8, content: &[u8]) -> Option<()> {
        if tag != OCTET_STRING_CONSTRUCTED {
            write(out, tag, content);
            return Some(());
        }
        // The chunks are already DER OCTET STRINGs: join their contents.
        let mut joined = Vec::with_capacity(content.len());
        let mut pos = 0;
        while pos < content.len() {
            if content[pos] != OCTET_STRING {
                return None;
            }
            pos += 1;
            let len = length(content, &mut pos)??;
            joined.extend_from_slice(content.get(pos..pos + len)?);
            pos += len;
        }
        write(out, OCTET_STRING, &joined);
        Some(())
    }

    fn write(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
        out.push(tag);
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
    }
}

/// The bytes of a `ContentInfo` of type `data` (an OCTET STRING).
fn data_content(info: &ContentInfo, what: &str) -> Result<OctetString, CertError> {
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

fn pbe_params(alg: &AlgorithmIdentifierOwned) -> Result<PbeParams, CertError> {
    let params = alg
        .parameters
        .as_ref()
        .ok_or_else(|| CertError::corrupt("PKCS#12 PBE algorithm without parameters"))?
        .decode_as::<PbeParams>()
        .map_err(|e| CertError::corrupt(format!("PKCS#12 PBE parameters: {e}")))?;
    check_iterations(params.iterations)?;
    Ok(params)
}

fn check_iterations(iterations: u32) -> Result<(), CertError> {
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(CertError::corrupt(format!(
            "iteration count {iterations} is outside 1..={MAX_ITERATIONS}"
        )));
    }
    Ok(())
}

/// PKCS#12 appendix B key derivation with SHA-1, as all PKCS#12 PBE schemes use.
fn derive_sha1(
    bmp: &[u8],
    salt: &[u8],
    kind: Pkcs12KeyType,
    iterations: u32,
    len: usize,
) -> Zeroizing<Vec<u8>> {
    // `check_iterations` bounds the count well inside i32.
    let rounds = i32::try_from(iterations).unwrap_or(i32::MAX);
    Zeroizing::new(derive_key::<sha1::Sha1>(bmp, salt, kind, rounds, len))
}

/// A derived cipher key and IV.
type KeyAndIv = (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);

/// The cipher key (`key_len` bytes) and the 8-byte IV of a PKCS#12 PBE scheme (every one this
/// module reads or writes uses a 64-bit block cipher).
fn pbe_key_and_iv(bmp: &[u8], salt: &[u8], iterations: u32, key_len: usize) -> KeyAndIv {
    (
        derive_sha1(bmp, salt, Pkcs12KeyType::EncryptionKey, iterations, key_len),
        derive_sha1(bmp, salt, Pkcs12KeyType::Iv, iterations, 8),
    )
}

fn decrypt(
    alg: &AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    passwords: &Passwords,
    bmp: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Walk> {
    let oid = alg.oid;
    let pbe = |key_len: usize| -> Result<KeyAndIv, CertError> {
        let params = pbe_params(alg)?;
        Ok(pbe_key_and_iv(
            bmp,
            params.salt.as_bytes(),
            params.iterations,
            key_len,
        ))
    };
    let plain = if oid == oid::PBE_SHA1_3DES {
        let (key, iv) = pbe(24)?;
        cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|e| CertError::corrupt(format!("3DES key: {e}")))?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
    } else if oid == oid::PBE_SHA1_2DES {
        let (key, iv) = pbe(16)?;
        cbc::Decryptor::<des::TdesEde2>::new_from_slices(&key, &iv)
            .map_err(|e| CertError::corrupt(format!("2-key 3DES key: {e}")))?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
    } else if oid == oid::PBE_SHA1_RC2_40 || oid == oid::PBE_SHA1_RC2_128 {
        let bits = if oid == oid::PBE_SHA1_RC2_40 { 40 } else { 128 };
        let (key, iv) = pbe(bits / 8)?;
        let cipher = rc2::Rc2::new_with_eff_key_len(&key, bits);
        cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(cipher, &iv)
            .map_err(|e| CertError::corrupt(format!("RC2 IV: {e}")))?
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
    } else if oid == oid::PBE_SHA1_RC4_128 || oid == oid::PBE_SHA1_RC4_40 {
        return Err(
            CertError::unsupported("RC4 encryption in a PFX (re-export it with AES)").into(),
        );
    } else {
        return decrypt_pkcs5(alg, ciphertext, passwords);
    };
    plain.map(Zeroizing::new).map_err(|_| Walk::DecryptFailed)
}

/// PBES2 (PBKDF2 with AES or 3DES), as OpenSSL 3 writes by default.
fn decrypt_pkcs5(
    alg: &AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    passwords: &Passwords,
) -> Result<Zeroizing<Vec<u8>>, Walk> {
    let alg_der = alg
        .to_der()
        .map_err(|e| CertError::corrupt(format!("encryption algorithm: {e}")))?;
    let scheme = pkcs5::EncryptionScheme::try_from(alg_der.as_slice())
        .map_err(|_| CertError::unsupported(format!("PFX encryption algorithm {}", alg.oid)))?;
    if let Some(pbkdf2) = scheme.pbes2().and_then(|p| p.kdf.pbkdf2()) {
        check_iterations(pbkdf2.iteration_count)?;
    }
    match scheme.decrypt(passwords.utf8.as_slice(), ciphertext) {
        Ok(plain) => Ok(Zeroizing::new(plain)),
        // pkcs5 0.7 reports a bad padding (the sign of a wrong password) as `EncryptFailed`.
        Err(pkcs5::Error::DecryptFailed | pkcs5::Error::EncryptFailed) => Err(Walk::DecryptFailed),
        Err(e) => {
            Err(CertError::unsupported(format!("PFX encryption scheme {}: {e}", alg.oid)).into())
        }
    }
}

macro_rules! hmac_verifies {
    ($digest:ty, $mac:expr, $data:expr, $bmp:expr) => {{
        let len = <$digest as sha2::Digest>::output_size();
        let rounds = i32::try_from($mac.iterations()).unwrap_or(i32::MAX);
        let key = Zeroizing::new(derive_key::<$digest>(
            $bmp,
            $mac.mac_salt.as_bytes(),
            Pkcs12KeyType::Mac,
            rounds,
            len,
        ));
        let mut hmac = <Hmac<$digest> as Mac>::new_from_slice(&key)
            .map_err(|e| CertError::corrupt(format!("MAC key: {e}")))?;
        hmac.update($data);
        hmac.verify_slice($mac.mac.digest.as_bytes()).is_ok()
    }};
}

fn mac_verifies(mac: &MacData, data: &[u8], bmp: &[u8]) -> Result<bool, CertError> {
    check_iterations(mac.iterations())?;
    let alg = mac.mac.algorithm.oid;
    Ok(if alg == oid::SHA1 {
        hmac_verifies!(sha1::Sha1, mac, data, bmp)
    } else if alg == oid::SHA256 {
        hmac_verifies!(sha2::Sha256, mac, data, bmp)
    } else if alg == oid::SHA384 {
        hmac_verifies!(sha2::Sha384, mac, data, bmp)
    } else if alg == oid::SHA512 {
        hmac_verifies!(sha2::Sha512, mac, data, bmp)
    } else if alg == oid::SHA224 {
        hmac_verifies!(sha2::Sha224, mac, data, bmp)
    } else {
        return Err(CertError::unsupported(format!("PFX MAC digest {alg}")));
    })
}

// ---- encoding ----

/// Builds a PFX the way Key Vault does: the PKCS#8 key in a pbeWithSHA1And3-KeyTripleDES-CBC
/// shrouded key bag, the certificates (leaf first) in one pbeWithSHA1And40BitRC2-CBC encrypted
/// bag, both with 2000 iterations, an HMAC-SHA1 MAC whose iteration count is left out (1), and a
/// zero-length password (zero bytes into the KDF, not OpenSSL's two zero bytes).
pub fn encode_keyvault(key_pkcs8_der: &[u8], certs_der: &[Vec<u8>]) -> Result<Vec<u8>, CertError> {
    let encode_err = |what: &str, e: der::Error| CertError::PfxEncode {
        reason: format!("{what}: {e}"),
    };
    pkcs8::PrivateKeyInfo::from_der(key_pkcs8_der).map_err(|e| CertError::PfxEncode {
        reason: format!("the key is not PKCS#8 DER: {e}"),
    })?;
    if certs_der.is_empty() {
        return Err(CertError::PfxEncode {
            reason: "no certificates given".into(),
        });
    }
    let password: &[u8] = &[];
    let local_key_id = local_key_id_attribute().map_err(|e| encode_err("localKeyID", e))?;

    // The key: a shrouded key bag in a plain data SafeContents.
    let (key_alg, key_ciphertext) = {
        let params = random_pbe_params().map_err(|e| encode_err("salt", e))?;
        let (key, iv) = pbe_key_and_iv(password, params.salt.as_bytes(), params.iterations, 24);
        let ciphertext = cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|e| CertError::PfxEncode {
                reason: format!("3DES key: {e}"),
            })?
            .encrypt_padded_vec_mut::<Pkcs7>(key_pkcs8_der);
        (
            pbe_algorithm(oid::PBE_SHA1_3DES, &params)
                .map_err(|e| encode_err("key algorithm", e))?,
            ciphertext,
        )
    };
    let shrouded = EncryptedPrivateKeyInfo {
        encryption_algorithm: key_alg,
        encrypted_data: OctetString::new(key_ciphertext).map_err(|e| encode_err("key", e))?,
    };
    let key_bag = SafeBag {
        bag_id: oid::SHROUDED_KEY_BAG,
        bag_value: Any::encode_from(&shrouded).map_err(|e| encode_err("key bag", e))?,
        bag_attributes: Some(local_key_id.clone()),
    };
    let key_contents = vec![key_bag]
        .to_der()
        .map_err(|e| encode_err("key SafeContents", e))?;

    // The certificates: cert bags in one RC2-40 encrypted SafeContents, the leaf marked with the
    // key's localKeyID.
    let mut cert_bags = Vec::with_capacity(certs_der.len());
    for (index, cert) in certs_der.iter().enumerate() {
        let bag = CertBag {
            cert_id: oid::X509_CERTIFICATE,
            cert_value: OctetString::new(cert.clone()).map_err(|e| encode_err("certificate", e))?,
        };
        cert_bags.push(SafeBag {
            bag_id: oid::CERT_BAG,
            bag_value: Any::encode_from(&bag).map_err(|e| encode_err("certificate bag", e))?,
            bag_attributes: (index == 0).then(|| local_key_id.clone()),
        });
    }
    let cert_contents = cert_bags
        .to_der()
        .map_err(|e| encode_err("certificate SafeContents", e))?;
    let params = random_pbe_params().map_err(|e| encode_err("salt", e))?;
    let (key, iv) = pbe_key_and_iv(password, params.salt.as_bytes(), params.iterations, 5);
    let cipher = rc2::Rc2::new_with_eff_key_len(&key, 40);
    let cert_ciphertext = cbc::Encryptor::<rc2::Rc2>::inner_iv_slice_init(cipher, &iv)
        .map_err(|e| CertError::PfxEncode {
            reason: format!("RC2 IV: {e}"),
        })?
        .encrypt_padded_vec_mut::<Pkcs7>(&cert_contents);
    let encrypted = EncryptedData {
        version: 0,
        enc_content_info: EncryptedContentInfo {
            content_type: oid::DATA,
            content_enc_alg: pbe_algorithm(oid::PBE_SHA1_RC2_40, &params)
                .map_err(|e| encode_err("certificate algorithm", e))?,
            encrypted_content: Some(
                OctetString::new(cert_ciphertext).map_err(|e| encode_err("certificates", e))?,
            ),
        },
    };

    let auth_safe = vec![
        data_content_info(key_contents).map_err(|e| encode_err("key ContentInfo", e))?,
        ContentInfo {
            content_type: oid::ENCRYPTED_DATA,
            content: Some(
                Any::encode_from(&encrypted).map_err(|e| encode_err("EncryptedData", e))?,
            ),
        },
    ]
    .to_der()
    .map_err(|e| encode_err("AuthenticatedSafe", e))?;

    let mut mac_salt = vec![0u8; 20];
    rand::rng().fill_bytes(&mut mac_salt);
    let mac_key = derive_sha1(password, &mac_salt, Pkcs12KeyType::Mac, 1, 20);
    let mut hmac =
        <Hmac<sha1::Sha1> as Mac>::new_from_slice(&mac_key).map_err(|e| CertError::PfxEncode {
            reason: format!("MAC key: {e}"),
        })?;
    hmac.update(&auth_safe);
    let digest = hmac.finalize().into_bytes().to_vec();

    Pfx {
        version: 3,
        auth_safe: data_content_info(auth_safe).map_err(|e| encode_err("authSafe", e))?,
        mac_data: Some(MacData {
            mac: DigestInfo {
                algorithm: AlgorithmIdentifierOwned {
                    oid: oid::SHA1,
                    parameters: None,
                },
                digest: OctetString::new(digest).map_err(|e| encode_err("MAC", e))?,
            },
            mac_salt: OctetString::new(mac_salt).map_err(|e| encode_err("MAC salt", e))?,
            iterations: None,
        }),
    }
    .to_der()
    .map_err(|e| encode_err("PFX", e))
}

fn random_pbe_params() -> der::Result<PbeParams> {
    let mut salt = vec![0u8; 8];
    rand::rng().fill_bytes(&mut salt);
    Ok(PbeParams {
        salt: OctetString::new(salt)?,
        iterations: KEYVAULT_PBE_ITERATIONS,
    })
}

fn pbe_algorithm(
    oid: ObjectIdentifier,
    params: &PbeParams,
) -> der::Result<AlgorithmIdentifierOwned> {
    Ok(AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::encode_from(params)?),
    })
}

fn data_content_info(bytes: Vec<u8>) -> der::Result<ContentInfo> {
    Ok(ContentInfo {
        content_type: oid::DATA,
        content: Some(Any::encode_from(&OctetString::new(bytes)?)?),
    })
}

/// `SET { localKeyID { 01 00 00 00 } }`, the attribute Key Vault puts on the key and the leaf.
fn local_key_id_attribute() -> der::Result<Any> {
    let value = Any::encode_from(&OctetString::new(vec![1u8, 0, 0, 0])?)?;
    let attribute = x509_cert::attr::Attribute {
        oid: oid::LOCAL_KEY_ID,
        values: SetOfVec::try_from(vec![value])?,
    };
    Any::encode_from(&SetOfVec::try_from(vec![attribute])?)
}

/// The `MacData` of a PFX as written: the digest OID and the iteration count, `None` when left
/// out (as Key Vault does). `Ok(None)` for a PFX without a MAC.
pub fn mac_summary(der: &[u8]) -> Result<Option<(String, Option<u32>)>, CertError> {
    let pfx = Pfx::from_der(der).map_err(|e| CertError::corrupt(format!("PFX structure: {e}")))?;
    Ok(pfx
        .mac_data
        .map(|mac| (mac.mac.algorithm.oid.to_string(), mac.iterations)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, Vec<Vec<u8>>) {
        let key = p256::SecretKey::from_slice(&[7u8; 32]).expect("a P-256 scalar");
        let key_der = pkcs8::EncodePrivateKey::to_pkcs8_der(&key).expect("PKCS#8");
        // encode_keyvault does not parse certificates; any DER SEQUENCE will do here.
        (
            key_der.as_bytes().to_vec(),
            vec![vec![0x30, 0x03, 0x02, 0x01, 0x05]],
        )
    }

    /// Key Vault's empty password is zero bytes into the KDF; OpenSSL's is two zero bytes. The
    /// two give different MAC keys, so a decoder must try both.
    #[test]
    fn keyvault_empty_password_is_zero_length_not_two_zero_bytes() {
        let (key, certs) = sample();
        let der = encode_keyvault(&key, &certs).expect("encode");
        let pfx = Pfx::from_der(&der).expect("PFX");
        let mac = pfx.mac_data.as_ref().expect("MAC");
        let data = data_content(&pfx.auth_safe, "authSafe").expect("data");
        assert!(mac_verifies(mac, data.as_bytes(), &[]).expect("MAC"));
        assert!(!mac_verifies(mac, data.as_bytes(), &[0, 0]).expect("MAC"));
        assert_eq!(mac.iterations, None, "the iteration count is left out");
        let passwords = Passwords::new("");
        assert_eq!(passwords.bmp.len(), 2);
        assert_eq!(passwords.bmp[0].as_slice(), &[] as &[u8]);
        assert_eq!(passwords.bmp[1].as_slice(), &[0, 0]);
    }

    #[test]
    fn a_password_is_nul_terminated_big_endian_utf16() {
        let passwords = Passwords::new("aé");
        assert_eq!(passwords.bmp.len(), 1);
        assert_eq!(passwords.bmp[0].as_slice(), &[0, b'a', 0, 0xe9, 0, 0]);
        assert_eq!(passwords.utf8.as_slice(), "aé".as_bytes());
    }

    /// Re-encodes DER the way BER writers (NSS, old Java) do: indefinite lengths everywhere,
    /// OCTET STRINGs in 8-byte chunks, and `[0] IMPLICIT OCTET STRING` in constructed form.
    /// With `deep`, also inside OCTET STRINGs that hold an AuthenticatedSafe or SafeContents
    /// (which changes the MAC'd bytes, so only for files without a MAC).
    fn to_ber(der: &[u8], deep: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut reader = der::SliceReader::new(der).expect("reader");
        while !der::Reader::is_finished(&reader) {
            let any: Any = der::Reader::decode(&mut reader).expect("DER");
            ber_element(&any, deep, &mut out);
        }
        out
    }

    fn chunks(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
        out.extend_from_slice(&[tag, 0x80]);
        for chunk in content.chunks(8) {
            out.push(0x04);
            out.push(chunk.len() as u8);
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(&[0, 0]);
    }

    fn ber_element(any: &Any, deep: bool, out: &mut Vec<u8>) {
        let tag = u8::from(der::Tagged::tag(any));
        let content = any.value();
        if tag & 0x20 != 0 {
            out.extend_from_slice(&[tag, 0x80]);
            out.extend(to_ber(content, deep));
            out.extend_from_slice(&[0, 0]);
        } else if tag == 0x04 && content.len() > 8 {
            let nested = deep
                && (Vec::<ContentInfo>::from_der(content).is_ok()
                    || Vec::<SafeBag>::from_der(content).is_ok());
            if nested {
                chunks(out, 0x24, &to_ber(content, deep));
            } else {
                chunks(out, 0x24, content);
            }
        } else if tag == 0x80 {
            chunks(out, 0xA0, content);
        } else {
            out.extend(any.to_der().expect("DER"));
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pkcs12")
            .join(name);
        std::fs::read(&path).expect("fixture")
    }

    #[test]
    fn ber_encoded_pfx_files_open() {
        use base64::Engine as _;
        let kv_text = String::from_utf8(fixture("kv-rsa2048-rc2-2020.pfx.b64")).expect("text");
        let kv = base64::engine::general_purpose::STANDARD
            .decode(kv_text.trim())
            .expect("base64");
        let cases = [
            (kv, "", false),
            (fixture("openssl3-aes-rsa2048.pfx"), "correct horse", false),
            (fixture("openssl3-nomac-rsa2048.pfx"), "correct horse", true),
            (fixture("openssl3-unencrypted-ecp384.pfx"), "", true),
        ];
        for (der, password, deep) in cases {
            let expected = decode(&der, password).expect("DER original");
            let ber = to_ber(&der, deep);
            assert!(
                ber != der,
                "the BER form came out identical to the DER original"
            );
            assert!(Pfx::from_der(&ber).is_err(), "the BER form is not DER");
            let opened = decode(&ber, password).expect("BER form");
            assert_eq!(opened.certs, expected.certs);
            assert_eq!(opened.keys.len(), expected.keys.len());
            assert!(
                opened.keys[0].as_slice() == expected.keys[0].as_slice(),
                "the key opened from the BER form differs (not shown)"
            );
        }
    }

    #[test]
    fn ber_normaliser_refuses_what_it_cannot_map() {
        // Indefinite length on a primitive, a truncated end-of-contents, a bad chunk.
        assert_eq!(ber::to_der(&[0x04, 0x80, 0x00, 0x00]), None);
        assert_eq!(ber::to_der(&[0x30, 0x80, 0x02, 0x01, 0x01]), None);
        assert_eq!(
            ber::to_der(&[0x24, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00]),
            None
        );
        assert_eq!(
            ber::to_der(&[
                0x30, 0x80, 0x24, 0x80, 0x04, 0x01, 0xAA, 0x04, 0x01, 0xBB, 0, 0, 0, 0
            ]),
            Some(vec![0x30, 0x04, 0x04, 0x02, 0xAA, 0xBB])
        );
    }

    #[test]
    fn absurd_iteration_counts_are_refused() {
        assert!(check_iterations(0).is_err());
        assert!(check_iterations(MAX_ITERATIONS + 1).is_err());
        assert!(check_iterations(2048).is_ok());
    }
}
