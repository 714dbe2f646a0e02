//! What names the Key Vault VM extension in a template or resource: its publisher and types.

/// The publisher of the Key Vault VM extension.
pub const KEY_VAULT_PUBLISHER: &str = "Microsoft.Azure.KeyVault";
/// The Key Vault extension types.
pub const KEY_VAULT_TYPES: &[&str] = &["KeyVaultForLinux", "KeyVaultForWindows", "KeyVaultForPaaS"];
