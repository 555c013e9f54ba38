//! CSRF tokens of the sign-in page: a signed double-submit token bound to
//! the browser and to the authorization request.
//!
//! The page sets a random value in a cookie of the browser; the form
//! carries `kid.tag`, the HMAC-SHA256 (the tenant's `LookupHashing` key)
//! of that value and of the whole authorization request. A form posted
//! from another site lacks the cookie (or cannot read it to match), and a
//! token made for one request does not fit another, so neither a login
//! nor an approval can be forged across sites.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use security_core::{KeyId, KeyStoreError, TenantId};

use super::authorize::AuthorizationRequest;
use super::provider::OidcProvider;
use crate::error::AuthnError;

/// The longest browser value or token looked at, in bytes.
const MAX_CSRF_BYTES: usize = 256;

fn message(
    tenant: TenantId,
    browser: &SecretString,
    request: &AuthorizationRequest,
) -> Result<Vec<u8>, AuthnError> {
    let mut message = Vec::with_capacity(512);
    message.extend_from_slice(b"security-authn:oauth-csrf\0");
    message.extend_from_slice(tenant.as_uuid().as_bytes());
    message.extend_from_slice(browser.expose_secret().as_bytes());
    message.push(0);
    serde_json::to_writer(&mut message, request).map_err(AuthnError::crypto)?;
    Ok(message)
}

impl OidcProvider {
    /// A new random value for the browser's CSRF cookie.
    pub fn new_csrf_cookie(&self) -> Result<SecretString, AuthnError> {
        let random = security_crypto::random_bytes::<32>().map_err(AuthnError::crypto)?;
        Ok(SecretString::from(URL_SAFE_NO_PAD.encode(random.as_ref())))
    }

    /// The form's CSRF token for this browser value and request.
    pub async fn csrf_token(
        &self,
        tenant: TenantId,
        browser: &SecretString,
        request: &AuthorizationRequest,
    ) -> Result<String, AuthnError> {
        let message = message(tenant, browser, request)?;
        let (kid, tag) = self.authn.inner.keys.lookup_hash(tenant, &message).await?;
        Ok(format!("{kid}.{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// Whether `token` was made by [`csrf_token`](Self::csrf_token) for
    /// this browser value and this very request.
    pub async fn check_csrf(
        &self,
        tenant: TenantId,
        browser: Option<&SecretString>,
        token: Option<&str>,
        request: &AuthorizationRequest,
    ) -> Result<bool, AuthnError> {
        let (Some(browser), Some(token)) = (browser, token) else {
            return Ok(false);
        };
        if token.len() > MAX_CSRF_BYTES || browser.expose_secret().len() > MAX_CSRF_BYTES {
            return Ok(false);
        }
        let Some((kid, tag)) = token.split_once('.') else {
            return Ok(false);
        };
        let (Ok(kid), Ok(tag)) = (kid.parse::<KeyId>(), URL_SAFE_NO_PAD.decode(tag)) else {
            return Ok(false);
        };
        let message = message(tenant, browser, request)?;
        match self
            .authn
            .inner
            .keys
            .store()
            .verify(kid, &message, &tag)
            .await
        {
            Ok(matches) => Ok(matches),
            Err(
                KeyStoreError::NotFound(_)
                | KeyStoreError::Revoked(_)
                | KeyStoreError::Destroyed(_)
                | KeyStoreError::WrongPurpose(_),
            ) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
