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
//! - `asn1`: the PKCS#12 structures and object identifiers.
//! - `ber`: BER input normalised to DER.
//! - `crypto`: password forms, key derivation, the PBE ciphers and the MAC. To support another
//!   cipher, add its OID to `crypto::decrypt` (and a fixture under
//!   `crates/akvvm-testkit/fixtures/pkcs12/`).
//! - `decode`: [`decode`] and [`mac_summary`].
//! - `encode`: [`encode_keyvault`].

mod asn1;
mod ber;
mod crypto;
mod decode;
mod encode;

pub use crypto::MAX_WORK;
pub use decode::{Pkcs12Contents, decode, mac_summary};
pub use encode::encode_keyvault;

#[cfg(test)]
mod tests;
