//! Which tenant an opaque token names, before anything is looked up: lets
//! an HTTP layer refuse a token presented under another tenant's URL.

use secrecy::SecretString;
use security_core::TenantId;

use crate::service::{AuthenticationService, REFRESH_TOKEN_PREFIX, parse_opaque_token};

impl AuthenticationService {
    /// The tenant a refresh token claims to belong to, read from its
    /// layout without any check of its authenticity (`None`: not a refresh
    /// token). Use it only to refuse early; [`refresh`](Self::refresh) and
    /// [`logout`](Self::logout) still verify the token.
    pub fn refresh_token_tenant(&self, refresh_token: &SecretString) -> Option<TenantId> {
        parse_opaque_token(REFRESH_TOKEN_PREFIX, refresh_token).map(|t| t.tenant)
    }
}
