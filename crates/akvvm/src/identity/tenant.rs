//! [`TenantSlot`]: the tenant a credential learns from Key Vault's challenge, and the check of
//! a tenant found there.

use std::sync::{Arc, RwLock};

use akvvm_cert::locks::RwLockExt;

/// Where a credential that needs a tenant learns it: the vault transport writes the tenant found
/// in Key Vault's 401 challenge; the bootstrap credential reads it.
#[derive(Debug, Default)]
pub struct TenantSlot(RwLock<Option<String>>);

impl TenantSlot {
    /// An empty slot.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A slot holding a known tenant.
    pub fn with_tenant(tenant: &str) -> Arc<Self> {
        let slot = Self::default();
        slot.set(tenant);
        Arc::new(slot)
    }

    /// Records the tenant.
    pub fn set(&self, tenant: &str) {
        let mut guard = self.0.write_or_recover();
        *guard = Some(tenant.to_owned());
    }

    /// The tenant, once known.
    pub fn get(&self) -> Option<String> {
        self.0.read_or_recover().clone()
    }
}

/// Whether `tenant` looks like an Entra tenant id or domain (GUID or DNS name); anything else
/// from a challenge is refused rather than put into a URL.
pub fn is_valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= 256
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}
