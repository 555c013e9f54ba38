//! OAuth scopes (RFC 6749 §3.3).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// The longest scope token, and the longest space-separated scope list a
/// request may carry, in bytes.
pub const MAX_SCOPE_BYTES: usize = 1024;

/// The longest single scope token, in bytes.
const MAX_TOKEN_BYTES: usize = 128;

/// One scope token: 1 to 128 printable ASCII characters other than space,
/// `"` and `\` (RFC 6749's `NQCHAR`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    /// Validates one scope token.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let valid = !text.is_empty()
            && text.len() <= MAX_TOKEN_BYTES
            && text
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(DomainError::invalid(
                "scope",
                "must be 1 to 128 printable ASCII characters without space, '\"' or '\\'",
            ))
        }
    }

    /// The `openid` scope of OpenID Connect.
    pub fn openid() -> Self {
        Self("openid".to_owned())
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses a space-separated scope list (at most [`MAX_SCOPE_BYTES`]).
pub fn parse_scopes(text: &str) -> Result<BTreeSet<Scope>, DomainError> {
    if text.len() > MAX_SCOPE_BYTES {
        return Err(crate::limits::LimitExceeded::new(
            "scope",
            crate::limits::Limit::Bytes(MAX_SCOPE_BYTES),
        )
        .into());
    }
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(Scope::parse)
        .collect()
}

impl TryFrom<String> for Scope {
    type Error = DomainError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> Self {
        scope.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse() {
        let set = parse_scopes("openid  profile orders:read").unwrap();
        assert_eq!(set.len(), 3);
        assert!(set.contains(&Scope::openid()));
        assert!(parse_scopes("a\"b").is_err());
        assert!(parse_scopes("a\\b").is_err());
        assert!(parse_scopes("caf\u{e9}").is_err());
        assert!(parse_scopes(&"a ".repeat(MAX_SCOPE_BYTES)).is_err());
        assert!(parse_scopes("").unwrap().is_empty());
    }
}
