//! [`IdentityError`]: why a token could not be obtained, and the one-scope rule of every
//! credential.

/// Why a token could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// IMDS answered with an error document (or an unexpected status).
    #[error(
        "the managed identity endpoint {endpoint} refused a token for {identity}: HTTP {status}{}",
        describe_oauth_error(error.as_deref(), description.as_deref())
    )]
    Imds {
        /// The token URL, without query.
        endpoint: String,
        /// Which identity was asked for.
        identity: String,
        /// The HTTP status.
        status: u16,
        /// The `error` field, when the answer had one.
        error: Option<String>,
        /// The `error_description` field, when the answer had one.
        description: Option<String>,
    },
    /// Entra ID answered the client-credentials request with an error.
    #[error(
        "Entra ID at {endpoint} refused a token for application {client_id}: HTTP {status}{}",
        describe_oauth_error(error.as_deref(), description.as_deref())
    )]
    Entra {
        /// The token URL.
        endpoint: String,
        /// The application (client) id.
        client_id: String,
        /// The HTTP status.
        status: u16,
        /// The `error` field, when the answer had one.
        error: Option<String>,
        /// The `error_description` field, when the answer had one.
        description: Option<String>,
    },
    /// The token endpoint could not be reached.
    #[error("could not reach the token endpoint: {0}")]
    Transport(#[from] crate::http::HttpError),
    /// The token endpoint answered 200 with something that is not a token.
    #[error("the token endpoint {endpoint} sent an answer that is not a token: {reason}")]
    InvalidTokenResponse {
        /// The token URL.
        endpoint: String,
        /// What was wrong (never the token itself).
        reason: String,
    },
    /// The caller asked for something this credential cannot give.
    #[error("unsupported token request: {0}")]
    UnsupportedScope(String),
    /// Azure Arc's identity endpoint named a key file akvvm will not read, or cannot.
    #[error(
        "the Azure Arc identity endpoint {endpoint} asked for the key file {path:?}, which {reason}"
    )]
    ArcKey {
        /// The token URL.
        endpoint: String,
        /// The file the challenge named.
        path: String,
        /// Why it was not used, and what to do.
        reason: String,
    },
    /// The bootstrap credential does not know its tenant yet.
    #[error(
        "the tenant of application {client_id} is not known yet: it is learned from Key Vault's \
         401 challenge, so request tokens through akvvm's vault client (or give the tenant \
         explicitly)"
    )]
    TenantUnknown {
        /// The application (client) id.
        client_id: String,
    },
    /// No usable bootstrap certificate was found.
    #[error(
        "no certificate with subject CN={subject} and a private key that is valid now was found \
         in {searched}{}; install the certificate (osProfile.secrets or the certificate store) or \
         correct clientCertificateSubjectName",
        if rejected.is_empty() { String::new() } else { format!(" (rejected: {})", rejected.join("; ")) }
    )]
    CertificateNotFound {
        /// The subject CN looked for.
        subject: String,
        /// The places searched.
        searched: String,
        /// Candidates with the right subject and why they were not used.
        rejected: Vec<String>,
    },
    /// The bootstrap certificate's key cannot sign a client assertion.
    #[error(
        "the certificate {path} has an {algorithm} key, but Entra ID client assertions need an \
         RSA key; issue the bootstrap certificate with an RSA key"
    )]
    NonRsaKey {
        /// The file holding the key.
        path: String,
        /// The key algorithm found.
        algorithm: String,
    },
    /// A certificate or key file could not be decoded.
    #[error("failed to decode {path}: {reason}")]
    InvalidCertificateFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Signing the client assertion failed.
    #[error("failed to sign the client assertion: {0}")]
    Signing(String),
}

akvvm_cert::error_codes! {
    IdentityError {
        IdentityError::Imds { .. } => "identity.imds_refused",
        IdentityError::Entra { .. } => "identity.entra_refused",
        IdentityError::InvalidTokenResponse { .. } => "identity.token_response_invalid",
        IdentityError::UnsupportedScope(_) => "identity.scope_unsupported",
        IdentityError::ArcKey { .. } => "identity.arc_key_refused",
        IdentityError::TenantUnknown { .. } => "identity.tenant_unknown",
        IdentityError::CertificateNotFound { .. } => "identity.bootstrap_certificate_not_found",
        IdentityError::NonRsaKey { .. } => "identity.bootstrap_certificate_not_rsa",
        IdentityError::InvalidCertificateFile { .. } => "identity.bootstrap_certificate_invalid",
        IdentityError::Signing(_) => "identity.assertion_signing_failed",
    }
    passes through {
        IdentityError::Transport(inner) => inner,
    }
}

impl IdentityError {
    /// Wraps the error for the SDK, keeping it reachable through `downcast_ref`.
    pub(crate) fn into_azure(self) -> azure_core::Error {
        let message = self.to_string();
        azure_core::Error::with_error(azure_core::error::ErrorKind::Credential, self, message)
    }
}

fn describe_oauth_error(error: Option<&str>, description: Option<&str>) -> String {
    match (error, description) {
        (Some(e), Some(d)) => format!(" {e}: {d}"),
        (Some(e), None) => format!(" {e}"),
        (None, Some(d)) => format!(": {d}"),
        (None, None) => String::new(),
    }
}

/// Turns the scopes the SDK asks for into the one scope a credential serves.
pub(crate) fn single_scope<'a>(scopes: &[&'a str]) -> Result<&'a str, IdentityError> {
    match scopes {
        [scope] if !scope.trim().is_empty() => Ok(scope),
        _ => Err(IdentityError::UnsupportedScope(format!(
            "exactly one scope is supported, got {scopes:?}"
        ))),
    }
}
