//! Certificate decoding and the on-disk store of akvvm.
//!
//! Module map (data flows from a secret value through `certificate` into `store`):
//!
//! - [`codes`]: the one error-code scheme (`domain.reason`) and the [`error_codes!`] macro.
//! - [`error`]: [`CertError`], the decoding errors and their `cert.*` codes.
//! - [`pkcs12`]: a pure-Rust PKCS#12 codec (reads Key Vault and OpenSSL files, writes Key Vault's).
//!   - `pkcs12::asn1`: the PKCS#12 structures and object identifiers.
//!   - `pkcs12::ber`: BER input normalised to DER.
//!   - `pkcs12::crypto`: password forms, key derivation, the PBE ciphers and the MAC.
//!   - `pkcs12::decode`: opening a PFX into keys and certificates.
//!   - `pkcs12::encode`: writing a PFX the way Key Vault does.
//! - [`certificate`]: keys, certificates, the bundle (key, leaf, ordered chain) and its PEM form.
//!   - `certificate::decode`: a secret value, PFX or PEM decoded into a bundle.
//!   - `certificate::pem`: PEM text split into blocks and written.
//! - [`store`]: the store directory: layout constants, request and result types, `Store::open`.
//!   - `store::names`: the checks on vault, certificate, version and link names.
//!   - `store::install`: one version rendered, written, linked, then old ones pruned.
//!   - `store::prune`: the versions of a certificate and the pruning of old ones.
//!   - `store::access`: the `acls` setting applied to installed versions and the store's ACL.
//!   - `store::lookup`: what is installed, read back from the store.
//!   - [`store::atomic`]: `write_atomic` and the link swap, the crash-safe primitives.
//!   - `store::sys`: every system call the store makes on its directory, each counted
//!     ([`store::store_operations`], [`store::store_syncs`]) where it is made.
//!   - [`store::acl`]: POSIX ACLs in the kernel's xattr form.
//!   - [`store::error`]: [`StoreError`](store::StoreError) and its `store.*` codes.
//! - [`trust`]: the one rule for trusting a file or directory (owner, writers, kind) that the
//!   settings reader, hook programs, the store path, the state directory and Arc's key file use.
//! - [`locks`]: `lock_or_recover` and its kin, the one way a poisoned lock is recovered.
//! - `fuzzing` (hidden): the fuzz harnesses of the decoders, shared by `fuzz/` and the tests.
//! - `machine` (hidden): the tests' one way to skip when the machine lacks root, a program or
//!   a file system feature (and to fail instead under `AKVVM_REQUIRE_ROOT=1`).

pub mod certificate;
pub mod codes;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod locks;
#[doc(hidden)]
pub mod machine;
pub mod pkcs12;
pub mod store;
pub mod trust;

pub use error::CertError;
