//! An OAuth 2.0 authorization server and OpenID Connect provider, in
//! process: the application becomes the identity provider of its own
//! single-page app, mobile app and sibling services through the standard
//! protocol.
//!
//! What is supported is what OAuth 2.0 Security Best Current Practice
//! (RFC 9700) leaves: the authorization-code grant with PKCE `S256` for
//! every client, refresh tokens (the library's rotation and reuse
//! detection), client credentials for confidential clients. Redirect URIs
//! are matched exactly; authorization responses carry `iss` (RFC 9207);
//! errors go to a redirect URI only after the client and the URI were
//! validated. Codes are single-use through the shared
//! [`ChallengeStore`](security_core::ChallengeStore) (any replica redeems
//! them, exactly once), live a minute, and a code presented twice revokes
//! the session it gave. ID tokens are signed with the tenant's token-signing
//! key (the same JWKS); access tokens are the library's JWTs with `scope`
//! and `client_id`. RP-initiated logout ends the session an ID token names.
//! Every step is an audit event ([`OAuthAuditEvent`]).

mod audit;
mod authorize;
mod claims;
mod clients;
mod code;
mod csrf;
mod discovery;
mod error;
mod grant;
mod introspect;
mod logout;
mod provider;
mod token;

pub use audit::{OAUTH_AUDIT, OAuthAuditEvent, oauth_audit_stream_id};
pub use authorize::{AuthorizationRequest, MAX_STATE_BYTES, Prompt, ValidatedAuthorization};
pub use claims::{
    ACR_MULTI_FACTOR, ACR_SINGLE_FACTOR, ID_TOKEN_TYP, IdTokenClaims, OAuthAccessClaims,
    authentication_methods,
};
pub use clients::{ClientAuthentication, NewClient, RegisteredClient};
pub use error::{OAuthError, OAuthErrorCode};
pub use grant::{OAUTH_GRANT, OAuthGrant, OAuthGrantCommand, OAuthGrantEvent};
pub use introspect::Introspection;
pub use logout::LogoutRequest;
pub use provider::{DEFAULT_CODE_TTL, OidcConfig, OidcProvider};
pub use token::{TokenRequest, TokenResponse};
