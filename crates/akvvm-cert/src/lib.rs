//! Certificate decoding and the on-disk store of akvvm.
//!
//! - [`pkcs12`]: a pure-Rust PKCS#12 codec (decodes every variant Key Vault and OpenSSL produce,
//!   encodes the way Key Vault does).
//! - [`certificate`]: a decoded certificate bundle (key, leaf, ordered chain), thumbprints,
//!   key/leaf matching, and the PEM form.
//! - [`store`]: the store directory layout, `write_atomic`, stable symlinks, ACLs and the state
//!   file.
