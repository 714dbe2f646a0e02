//! [`Redacted`]: what `Debug` output shows in place of a secret value, a password or a key.

/// Stands in for a secret value or key in `Debug` output: its length only.
pub struct Redacted(pub usize);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes redacted>", self.0)
    }
}
