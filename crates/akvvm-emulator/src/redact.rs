//! [`Redacted`]: what `Debug` output shows in place of a secret value, a password or a key;
//! [`KeyBytes`]: key material kept in the model that `Debug` never shows.

/// Stands in for a secret value or key in `Debug` output: its length only.
pub struct Redacted(pub usize);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes redacted>", self.0)
    }
}

/// Key material (DER) kept in the model: serialized as its bytes, shown by `Debug` as
/// [`Redacted`].
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct KeyBytes(pub Vec<u8>);

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Redacted(self.0.len()).fmt(f)
    }
}
