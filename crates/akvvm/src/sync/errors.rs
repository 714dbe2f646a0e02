//! Why a certificate's check or the engine's set-up failed: [`SyncError`] and [`SetupError`],
//! with their stable codes (`sync.*`, or the code of the wrapped vault, certificate or store
//! error, passed through).

use crate::vault::VaultError;

use super::connect::ConnectError;

/// Errors of one certificate's check.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Vault(Box<VaultError>),
    #[error("{url}: {source}; the installed version (if any) stays")]
    Decode {
        url: String,
        #[source]
        source: akvvm_cert::CertError,
    },
    #[error("{url}: {source}; this version is not installed, the installed version (if any) stays")]
    Chain {
        url: String,
        #[source]
        source: akvvm_cert::certificate::chain::ChainError,
    },
    #[error("{url}: the secret is disabled in Key Vault; the installed version (if any) stays")]
    Disabled { url: String },
    #[error(transparent)]
    Store(#[from] akvvm_cert::store::StoreError),
    #[error("the decode or install task of {url} failed: {detail}")]
    Task { url: String, detail: String },
    #[error("{url}: the check was interrupted by shutdown")]
    Cancelled { url: String },
}

impl From<VaultError> for SyncError {
    fn from(error: VaultError) -> Self {
        SyncError::Vault(Box::new(error))
    }
}

/// A version Key Vault returned marked as disabled is the condition of [`VaultError::Disabled`]
/// (Key Vault's 403 `SecretDisabled`), so [`SyncError::Disabled`] reports that error's code.
const SECRET_DISABLED: VaultError = VaultError::Disabled {
    vault: String::new(),
    secret: String::new(),
    message: None,
};

akvvm_cert::error_codes! {
    SyncError {
        SyncError::Task { .. } => "sync.task",
        SyncError::Cancelled { .. } => "sync.cancelled",
    }
    passes through {
        SyncError::Vault(e) => e,
        SyncError::Decode { source, .. } => source,
        SyncError::Chain { source, .. } => source,
        SyncError::Disabled { .. } => SECRET_DISABLED,
        SyncError::Store(e) => e,
    }
}

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Connect(#[from] Box<ConnectError>),
    #[error(transparent)]
    Store(#[from] akvvm_cert::store::StoreError),
    #[error(transparent)]
    StateDir(#[from] super::state_dir::StateDirError),
}

akvvm_cert::error_codes! {
    SetupError {}
    passes through {
        SetupError::Connect(e) => e,
        SetupError::Store(e) => e,
        SetupError::StateDir(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_errors_have_stable_codes() {
        let url = "https://v.vault.azure.net/secrets/c".to_string();
        let decode =
            akvvm_cert::certificate::decode_secret(Some("text/plain"), "not a certificate")
                .unwrap_err();
        let cases = [
            (
                SyncError::Decode {
                    url: url.clone(),
                    source: decode,
                },
                "cert.not_a_certificate",
            ),
            (
                SyncError::Disabled { url: url.clone() },
                "vault.secret_disabled",
            ),
            (
                SyncError::Task {
                    url: url.clone(),
                    detail: "panicked".into(),
                },
                "sync.task",
            ),
            (SyncError::Cancelled { url: url.clone() }, "sync.cancelled"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
            assert!(error.to_string().contains(&url), "{error}");
        }
        // A disabled secret has one code, the vault's.
        assert_eq!(SyncError::CODES, &["sync.task", "sync.cancelled"]);
    }
}
