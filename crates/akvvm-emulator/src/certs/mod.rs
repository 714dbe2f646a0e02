//! What a Key Vault certificate is made of, with no state and no HTTP: its policy (defaults,
//! validation, the policy of an imported certificate), self-signed generation from a policy
//! (RSA 2048/3072/4096, EC P-256/P-384/P-521), imports (PFX with or without password, PEM) and
//! the value of its managed secret (a PFX encoded the way Key Vault encodes it, or a PEM bundle,
//! as the policy's `secret_props.contentType` says).
//!
//! The model keeps certificates and their versions ([`crate::state::certificates`]); the Key
//! Vault data plane serves them ([`crate::keyvault::certificates`]).
//! - [`policy`]: policies and their defaults;
//! - [`generate`]: self-signed certificates from a policy;
//! - [`bundle`]: imports and the managed secret's value.

pub mod bundle;
pub mod generate;
pub mod policy;

pub use bundle::{
    CertificateCreated, CertificateImport, decode_import, pkcs12_value_to_pem, secret_value,
};
pub use generate::{csr, self_signed, self_signed_with_key};
pub use policy::{
    DEFAULT_VALIDITY_MONTHS, normalize_policy, policy_from_bundle, self_signed_policy,
};
