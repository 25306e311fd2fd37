//! `SecretBytes`: secret material that never prints and is wiped from memory on drop.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// Bytes of a secret value. `Debug` and `Display` print a placeholder; the buffer is zeroized
/// when dropped. Clone is deliberately not implemented: a value has one owner.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes` without copying them.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Takes ownership of a string's buffer without copying it.
    pub fn from_string(value: String) -> Self {
        Self::new(value.into_bytes())
    }

    /// The secret bytes, for writing them into the mount response only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Moves the bytes out (for the gRPC response, whose buffer tonic owns from then on).
    pub fn into_inner(mut self) -> Vec<u8> {
        std::mem::take(&mut *self.0)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret string (an AWS secret key, session token or a service-account token) with the same
/// guarantees as [`SecretBytes`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = SecretBytes::from_string("hunter2".to_string());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), b"hunter2");
        let t = SecretString::new("tok-123".into());
        assert!(!format!("{t:?} {t}").contains("tok-123"));
        assert_eq!(t.expose(), "tok-123");
    }

    #[test]
    fn into_inner_moves_bytes() {
        let s = SecretBytes::new(vec![1, 2, 3]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.into_inner(), vec![1, 2, 3]);
    }
}
