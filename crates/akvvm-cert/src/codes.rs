//! Stable error codes: one scheme (`domain.reason`, lowercase, `_` inside a reason) for every
//! error type of akvvm, written once per type with [`error_codes!`](crate::error_codes).
//!
//! A code is a public contract: it goes into the status file, the logs and metric labels, where
//! users build alerts on it. The macro generates both `code()` (an exhaustive match, so a new
//! variant cannot be forgotten) and `CODES` (every code the type itself owns) from one table, and
//! a wrapper variant passes its inner error's code through instead of hiding it. Every code is
//! listed, with what it means and what to do, in `docs/errors.md`; a test checks that list
//! against every type's `CODES`.

/// Implements `code()` and `CODES` for an error enum from one table.
///
/// ```
/// #[derive(Debug)]
/// enum Inner { Broken }
/// akvvm_cert::error_codes! { Inner { Inner::Broken => "inner.broken" } }
///
/// #[derive(Debug)]
/// enum Outer { Gone { name: String }, Wrapped(Inner) }
/// akvvm_cert::error_codes! {
///     Outer {
///         Outer::Gone { .. } => "outer.gone",
///     }
///     passes through {
///         Outer::Wrapped(inner) => inner,
///     }
/// }
///
/// assert_eq!(Outer::Wrapped(Inner::Broken).code(), "inner.broken");
/// assert_eq!(Outer::CODES, &["outer.gone"]);
/// ```
#[macro_export]
macro_rules! error_codes {
    (
        $ty:ident { $($pat:pat => $code:literal),* $(,)? }
        $(passes through { $($inner_pat:pat => $inner:ident),* $(,)? })?
    ) => {
        impl $ty {
            /// Every code this type owns (wrapped errors keep their own type's codes).
            pub const CODES: &'static [&'static str] = &[$($code),*];

            /// The stable machine code of this error (status file, logs, metric labels);
            /// listed in `docs/errors.md`.
            pub fn code(&self) -> &'static str {
                match self {
                    $($pat => $code,)*
                    $($($inner_pat => $inner.code(),)*)?
                }
            }
        }
    };
}

/// Whether `code` follows the scheme: `domain.reason`, a lowercase domain and a reason of
/// lowercase letters, digits and `_`.
pub fn is_well_formed(code: &str) -> bool {
    let Some((domain, reason)) = code.split_once('.') else {
        return false;
    };
    !domain.is_empty()
        && domain.bytes().all(|b| b.is_ascii_lowercase())
        && reason.starts_with(|c: char| c.is_ascii_lowercase())
        && reason
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::is_well_formed;

    #[test]
    fn the_scheme_is_domain_dot_reason() {
        for good in [
            "cert.pfx_corrupt",
            "vault.forbidden",
            "hook.timeout",
            "cert.p12_2",
        ] {
            assert!(is_well_formed(good), "{good}");
        }
        for bad in [
            "pfx_corrupt",
            "sync.",
            ".x",
            "settings-invalid",
            "Vault.forbidden",
            "vault.Forbidden",
            "vault.secret-disabled",
            "a.b.c",
            "vault._x",
        ] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }
}
