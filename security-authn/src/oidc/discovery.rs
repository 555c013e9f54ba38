//! The discovery document (OpenID Connect Discovery 1.0, RFC 8414).

use serde_json::{Value, json};

use security_core::TenantId;

use super::claims::{ACR_MULTI_FACTOR, ACR_SINGLE_FACTOR};
use super::provider::OidcProvider;

impl OidcProvider {
    /// The tenant's discovery document (`/.well-known/openid-configuration`
    /// under its issuer). It lists exactly what the provider supports; the
    /// endpoints are the issuer followed by `/oauth/authorize`,
    /// `/oauth/token`, `/oauth/userinfo`, `/oauth/revoke`,
    /// `/oauth/introspect`, `/oauth/logout` and `/.well-known/jwks.json`.
    pub fn discovery(&self, tenant: TenantId) -> Value {
        let issuer = self.issuer(tenant);
        let client_auth = ["client_secret_basic", "client_secret_post", "none"];
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oauth/authorize"),
            "token_endpoint": format!("{issuer}/oauth/token"),
            "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
            "revocation_endpoint": format!("{issuer}/oauth/revoke"),
            "introspection_endpoint": format!("{issuer}/oauth/introspect"),
            "end_session_endpoint": format!("{issuer}/oauth/logout"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "token_endpoint_auth_methods_supported": client_auth,
            "revocation_endpoint_auth_methods_supported": client_auth,
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile"],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
                "sid", "preferred_username"
            ],
            "acr_values_supported": [ACR_SINGLE_FACTOR, ACR_MULTI_FACTOR],
            "prompt_values_supported": ["none", "login"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "require_request_uri_registration": false,
            "authorization_response_iss_parameter_supported": true,
        })
    }
}
