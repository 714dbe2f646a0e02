//! The local vault: Azure Key Vault, Entra ID and IMDS on loopback.
