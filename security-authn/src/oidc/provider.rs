//! The [`OidcProvider`]: the OAuth 2.0 authorization server and OpenID
//! Connect provider of an [`AuthenticationService`].

use std::fmt;
use std::time::Duration;

use security_core::TenantId;

use crate::config::{ConfigError, JwtSigning};
use crate::error::AuthnError;
use crate::service::AuthenticationService;

/// How long an authorization code lives (RFC 9700 §4.2.1 asks for a short
/// life; one minute is what OpenID Connect deployments use).
pub const DEFAULT_CODE_TTL: Duration = Duration::from_secs(60);

/// How the provider is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The provider's public base URL (`https://id.example.com`). A
    /// tenant's issuer is `{issuer_base}/t/{tenant id}`, and its endpoints
    /// live under it.
    pub issuer_base: String,
    /// How long an authorization code lives ([`DEFAULT_CODE_TTL`]).
    pub code_ttl: Duration,
    /// How long an ID token is valid (the access tokens' lifetime by
    /// default).
    pub id_token_ttl: Option<Duration>,
}

impl OidcConfig {
    /// A configuration with the defaults, for the provider at `issuer_base`.
    pub fn new(issuer_base: impl Into<String>) -> Self {
        Self {
            issuer_base: issuer_base.into(),
            code_ttl: DEFAULT_CODE_TTL,
            id_token_ttl: None,
        }
    }
}

/// The OAuth 2.0 authorization server and OpenID Connect provider, in
/// process: clients ([`register_client`](Self::register_client)),
/// authorization requests
/// ([`validate_authorization`](Self::validate_authorization),
/// [`approve`](Self::approve)), the token endpoint
/// ([`token`](Self::token)), revocation and introspection. Users sign in
/// through the [`AuthenticationService`]'s own flows (MFA included); the
/// login's session is what an authorization is approved with. Cheap to
/// clone.
#[derive(Clone)]
pub struct OidcProvider {
    pub(crate) authn: AuthenticationService,
    pub(crate) config: OidcConfig,
}

impl fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// A provider over `authn`. ID tokens are signed with the tenant's
    /// EdDSA token-signing key (published in its JWKS), so an HS256
    /// configuration is refused: clients could not verify ID tokens signed
    /// with a secret they do not hold.
    pub fn new(authn: AuthenticationService, mut config: OidcConfig) -> Result<Self, AuthnError> {
        if matches!(authn.config().jwt.signing, JwtSigning::Hs256(_)) {
            return Err(ConfigError::new(
                "JWT_ALGORITHM",
                "the OpenID Connect provider needs EdDSA signing",
            )
            .into());
        }
        let base = config.issuer_base.trim_end_matches('/').to_owned();
        let valid = url::Url::parse(&base).is_ok_and(|u| {
            matches!(u.scheme(), "https" | "http")
                && u.query().is_none()
                && u.fragment().is_none()
                && u.host().is_some()
        });
        if !valid {
            return Err(ConfigError::new(
                "issuer_base",
                "must be an absolute http(s) URL without query or fragment",
            )
            .into());
        }
        config.issuer_base = base;
        Ok(Self { authn, config })
    }

    /// The authentication service underneath.
    pub fn authn(&self) -> &AuthenticationService {
        &self.authn
    }

    /// The configuration in force.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The tenant's issuer identifier (`iss` of its ID tokens, and of its
    /// authorization responses, RFC 9207).
    pub fn issuer(&self, tenant: TenantId) -> String {
        format!("{}/t/{tenant}", self.config.issuer_base)
    }

    pub(crate) fn id_token_ttl(&self) -> Duration {
        self.config
            .id_token_ttl
            .unwrap_or(self.authn.config().jwt.access_token_ttl)
    }
}
