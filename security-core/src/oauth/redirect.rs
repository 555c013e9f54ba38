//! Redirect URIs, registered and compared as exact strings.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// The longest redirect URI, in bytes.
pub const MAX_REDIRECT_URI_BYTES: usize = 2048;

/// A registered redirect URI: absolute, `https`, or `http` only on a
/// loopback host (`127.0.0.1`, `[::1]`, `localhost`, RFC 8252), without a
/// fragment or user information, at most [`MAX_REDIRECT_URI_BYTES`].
///
/// Requests are matched against it byte for byte (RFC 9700 §2.1): no
/// prefix, pattern or normalised comparison.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Validates a redirect URI.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        const FIELD: &str = "redirect_uri";
        if text.len() > MAX_REDIRECT_URI_BYTES {
            return Err(crate::limits::LimitExceeded::new(
                FIELD,
                crate::limits::Limit::Bytes(MAX_REDIRECT_URI_BYTES),
            )
            .into());
        }
        if text.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(DomainError::invalid(
                FIELD,
                "must not hold spaces or control characters",
            ));
        }
        let url = url::Url::parse(text)
            .map_err(|_| DomainError::invalid(FIELD, "must be an absolute URI"))?;
        if url.fragment().is_some() || text.contains('#') {
            return Err(DomainError::invalid(FIELD, "must not have a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DomainError::invalid(
                FIELD,
                "must not carry user information",
            ));
        }
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => return Err(DomainError::invalid(FIELD, "must name a host")),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(DomainError::invalid(
                    FIELD,
                    "http is allowed only for a loopback host",
                ));
            }
            _ => return Err(DomainError::invalid(FIELD, "must be https")),
        }
        Ok(Self(text.to_owned()))
    }

    /// The URI, exactly as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this URI, byte for byte.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0 == candidate
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = DomainError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<RedirectUri> for String {
    fn from(uri: RedirectUri) -> Self {
        uri.0
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedirectUri({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_without_fragments() {
        for good in [
            "https://app.example.com/cb",
            "https://app.example.com/cb?x=1",
            "http://127.0.0.1:8080/cb",
            "http://[::1]/cb",
            "http://localhost:3000/callback",
        ] {
            assert!(RedirectUri::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://app.example.com/cb#",
            "/relative/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "https://user:pw@app.example.com/cb",
            "https://app.example.com/c b",
            "ftp://127.0.0.1/cb",
            "com.example.app:/cb",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://a.example/{}", "x".repeat(MAX_REDIRECT_URI_BYTES));
        assert!(matches!(
            RedirectUri::parse(&long),
            Err(DomainError::LimitExceeded(_))
        ));
    }

    #[test]
    fn matching_is_exact() {
        let uri = RedirectUri::parse("https://app.example.com/cb").unwrap();
        assert!(uri.matches("https://app.example.com/cb"));
        for near in [
            "https://app.example.com/cb/",
            "https://APP.example.com/cb",
            "https://app.example.com/cb?x=1",
            "https://app.example.com/cb/../cb",
            "https://app.example.com:443/cb",
            "https://app.example.com/cbx",
        ] {
            assert!(!uri.matches(near), "{near}");
        }
    }
}
