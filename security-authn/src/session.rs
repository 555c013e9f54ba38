//! The Session aggregate: one login and its refresh-token family.
//!
//! A session starts with a sealed secret seed from which each generation's
//! refresh token is derived (see `refresh.rs`); each refresh moves it to
//! the next generation (the old token is dead from then on); presenting an
//! older generation's token again is reuse, the sign of a stolen token,
//! and revokes the whole family. Its state is the same size whatever its
//! age: a seed, a generation counter and a few instants, no list of past
//! tokens.
//!
//! A session lives at most until its absolute expiry, fixed when it starts;
//! each refresh gives the new token a fresh idle lifetime, never beyond it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use security_core::{
    Aggregate, AuthMethod, ClientInfo, CommandContext, CredentialType, PasskeyId, SealedSecret,
    SessionId, SnapshotCodec, UserId, impl_domain_event,
};

/// Why a session command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No such session.
    #[error("session not found")]
    NotFound,
    /// The session already exists.
    #[error("session already exists")]
    AlreadyExists,
    /// The session was revoked.
    #[error("session is revoked")]
    Revoked,
    /// The presented refresh token is not one of this session's.
    #[error("refresh token is not valid for this session")]
    UnknownToken,
    /// The presented refresh token is the current one, but it expired (or
    /// the session reached its absolute expiry).
    #[error("refresh token has expired")]
    Expired,
}

impl From<SessionError> for crate::AuthnError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Revoked => Self::SessionRevoked,
            _ => Self::InvalidRefreshToken,
        }
    }
}

/// Commands of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    /// Starts the session at generation 0.
    Start {
        /// The session's id.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
        /// How the user authenticated.
        method: AuthMethod,
        /// The kind of credential that opened it (replacing or revoking
        /// that credential ends the session).
        opened_by: Option<CredentialType>,
        /// The passkey that opened it, if one did (removing that passkey
        /// ends the session).
        passkey: Option<PasskeyId>,
        /// Where from.
        client: ClientInfo,
        /// The seed every generation's refresh token derives from, sealed.
        seed: SealedSecret,
        /// When the first refresh token expires.
        expires_at: DateTime<Utc>,
        /// When the session ends, whatever its refreshes.
        absolute_expires_at: DateTime<Utc>,
    },
    /// Presents the refresh token of a generation (whose tag the caller
    /// checked against the seed): the current generation rotates, an older
    /// one is reuse and revokes the family.
    Refresh {
        /// The generation of the token presented.
        presented_generation: u32,
        /// When the next token expires (capped at the absolute expiry).
        expires_at: DateTime<Utc>,
        /// Where from.
        client: ClientInfo,
    },
    /// Revokes the session (logout, admin, user revoke-all).
    Revoke {
        /// Why.
        reason: String,
    },
}

/// Events of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names, reason = "the domain names these events")]
pub enum SessionEvent {
    /// A login started a session.
    SessionStarted {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
        /// How the user authenticated.
        method: AuthMethod,
        /// The kind of credential that opened it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        opened_by: Option<CredentialType>,
        /// The passkey that opened it, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passkey: Option<PasskeyId>,
        /// Where from.
        client: ClientInfo,
        /// The refresh tokens' seed, sealed with the user's data key.
        seed: SealedSecret,
        /// When the first token expires.
        expires_at: DateTime<Utc>,
        /// When the session ends, whatever its refreshes.
        absolute_expires_at: DateTime<Utc>,
        /// When.
        started_at: DateTime<Utc>,
    },
    /// A refresh token was used and replaced by the next generation's.
    SessionRotated {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
        /// The new token's generation (the first token is generation 0).
        generation: u32,
        /// When the new token expires.
        expires_at: DateTime<Utc>,
        /// Where from.
        client: ClientInfo,
        /// When.
        rotated_at: DateTime<Utc>,
    },
    /// A rotated refresh token was presented again.
    RefreshTokenReuseDetected {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
        /// The generation of the token presented.
        presented_generation: u32,
        /// The current generation.
        current_generation: u32,
        /// Where from.
        client: ClientInfo,
        /// When.
        detected_at: DateTime<Utc>,
    },
    /// The session and its whole token family were revoked.
    SessionRevoked {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
        /// Why.
        reason: String,
        /// When.
        revoked_at: DateTime<Utc>,
    },
}

impl_domain_event!(
    SessionEvent,
    version = 2,
    types = [
        SessionStarted,
        SessionRotated,
        RefreshTokenReuseDetected,
        SessionRevoked
    ]
);

/// Whether a session still works.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionStatus {
    /// Its current refresh token works.
    #[default]
    Active,
    /// Nothing of it works any more.
    Revoked {
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// A session's state: the same size whatever the session's age.
///
/// Serialisable for snapshots (its seed stays sealed in them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its id (`None` before it starts).
    pub id: Option<SessionId>,
    /// Its user.
    pub user_id: Option<UserId>,
    /// How the user authenticated.
    pub method: Option<AuthMethod>,
    /// The kind of credential that opened it.
    pub opened_by: Option<CredentialType>,
    /// The passkey that opened it, if one did.
    #[serde(default)]
    pub passkey: Option<PasskeyId>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was last refreshed.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// Active or revoked.
    pub status: SessionStatus,
    /// The current token's generation.
    pub generation: u32,
    /// When the current token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the session ends, whatever its refreshes.
    pub absolute_expires_at: Option<DateTime<Utc>>,
    /// The refresh tokens' seed, sealed.
    pub seed: Option<SealedSecret>,
}

