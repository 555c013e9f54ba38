//! OAuth 2.0 and OpenID Connect clients of a tenant.
//!
//! An [`OAuthClient`] is an aggregate of its own per client, in the stream
//! `(tenant, "oauth_client", client_id)`: the applications (single-page
//! apps, mobile apps, sibling services) that may ask the tenant's users to
//! sign in through the embedded provider. Only what OAuth 2.0 Security
//! Best Current Practice (RFC 9700) allows is representable: the
//! authorization-code, refresh-token and client-credentials grants
//! ([`GrantType`]), redirect URIs matched exactly ([`RedirectUri`]).

mod client;
mod redirect;
mod scope;

pub use client::{
    ClientKind, ClientSecretHash, GrantType, MAX_CLIENT_SCOPES, MAX_REDIRECT_URIS, OAuthClient,
    OAuthClientCommand, OAuthClientEvent, OAuthClientId, OAuthClientSettings,
};
pub use redirect::{MAX_REDIRECT_URI_BYTES, RedirectUri};
pub use scope::{MAX_SCOPE_BYTES, Scope, parse_scopes};
