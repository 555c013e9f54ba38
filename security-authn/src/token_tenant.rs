//! Which tenant an opaque token names, before anything is looked up: lets
//! an HTTP layer refuse a token presented under another tenant's URL.

use secrecy::SecretString;
use security_core::TenantId;

use crate::refresh::RefreshToken;
use crate::service::AuthenticationService;

impl AuthenticationService {
    /// The tenant a refresh token claims to belong to, read from its
    /// layout without any check of its authenticity (`None`: not a refresh
    /// token). Use it only to refuse early; [`refresh`](Self::refresh) and
    /// [`logout`](Self::logout) still verify the token.
    pub fn refresh_token_tenant(&self, refresh_token: &SecretString) -> Option<TenantId> {
        RefreshToken::parse(refresh_token).map(|t| t.tenant)
    }
}
