//! The [`OAuthGrant`] aggregate: what a redeemed authorization code gave a
//! client, in the stream `(tenant, "oauth_grant", session id)`.
//!
//! The session's id is derived from the code's digest
//! ([`session_for_code`](super::code::session_for_code)), so the stream is
//! also the code's redeemed marker: a second redemption of the code, on any
//! replica, finds it and revokes the session (RFC 6749 §4.1.2).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use security_core::oauth::{OAuthClientId, Scope};
use security_core::{Aggregate, CommandContext, DomainError, SessionId, UserId, impl_domain_event};

/// The aggregate type of grant streams.
pub const OAUTH_GRANT: &str = "oauth_grant";

/// Events of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names, reason = "the domain names these events")]
pub enum OAuthGrantEvent {
    /// A code was redeemed: the session belongs to the client.
    OAuthGrantStarted {
        /// The session (refresh-token family) of the grant.
        session_id: SessionId,
        /// The client it was issued to.
        client_id: OAuthClientId,
        /// The user.
        user_id: UserId,
        /// The scopes granted.
        scopes: BTreeSet<Scope>,
        /// When the user signed in.
        auth_time: DateTime<Utc>,
        /// The authentication methods (RFC 8176).
        amr: Vec<String>,
        /// The authentication context class.
        acr: String,
        /// When.
        started_at: DateTime<Utc>,
    },
    /// The code was presented again: the session was revoked.
    OAuthCodeReused {
        /// The session.
        session_id: SessionId,
        /// When.
        detected_at: DateTime<Utc>,
    },
}

impl_domain_event!(
    OAuthGrantEvent,
    version = 1,
    types = [OAuthGrantStarted, OAuthCodeReused]
);

/// Commands of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthGrantCommand {
    /// Records the redemption (refused if the code was redeemed before).
    Start {
        /// The session.
        session_id: SessionId,
        /// The client.
        client_id: OAuthClientId,
        /// The user.
        user_id: UserId,
        /// The scopes granted.
        scopes: BTreeSet<Scope>,
        /// When the user signed in.
        auth_time: DateTime<Utc>,
        /// The authentication methods.
        amr: Vec<String>,
        /// The authentication context class.
        acr: String,
    },
    /// Records that the code was presented again.
    RecordCodeReuse,
}

/// A grant's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthGrant {
    /// The session (`None` before the code was redeemed).
    pub session_id: Option<SessionId>,
    /// The client.
    pub client_id: Option<OAuthClientId>,
    /// The user.
    pub user_id: Option<UserId>,
    /// The scopes granted.
    pub scopes: BTreeSet<Scope>,
    /// When the user signed in.
    pub auth_time: Option<DateTime<Utc>>,
    /// The authentication methods.
    pub amr: Vec<String>,
    /// The authentication context class.
    pub acr: String,
    /// Whether the code was presented again.
    pub code_reused: bool,
}

impl Aggregate for OAuthGrant {
    const TYPE: &'static str = OAUTH_GRANT;
    type Command = OAuthGrantCommand;
    type Event = OAuthGrantEvent;
    type Error = DomainError;

    fn handle(
        &self,
        command: &OAuthGrantCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<OAuthGrantEvent>, DomainError> {
        match command {
            OAuthGrantCommand::Start {
                session_id,
                client_id,
                user_id,
                scopes,
                auth_time,
                amr,
                acr,
            } => {
                if self.session_id.is_some() {
                    return Err(DomainError::AlreadyExists {
                        kind: "oauth grant",
                    });
                }
                Ok(vec![OAuthGrantEvent::OAuthGrantStarted {
                    session_id: *session_id,
                    client_id: *client_id,
                    user_id: *user_id,
                    scopes: scopes.clone(),
                    auth_time: *auth_time,
                    amr: amr.clone(),
                    acr: acr.clone(),
                    started_at: ctx.now,
                }])
            }
            OAuthGrantCommand::RecordCodeReuse => {
                let session_id = self.session_id.ok_or(DomainError::NotFound {
                    kind: "oauth grant",
                })?;
                if self.code_reused {
                    return Ok(Vec::new());
                }
                Ok(vec![OAuthGrantEvent::OAuthCodeReused {
                    session_id,
                    detected_at: ctx.now,
                }])
            }
        }
    }

    fn apply(&mut self, event: &OAuthGrantEvent) {
        match event {
            OAuthGrantEvent::OAuthGrantStarted {
                session_id,
                client_id,
                user_id,
                scopes,
                auth_time,
                amr,
                acr,
                ..
            } => {
                self.session_id = Some(*session_id);
                self.client_id = Some(*client_id);
                self.user_id = Some(*user_id);
                self.scopes.clone_from(scopes);
                self.auth_time = Some(*auth_time);
                self.amr.clone_from(amr);
                self.acr.clone_from(acr);
            }
            OAuthGrantEvent::OAuthCodeReused { .. } => self.code_reused = true,
        }
    }
}
