//! Certificate decoding and the on-disk store of akvvm.
//!
//! - [`pkcs12`]: a pure-Rust PKCS#12 codec (decodes every variant Key Vault and OpenSSL produce,
//!   encodes the way Key Vault does).
//! - [`certificate`]: a decoded certificate bundle (key, leaf, ordered chain), thumbprints,
//!   key/leaf matching, and the PEM form.
//! - [`store`]: the store directory layout, `write_atomic`, stable symlinks, ACLs and the state
//!   file.
//! - [`error`]: [`CertError`], the decoding errors with their stable codes.
//! - [`codes`]: the one error-code scheme (`domain.reason`) and the [`error_codes!`] macro every
//!   error type of akvvm uses.

pub mod certificate;
pub mod codes;
pub mod error;
pub mod pkcs12;
pub mod store;

pub use error::CertError;