impl Session {
    /// Whether the session is active.
    pub fn is_active(&self) -> bool {
        self.id.is_some() && self.status == SessionStatus::Active
    }

    /// Whether the session is past its absolute expiry at `now`.
    pub fn is_over(&self, now: DateTime<Utc>) -> bool {
        self.absolute_expires_at.is_none_or(|end| now >= end)
    }
}

impl Aggregate for Session {
    const TYPE: &'static str = "session";
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;
    // A session's stream grows with every refresh: a process that has not
    // seen it yet starts from a snapshot, not from its first event.
    // Version 2: the passkey that opened the session is part of the state.
    const SNAPSHOT: Option<SnapshotCodec<Self>> = Some(SnapshotCodec::json(2));

    fn handle(
        &self,
        command: &SessionCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<SessionEvent>, SessionError> {
        let now = ctx.now;
        if let SessionCommand::Start {
            session_id,
            user_id,
            method,
            opened_by,
            passkey,
            client,
            seed,
            expires_at,
            absolute_expires_at,
        } = command
        {
            if self.id.is_some() {
                return Err(SessionError::AlreadyExists);
            }
            return Ok(vec![SessionEvent::SessionStarted {
                session_id: *session_id,
                user_id: *user_id,
                method: *method,
                opened_by: *opened_by,
                passkey: passkey.clone(),
                client: client.clone(),
                seed: seed.clone(),
                expires_at: (*expires_at).min(*absolute_expires_at),
                absolute_expires_at: *absolute_expires_at,
                started_at: now,
            }]);
        }
        let (Some(session_id), Some(user_id)) = (self.id, self.user_id) else {
            return Err(SessionError::NotFound);
        };
        match command {
            SessionCommand::Start { .. } => Err(SessionError::AlreadyExists),
            SessionCommand::Refresh {
                presented_generation,
                expires_at,
                client,
            } => {
                if self.status != SessionStatus::Active {
                    return Err(SessionError::Revoked);
                }
                if *presented_generation == self.generation {
                    if self.expires_at.is_none_or(|e| now >= e) || self.is_over(now) {
                        return Err(SessionError::Expired);
                    }
                    let end = self.absolute_expires_at.unwrap_or(now);
                    return Ok(vec![SessionEvent::SessionRotated {
                        session_id,
                        user_id,
                        generation: self.generation.saturating_add(1),
                        expires_at: (*expires_at).min(end),
                        client: client.clone(),
                        rotated_at: now,
                    }]);
                }
                if *presented_generation < self.generation {
                    return Ok(vec![
                        SessionEvent::RefreshTokenReuseDetected {
                            session_id,
                            user_id,
                            presented_generation: *presented_generation,
                            current_generation: self.generation,
                            client: client.clone(),
                            detected_at: now,
                        },
                        SessionEvent::SessionRevoked {
                            session_id,
                            user_id,
                            reason: "refresh token reuse".to_owned(),
                            revoked_at: now,
                        },
                    ]);
                }
                Err(SessionError::UnknownToken)
            }
            SessionCommand::Revoke { reason } => match self.status {
                SessionStatus::Revoked { .. } => Ok(Vec::new()),
                SessionStatus::Active => Ok(vec![SessionEvent::SessionRevoked {
                    session_id,
                    user_id,
                    reason: reason.clone(),
                    revoked_at: now,
                }]),
            },
        }
    }

    fn apply(&mut self, event: &SessionEvent) {
        match event {
            SessionEvent::SessionStarted {
                session_id,
                user_id,
                method,
                opened_by,
                passkey,
                seed,
                expires_at,
                absolute_expires_at,
                started_at,
                ..
            } => {
                self.id = Some(*session_id);
                self.user_id = Some(*user_id);
                self.method = Some(*method);
                self.opened_by = *opened_by;
                self.passkey.clone_from(passkey);
                self.started_at = Some(*started_at);
                self.seed = Some(seed.clone());
                self.expires_at = Some(*expires_at);
                self.absolute_expires_at = Some(*absolute_expires_at);
                self.generation = 0;
            }
            SessionEvent::SessionRotated {
                generation,
                expires_at,
                rotated_at,
                ..
            } => {
                self.generation = *generation;
                self.expires_at = Some(*expires_at);
                self.last_refreshed_at = Some(*rotated_at);
            }
            SessionEvent::RefreshTokenReuseDetected { .. } => {}
            SessionEvent::SessionRevoked {
                reason, revoked_at, ..
            } => {
                self.status = SessionStatus::Revoked {
                    reason: reason.clone(),
                    at: *revoked_at,
                };
            }
        }
    }
}
