//! Keeps a [`RevocationList`] (and a validator's revoked keys) in step
//! with the revocations written by any process. The
//! [`AuthenticationService`](crate::AuthenticationService) runs one by
//! itself, supervised (see [`background`](crate::background)); run one
//! with a [`ProjectionRunner`](security_core::ProjectionRunner) to feed a
//! validator of your own.

use std::sync::Arc;

use security_core::{
    Aggregate, Projection, ProjectionError, PublishError, PublishedEvent, Publisher, StoredEvent,
    User, UserEvent,
};

use crate::jwt::{JwtValidator, RevocationList};
use crate::revocation::{ACCESS_TOKEN_REVOCATION, TokenRevocationEvent};
use crate::session::{Session, SessionEvent};
use crate::tenant_keys::{KeyringEvent, TENANT_KEYRING};

/// Feeds a [`RevocationList`] from `SessionRevoked` (logout, reuse, admin),
/// `SessionsRevoked` (revoke-all, admin lock, expiry, password or role
/// change) and `AccessTokenRevoked` (one token) events, and, with a
/// validator, refuses the token-signing keys a tenant's keyring retired as
/// revoked. Every entry is keyed by the event's tenant.
#[derive(Debug, Clone)]
pub struct RevocationProjection {
    list: Arc<RevocationList>,
    validator: Option<Arc<JwtValidator>>,
}

impl RevocationProjection {
    /// A projection feeding `list` (e.g. `service.validator().revocations()`).
    pub fn new(list: Arc<RevocationList>) -> Self {
        Self {
            list,
            validator: None,
        }
    }

    /// A projection feeding a validator: its revocation list and its
    /// revoked keys.
    pub fn for_validator(validator: Arc<JwtValidator>) -> Self {
        Self {
            list: Arc::clone(validator.revocations()),
            validator: Some(validator),
        }
    }

    /// Applies one event, if it revokes anything.
    pub fn revoke_from(&self, event: &StoredEvent) -> Result<(), ProjectionError> {
        let tenant = event.stream_id.tenant_id;
        let aggregate = &*event.stream_id.aggregate_type;
        match (aggregate, &*event.event_type) {
            (Session::TYPE, "SessionRevoked") => {
                if let SessionEvent::SessionRevoked {
                    session_id,
                    revoked_at,
                    ..
                } = event.decode::<SessionEvent>()?
                {
                    self.list.revoke_session(tenant, session_id, revoked_at);
                }
            }
            (User::TYPE, "SessionsRevoked") => {
                if let UserEvent::SessionsRevoked {
                    user_id,
                    revoked_at,
                    ..
                } = event.decode::<UserEvent>()?
                {
                    self.list
                        .revoke_user(tenant, user_id, revoked_at, event.occurred_at);
                }
            }
            (ACCESS_TOKEN_REVOCATION, "AccessTokenRevoked") => {
                let TokenRevocationEvent::AccessTokenRevoked {
                    jti, expires_at, ..
                } = event.decode::<TokenRevocationEvent>()?;
                self.list
                    .revoke_jti(tenant, &jti, expires_at, event.occurred_at);
            }
            (TENANT_KEYRING, "TenantKeyRetired") => {
                if let (
                    Some(validator),
                    KeyringEvent::TenantKeyRetired {
                        key_id,
                        revoked: true,
                        ..
                    },
                ) = (&self.validator, event.decode::<KeyringEvent>()?)
                {
                    validator.revoke_kid(&key_id.to_string());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Projection for RevocationProjection {
    fn name(&self) -> &'static str {
        "authn-revocations"
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        self.revoke_from(event)
    }

    fn reset(&mut self) {
        // Entries expire by themselves; a rebuild only adds them again.
    }
}

/// Applies the revocations a process writes through its repository as soon
/// as they are stored (before the command returns), then hands the events
/// on to the repository's own publisher, if any. Other processes learn of
/// them from the store, through their [`RevocationProjection`].
#[derive(Debug)]
pub(crate) struct RevocationTap {
    pub(crate) projection: RevocationProjection,
    pub(crate) next: Option<Arc<dyn Publisher>>,
}

#[security_core::async_trait]
impl Publisher for RevocationTap {
    async fn publish(&self, events: &[PublishedEvent]) -> Result<(), PublishError> {
        for event in events {
            if let Err(error) = self.projection.revoke_from(event.event()) {
                tracing::warn!(%error, "a revocation could not be applied in this process");
            }
        }
        match &self.next {
            Some(next) => next.publish(events).await,
            None => Ok(()),
        }
    }
}
