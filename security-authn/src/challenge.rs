//! Short-lived, single-use login challenges (MFA, password change, public
//! key nonces), kept in memory.
//!
//! A challenge is handed to the client as an opaque 256-bit token with a
//! fixed prefix; only its SHA-256 is kept, so a memory dump of the map
//! gives nothing usable. Taking a challenge removes it: two concurrent
//! uses of one challenge cannot both succeed.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use security_core::{AuthMethod, TenantId, UserId};

use crate::error::AuthnError;

/// The most challenges kept at once (expired ones are swept first).
const MAX_CHALLENGES: usize = 100_000;

#[derive(Clone)]
pub(crate) enum ChallengeKind {
    /// The password was right; a second factor is needed.
    Mfa { then_change_password: bool },
    /// The credentials were right; the password must be changed first.
    PasswordChange { method: AuthMethod },
    /// Sign this nonce with the user's key (`user_id` is `None` for an
    /// unknown username, so the answer looks the same).
    PublicKey {
        nonce: Zeroizing<Vec<u8>>,
        username: Zeroizing<String>,
    },
}

#[derive(Clone)]
pub(crate) struct Challenge {
    pub(crate) tenant: TenantId,
    pub(crate) user_id: Option<UserId>,
    pub(crate) kind: ChallengeKind,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) failures: u32,
}

#[derive(Default)]
pub(crate) struct ChallengeStore {
    map: Mutex<HashMap<[u8; 32], Challenge>>,
}

impl std::fmt::Debug for ChallengeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChallengeStore")
            .field("pending", &self.lock().len())
            .finish()
    }
}

fn digest(token: &SecretString) -> [u8; 32] {
    security_crypto::sha256(token.expose_secret().as_bytes())
}

impl ChallengeStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Challenge>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a challenge and returns its token.
    pub(crate) fn issue(
        &self,
        prefix: &str,
        challenge: Challenge,
        now: DateTime<Utc>,
    ) -> Result<SecretString, AuthnError> {
        let token = security_crypto::generate_token(prefix).map_err(AuthnError::crypto)?;
        let mut map = self.lock();
        if map.len() >= MAX_CHALLENGES {
            map.retain(|_, c| c.expires_at > now);
            if map.len() >= MAX_CHALLENGES {
                return Err(AuthnError::Throttled {
                    retry_after: std::time::Duration::from_secs(60),
                });
            }
        }
        map.insert(digest(&token), challenge);
        Ok(token)
    }

    /// Removes and returns a live challenge.
    pub(crate) fn take(&self, token: &SecretString, now: DateTime<Utc>) -> Option<Challenge> {
        let challenge = self.lock().remove(&digest(token))?;
        (challenge.expires_at > now).then_some(challenge)
    }

    /// Puts a challenge back after a failed attempt (same token).
    pub(crate) fn put_back(&self, token: &SecretString, challenge: Challenge) {
        self.lock().insert(digest(token), challenge);
    }
}
