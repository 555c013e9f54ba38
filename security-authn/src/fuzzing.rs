//! Narrow entry points into parsers that take outside input but are
//! private to the crate, for the fuzz targets (`fuzz/`). Not part of the
//! supported API: hidden from the docs, free to change.

use secrecy::SecretString;
use security_core::TenantId;
use uuid::Uuid;

use crate::service::{API_KEY_PREFIX, REFRESH_TOKEN_PREFIX, parse_opaque_token};

/// The tenant and family id a refresh token names, if it is well formed.
pub fn parse_refresh_token(text: &str) -> Option<(TenantId, Uuid)> {
    parse_opaque_token(REFRESH_TOKEN_PREFIX, &SecretString::from(text)).map(|t| (t.tenant, t.id))
}

/// The tenant and user id an API key names, if it is well formed.
pub fn parse_api_key(text: &str) -> Option<(TenantId, Uuid)> {
    parse_opaque_token(API_KEY_PREFIX, &SecretString::from(text)).map(|t| (t.tenant, t.id))
}
