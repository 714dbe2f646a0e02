//! The cryptography of PKCS#12: the password in the byte forms the algorithms want, the PKCS#12
//! key derivation (appendix B), the PBE ciphers (3DES, 2-key 3DES, RC2) and PBES2, and the
//! integrity MAC. To support another cipher, add its OID to [`decrypt`] (and a fixture under
//! `crates/akvvm-testkit/fixtures/pkcs12/`).

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, InnerIvInit, KeyIvInit};
use der::Encode;
use hmac::{Hmac, Mac};
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use super::asn1::{MacData, PbeParams, oid};
use crate::error::CertError;

/// Iteration counts above this are refused: no real PFX uses them, and a hostile file could
/// otherwise make decoding take hours.
pub(super) const MAX_ITERATIONS: u32 = 1_000_000;

/// The password in the byte forms the algorithms want.
pub(super) struct Passwords {
    /// BMPString encodings to try for the PKCS#12 KDF (two for the empty password).
    pub(super) bmp: Vec<Zeroizing<Vec<u8>>>,
    /// UTF-8 bytes, for PBES2 (PKCS#5) schemes.
    pub(super) utf8: Zeroizing<Vec<u8>>,
    pub(super) empty: bool,
    /// What is left of the work one PFX may cost ([`MAX_WORK`]).
    pub(super) budget: Budget,
}

/// The most key-derivation iterations opening one PFX may cost in all: MAC checks, key and IV
/// derivations, PBKDF2, for every bag and every password encoding tried. Key Vault's own PFX
/// take about 10,000, OpenSSL 3's about 15,000; a file of a thousand bags of a million
/// iterations each would otherwise keep the agent busy for hours.
pub const MAX_WORK: u64 = 4_000_000;

/// A countdown of key-derivation iterations.
pub(super) struct Budget {
    limit: u64,
    left: std::cell::Cell<u64>,
}

impl Budget {
    pub(super) fn new(limit: u64) -> Self {
        Self {
            limit,
            left: std::cell::Cell::new(limit),
        }
    }

    /// Spends `iterations` (a derivation about to run), or fails when they are not left.
    pub(super) fn charge(&self, iterations: u64) -> Result<(), CertError> {
        match self.left.get().checked_sub(iterations) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(CertError::corrupt(format!(
                "opening it takes more than {} key-derivation iterations in all (bags x \
                 iteration counts x password encodings); Key Vault's own PFX take about 10,000",
                self.limit
            ))),
        }
    }
}

impl Passwords {
    pub(super) fn new(password: &str) -> Self {
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
            budget: Budget::new(MAX_WORK),
        }
    }

    pub(super) fn describe(&self, why: &str) -> String {
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

pub(super) enum Walk {
    Cert(CertError),
    /// Decryption produced garbage: the usual sign of a wrong password.
    DecryptFailed,
}

impl From<CertError> for Walk {
    fn from(err: CertError) -> Self {
        Self::Cert(err)
    }
}

pub(super) fn pbe_params(alg: &AlgorithmIdentifierOwned) -> Result<PbeParams, CertError> {
    let params = alg
        .parameters
        .as_ref()
        .ok_or_else(|| CertError::corrupt("PKCS#12 PBE algorithm without parameters"))?
        .decode_as::<PbeParams>()
        .map_err(|e| CertError::corrupt(format!("PKCS#12 PBE parameters: {e}")))?;
    check_iterations(params.iterations)?;
    Ok(params)
}

pub(super) fn check_iterations(iterations: u32) -> Result<(), CertError> {
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(CertError::corrupt(format!(
            "iteration count {iterations} is outside 1..={MAX_ITERATIONS}"
        )));
    }
    Ok(())
}

/// PKCS#12 appendix B key derivation with SHA-1, as all PKCS#12 PBE schemes use.
pub(super) fn derive_sha1(
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
pub(super) type KeyAndIv = (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);

/// The cipher key (`key_len` bytes) and the 8-byte IV of a PKCS#12 PBE scheme (every one this
/// module reads or writes uses a 64-bit block cipher).
pub(super) fn pbe_key_and_iv(bmp: &[u8], salt: &[u8], iterations: u32, key_len: usize) -> KeyAndIv {
    (
        derive_sha1(bmp, salt, Pkcs12KeyType::EncryptionKey, iterations, key_len),
        derive_sha1(bmp, salt, Pkcs12KeyType::Iv, iterations, 8),
    )
}

pub(super) fn decrypt(
    alg: &AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    passwords: &Passwords,
    bmp: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Walk> {
    let oid = alg.oid;
    let pbe = |key_len: usize| -> Result<KeyAndIv, CertError> {
        let params = pbe_params(alg)?;
        // A key and an IV: two derivations.
        passwords.budget.charge(2 * u64::from(params.iterations))?;
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
pub(super) fn decrypt_pkcs5(
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
        passwords.budget.charge(u64::from(pbkdf2.iteration_count))?;
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

pub(super) fn mac_verifies(mac: &MacData, data: &[u8], bmp: &[u8]) -> Result<bool, CertError> {
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
