//! The claims of ID tokens (OpenID Connect Core §2) and of the provider's
//! access tokens, and how a login method maps to `amr` and `acr`.

use serde::{Deserialize, Serialize};

use security_core::{AccessClaims, AuthMethod};

/// The `typ` of ID tokens.
pub const ID_TOKEN_TYP: &str = "JWT";

/// The `acr` of a sign-in with one factor.
pub const ACR_SINGLE_FACTOR: &str = "urn:security:acr:1fa";
/// The `acr` of a sign-in with two factors (password and TOTP or backup
/// code).
pub const ACR_MULTI_FACTOR: &str = "urn:security:acr:2fa";

/// The claims of an ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// The tenant's issuer.
    pub iss: String,
    /// The user's id.
    pub sub: String,
    /// The client's id.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// When the user signed in (Unix seconds).
    pub auth_time: i64,
    /// The authorization request's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The authentication context class.
    pub acr: String,
    /// The authentication methods (RFC 8176).
    pub amr: Vec<String>,
    /// The client the token was issued to.
    pub azp: String,
    /// The session.
    pub sid: String,
}

/// The claims of an access token issued by the provider: the library's
/// access-token claims, plus the granted scopes and the client. Every
/// validator of the library's access tokens accepts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthAccessClaims {
    /// The library's claims.
    #[serde(flatten)]
    pub base: AccessClaims,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The client it was issued to.
    pub client_id: String,
}

/// The `amr` values (RFC 8176) and `acr` of a login method.
pub fn authentication_methods(method: AuthMethod) -> (Vec<String>, &'static str) {
    let (amr, acr): (&[&str], &str) = match method {
        AuthMethod::Password => (&["pwd"], ACR_SINGLE_FACTOR),
        AuthMethod::PasswordTotp | AuthMethod::PasswordBackupCode => {
            (&["pwd", "otp", "mfa"], ACR_MULTI_FACTOR)
        }
        // A passkey always verifies its user (PIN or biometric) on the
        // authenticator: two factors by itself.
        AuthMethod::Passkey => (&["pop", "user", "mfa"], ACR_MULTI_FACTOR),
        AuthMethod::PasswordPasskey => (&["pwd", "pop", "mfa"], ACR_MULTI_FACTOR),
        // A signature by a key the user holds (public key); any other way
        // in that this mapping does not name claims no more than one
        // factor either.
        _ => (&["pop"], ACR_SINGLE_FACTOR),
    };
    (amr.iter().map(|s| (*s).to_owned()).collect(), acr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passkey_logins_are_multi_factor() {
        for method in [AuthMethod::Passkey, AuthMethod::PasswordPasskey] {
            let (amr, acr) = authentication_methods(method);
            assert_eq!(acr, ACR_MULTI_FACTOR);
            assert!(amr.iter().any(|m| m == "mfa"), "{amr:?}");
        }
        assert_eq!(
            authentication_methods(AuthMethod::Password).1,
            ACR_SINGLE_FACTOR
        );
    }
}
