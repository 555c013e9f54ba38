//! The provider's audit trail: every step of a flow is an event in the
//! tenant's OAuth audit stream, `(tenant, "oauth_audit", <id>)`, appended
//! without a version check (a log with no rule to protect). Client
//! changes are events of the client's own stream, sessions of the session's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use security_core::oauth::{GrantType, OAuthClientId};
use security_core::{Actor, SessionId, StreamId, TenantId, UserId, impl_domain_event};

use super::provider::OidcProvider;
use crate::error::AuthnError;

/// The aggregate type of OAuth audit streams.
pub const OAUTH_AUDIT: &str = "oauth_audit";

/// The id of a tenant's OAuth audit stream.
pub fn oauth_audit_stream_id(tenant: TenantId) -> Uuid {
    Uuid::new_v5(&tenant.as_uuid(), b"security-authn:oauth-audit")
}

/// Events of the OAuth audit stream. None carries a secret: codes and
/// tokens are named by the session they belong to or their `jti`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names, reason = "past-tense event names")]
pub enum OAuthAuditEvent {
    /// An authorization request was refused (the error code says why).
    AuthorizationRefused {
        /// The client, when the request named a registered one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<OAuthClientId>,
        /// The error code answered.
        error: String,
        /// Whether the answer went to the client's redirect URI.
        redirected: bool,
        /// When.
        refused_at: DateTime<Utc>,
    },
    /// A signed-in user's authorization gave the client a code.
    AuthorizationCodeIssued {
        /// The client.
        client_id: OAuthClientId,
        /// The user.
        user_id: UserId,
        /// The login session that approved it.
        login_session_id: SessionId,
        /// The scopes granted.
        scopes: Vec<String>,
        /// When the code expires.
        expires_at: DateTime<Utc>,
        /// When.
        issued_at: DateTime<Utc>,
    },
    /// A code was exchanged for tokens of a new session.
    AuthorizationCodeRedeemed {
        /// The client.
        client_id: OAuthClientId,
        /// The user.
        user_id: UserId,
        /// The session the tokens belong to.
        session_id: SessionId,
        /// The access token's id.
        jti: String,
        /// When.
        redeemed_at: DateTime<Utc>,
    },
    /// A code exchange was refused (unknown or expired code, wrong
    /// client, redirect URI or PKCE verifier).
    AuthorizationCodeRefused {
        /// The client that presented it.
        client_id: OAuthClientId,
        /// Why.
        reason: String,
        /// When.
        refused_at: DateTime<Utc>,
    },
    /// A code was presented again after it was redeemed: the session it
    /// gave was revoked (RFC 6749 §4.1.2).
    AuthorizationCodeReused {
        /// The client that presented it.
        client_id: OAuthClientId,
        /// The session revoked.
        session_id: SessionId,
        /// When.
        detected_at: DateTime<Utc>,
    },
    /// Tokens were issued at the token endpoint by a refresh or client
    /// credentials (a code's tokens are in its redemption event).
    TokensIssued {
        /// The client.
        client_id: OAuthClientId,
        /// The grant.
        grant: GrantType,
        /// The session, for user grants.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<SessionId>,
        /// The access token's id.
        jti: String,
        /// When.
        issued_at: DateTime<Utc>,
    },
    /// A token request was refused.
    TokenRequestRefused {
        /// The client.
        client_id: OAuthClientId,
        /// The error code answered.
        error: String,
        /// When.
        refused_at: DateTime<Utc>,
    },
    /// A client failed to authenticate.
    ClientAuthenticationFailed {
        /// The client named, when the id was well formed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<OAuthClientId>,
        /// When.
        failed_at: DateTime<Utc>,
    },
    /// A client revoked a token (RFC 7009).
    TokenRevoked {
        /// The client.
        client_id: OAuthClientId,
        /// `access_token` or `refresh_token`.
        token_type: String,
        /// When.
        revoked_at: DateTime<Utc>,
    },
    /// A client's session was ended by RP-initiated logout.
    LoggedOut {
        /// The client.
        client_id: OAuthClientId,
        /// The session ended.
        session_id: SessionId,
        /// When.
        logged_out_at: DateTime<Utc>,
    },
    /// A client introspected a token (RFC 7662).
    TokenIntrospected {
        /// The client.
        client_id: OAuthClientId,
        /// Whether the token was active.
        active: bool,
        /// When.
        introspected_at: DateTime<Utc>,
    },
}

impl_domain_event!(
    OAuthAuditEvent,
    version = 1,
    types = [
        AuthorizationRefused,
        AuthorizationCodeIssued,
        AuthorizationCodeRedeemed,
        AuthorizationCodeRefused,
        AuthorizationCodeReused,
        TokensIssued,
        TokenRequestRefused,
        ClientAuthenticationFailed,
        TokenRevoked,
        LoggedOut,
        TokenIntrospected
    ]
);

impl OidcProvider {
    /// Records one audit event in the tenant's OAuth audit stream.
    pub(crate) async fn record(
        &self,
        tenant: TenantId,
        actor: Option<Actor>,
        event: &OAuthAuditEvent,
    ) -> Result<(), AuthnError> {
        let ctx = self.authn.context(tenant, actor);
        let stream_id = StreamId::new(tenant, OAUTH_AUDIT, oauth_audit_stream_id(tenant));
        self.authn.inner.audit.append(&ctx, stream_id, event).await
    }
}
