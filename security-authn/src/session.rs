//! The Session aggregate: one login and its refresh-token family.
//!
//! A session starts with a refresh token; each refresh rotates it (the old
//! token is dead from then on); presenting a rotated token again is reuse,
//! the sign of a stolen token, and revokes the whole family. Only keyed
//! hashes of refresh tokens are stored (useless without the tenant's
//! lookup-hashing key, and the tokens are 256 random bits).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use security_core::{
    Aggregate, AuthMethod, ClientInfo, CommandContext, KeyId, SessionId, UserId, impl_domain_event,
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
    /// The presented refresh token is the current one, but it expired.
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
    /// Starts the session with its first refresh token.
    Start {
        /// The session's id.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
        /// How the user authenticated.
        method: AuthMethod,
        /// Where from.
        client: ClientInfo,
        /// Keyed hash of the first refresh token.
        token_hash: String,
        /// The `LookupHashing` key that made the hashes.
        hash_key_id: KeyId,
        /// When the first refresh token expires.
        expires_at: DateTime<Utc>,
    },
    /// Presents a refresh token: rotates it if it is the current one,
    /// revokes the family if it is an old one.
    Refresh {
        /// Keyed hash of the presented token.
        presented_hash: String,
        /// Keyed hash of the token that replaces it.
        new_hash: String,
        /// When the new token expires.
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
        /// Where from.
        client: ClientInfo,
        /// Keyed hash of the first refresh token.
        token_hash: String,
        /// The key that made the hash.
        hash_key_id: KeyId,
        /// When the token expires.
        expires_at: DateTime<Utc>,
        /// When.
        started_at: DateTime<Utc>,
    },
    /// A refresh token was used and replaced.
    SessionRotated {
        /// The session.
        session_id: SessionId,
        /// Its user.
        user_id: UserId,
        /// The new token's generation (the first token is generation 0).
        generation: u32,
        /// Keyed hash of the new token.
        token_hash: String,
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
    version = 1,
    types = [
        SessionStarted,
        SessionRotated,
        RefreshTokenReuseDetected,
        SessionRevoked
    ]
);

/// Whether a session still works.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// A session's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// Its id (`None` before it starts).
    pub id: Option<SessionId>,
    /// Its user.
    pub user_id: Option<UserId>,
    /// How the user authenticated.
    pub method: Option<AuthMethod>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was last refreshed.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// Active or revoked.
    pub status: SessionStatus,
    /// The current token's generation.
    pub generation: u32,
    /// Keyed hash of the current token.
    pub current_hash: String,
    /// When the current token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Keyed hashes of every rotated token, oldest first (index = generation).
    pub previous_hashes: Vec<String>,
    /// The key that made the hashes.
    pub hash_key_id: Option<KeyId>,
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Session {
    /// Whether the session is active.
    pub fn is_active(&self) -> bool {
        self.id.is_some() && self.status == SessionStatus::Active
    }

    /// The generation of a rotated token with this hash, if it is one.
    /// Every entry is compared (constant time per entry).
    fn previous_generation(&self, hash: &str) -> Option<u32> {
        let mut found = None;
        for (i, previous) in self.previous_hashes.iter().enumerate() {
            if same(previous, hash) {
                found = u32::try_from(i).ok();
            }
        }
        found
    }

    /// Whether `hash` is the current token's or a rotated one's.
    pub fn knows(&self, hash: &str) -> bool {
        same(&self.current_hash, hash) || self.previous_generation(hash).is_some()
    }
}

impl Aggregate for Session {
    const TYPE: &'static str = "session";
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;

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
            client,
            token_hash,
            hash_key_id,
            expires_at,
        } = command
        {
            if self.id.is_some() {
                return Err(SessionError::AlreadyExists);
            }
            return Ok(vec![SessionEvent::SessionStarted {
                session_id: *session_id,
                user_id: *user_id,
                method: *method,
                client: client.clone(),
                token_hash: token_hash.clone(),
                hash_key_id: *hash_key_id,
                expires_at: *expires_at,
                started_at: now,
            }]);
        }
        let (Some(session_id), Some(user_id)) = (self.id, self.user_id) else {
            return Err(SessionError::NotFound);
        };
        match command {
            SessionCommand::Start { .. } => Err(SessionError::AlreadyExists),
            SessionCommand::Refresh {
                presented_hash,
                new_hash,
                expires_at,
                client,
            } => {
                if self.status != SessionStatus::Active {
                    return Err(SessionError::Revoked);
                }
                if same(&self.current_hash, presented_hash) {
                    if self.expires_at.is_none_or(|e| now >= e) {
                        return Err(SessionError::Expired);
                    }
                    return Ok(vec![SessionEvent::SessionRotated {
                        session_id,
                        user_id,
                        generation: self.generation.saturating_add(1),
                        token_hash: new_hash.clone(),
                        expires_at: *expires_at,
                        client: client.clone(),
                        rotated_at: now,
                    }]);
                }
                match self.previous_generation(presented_hash) {
                    Some(presented_generation) => Ok(vec![
                        SessionEvent::RefreshTokenReuseDetected {
                            session_id,
                            user_id,
                            presented_generation,
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
                    ]),
                    None => Err(SessionError::UnknownToken),
                }
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
                token_hash,
                hash_key_id,
                expires_at,
                started_at,
                ..
            } => {
                self.id = Some(*session_id);
                self.user_id = Some(*user_id);
                self.method = Some(*method);
                self.started_at = Some(*started_at);
                self.current_hash.clone_from(token_hash);
                self.hash_key_id = Some(*hash_key_id);
                self.expires_at = Some(*expires_at);
                self.generation = 0;
            }
            SessionEvent::SessionRotated {
                generation,
                token_hash,
                expires_at,
                rotated_at,
                ..
            } => {
                let old = std::mem::replace(&mut self.current_hash, token_hash.clone());
                self.previous_hashes.push(old);
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
