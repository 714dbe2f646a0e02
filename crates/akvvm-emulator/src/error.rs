//! [`AdminError`]: why an operation on the model (a vault, secret, certificate, identity, app or
//! role) was refused. The Rust admin API returns it; the HTTP admin API and the Key Vault data
//! plane turn it into their answers.

/// An error from an admin operation.
///
/// Its codes (`NotFound`, `Conflict`, `BadParameter`, see [`AdminError::code`]) are Key Vault
/// wire codes: the `error.code` of the admin API's JSON answers, spelled as Key Vault spells its
/// own. They are not akvvm agent error codes (`domain.reason`) and are not listed with them.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{what} {name:?} does not exist")]
    NotFound { what: &'static str, name: String },
    #[error("{what} {name:?} already exists")]
    Conflict { what: &'static str, name: String },
    #[error("{0}")]
    Invalid(String),
}

impl AdminError {
    /// The Key Vault wire code of the answer (not an agent error code).
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NotFound { .. } => "NotFound",
            AdminError::Conflict { .. } => "Conflict",
            AdminError::Invalid(_) => "BadParameter",
        }
    }
    pub fn status(&self) -> u16 {
        match self {
            AdminError::NotFound { .. } => 404,
            AdminError::Conflict { .. } => 409,
            AdminError::Invalid(_) => 400,
        }
    }
}

/// An [`AdminError::NotFound`]: the `what` (`"vault"`, `"certificate"`, ...) called `name`.
pub(crate) fn not_found(what: &'static str, name: impl Into<String>) -> AdminError {
    AdminError::NotFound {
        what,
        name: name.into(),
    }
}

/// An [`AdminError::Invalid`] with this message.
pub(crate) fn invalid(message: impl Into<String>) -> AdminError {
    AdminError::Invalid(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_errors_have_codes_and_statuses() {
        let cases = [
            (
                AdminError::NotFound {
                    what: "vault",
                    name: "v".into(),
                },
                "NotFound",
                404,
                "vault \"v\" does not exist",
            ),
            (
                AdminError::Conflict {
                    what: "app",
                    name: "a".into(),
                },
                "Conflict",
                409,
                "app \"a\" already exists",
            ),
            (
                AdminError::Invalid("bad".into()),
                "BadParameter",
                400,
                "bad",
            ),
        ];
        for (error, code, status, message) in cases {
            assert_eq!(
                (error.code(), error.status(), error.to_string().as_str()),
                (code, status, message)
            );
        }
    }
}
