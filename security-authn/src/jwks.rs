//! The tenant's public token-signing keys as a JWK Set, for verifiers
//! outside this process (`/.well-known/jwks.json`).

use security_core::{KeyPurpose, TenantId};
use security_crypto::JwkSet;

use crate::config::JwtSigning;
use crate::error::AuthnError;
use crate::service::AuthenticationService;
use crate::tenant_keys::tenant_owner;

impl AuthenticationService {
    /// The JWK Set of the tenant's token-signing keys that verifiers may
    /// still trust: the active key and rotated-out ones (tokens they
    /// signed may still be live); revoked and destroyed keys are left out.
    /// Empty with HS256 signing (a shared secret is never published) and
    /// for a tenant that has not issued a token yet. Reads the key store
    /// each time, so a rotation or revocation by another replica shows at
    /// once.
    pub async fn jwks(&self, tenant: TenantId) -> Result<JwkSet, AuthnError> {
        if matches!(self.inner.config.jwt.signing, JwtSigning::Hs256(_)) {
            return Ok(JwkSet::default());
        }
        let keys = self
            .inner
            .keys
            .store()
            .list_keys(tenant_owner(tenant))
            .await?;
        Ok(JwkSet::from_key_infos(
            keys.iter()
                .filter(|info| info.purpose == KeyPurpose::TokenSigning),
        ))
    }
}
