//! Keeps a [`RevocationList`] in step with revocations written by any
//! process: run it with a [`ProjectionRunner`](security_core::ProjectionRunner)
//! over the global stream.

use std::sync::Arc;

use security_core::{Aggregate, Projection, ProjectionError, StoredEvent, User, UserEvent};

use crate::jwt::RevocationList;
use crate::session::{Session, SessionEvent};

/// Feeds a [`RevocationList`] from `SessionRevoked` (logout, reuse, admin)
/// and `SessionsRevoked` (revoke-all, lock, password or role change)
/// events, so that a validator refuses tokens revoked by another instance
/// or by the admin API.
#[derive(Debug, Clone)]
pub struct RevocationProjection {
    list: Arc<RevocationList>,
}

impl RevocationProjection {
    /// A projection feeding `list` (e.g. `service.validator().revocations()`).
    pub fn new(list: Arc<RevocationList>) -> Self {
        Self { list }
    }
}

impl Projection for RevocationProjection {
    fn name(&self) -> &'static str {
        "authn-revocations"
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        let aggregate = &*event.stream_id.aggregate_type;
        match (aggregate, &*event.event_type) {
            (Session::TYPE, "SessionRevoked") => {
                if let SessionEvent::SessionRevoked {
                    session_id,
                    revoked_at,
                    ..
                } = event.decode::<SessionEvent>()?
                {
                    self.list.revoke_session(session_id, revoked_at);
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
                        .revoke_user(user_id, revoked_at, event.occurred_at);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn reset(&mut self) {
        // Entries expire by themselves; a rebuild only adds them again.
    }
}
