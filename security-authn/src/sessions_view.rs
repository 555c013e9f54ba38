//! A read model of every user's live sessions ("your devices"), fed from
//! the global stream so that it answers the same on every replica.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;

use security_core::{
    Aggregate, AuthMethod, ClientInfo, PasskeyId, Projection, ProjectionError, SessionId,
    StoredEvent, TenantId, User, UserEvent, UserId,
};

use crate::session::{Session, SessionEvent};

/// One live session of a user, as the user may see it: how and where from
/// it started, when it was last refreshed, when its refresh token expires.
/// It holds no token and no hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionSummary {
    /// The session (the `session_id` claim of its access tokens).
    pub session_id: SessionId,
    /// How the user authenticated.
    pub method: AuthMethod,
    /// The client of the last login or refresh.
    pub client: ClientInfo,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When its refresh token was last rotated.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// When its current refresh token expires.
    pub expires_at: DateTime<Utc>,
    /// The passkey that opened it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passkey: Option<PasskeyId>,
}

type UserSessions = BTreeMap<SessionId, SessionSummary>;

struct Inner {
    users: RwLock<HashMap<(TenantId, UserId), UserSessions>>,
    position: tokio::sync::watch::Sender<u64>,
}

/// Every user's live sessions: started, not revoked (one by one or by a
/// revoke-all), not expired. Fed by its [`SessionsProjection`] (run it
/// with a [`ProjectionRunner`](security_core::ProjectionRunner) over the
/// global stream, from position 0: it lives in memory). Cheap to clone;
/// clones share the model.
#[derive(Clone)]
pub struct SessionsView {
    inner: Arc<Inner>,
}

impl Default for SessionsView {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                users: RwLock::new(HashMap::new()),
                position: tokio::sync::watch::Sender::new(0),
            }),
        }
    }
}

impl fmt::Debug for SessionsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionsView")
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl SessionsView {
    /// An empty view.
    pub fn new() -> Self {
        Self::default()
    }

    /// The projection that feeds this view.
    pub fn projection(&self) -> SessionsProjection {
        SessionsProjection {
            view: self.clone(),
            position: 0,
            applied_since_sweep: 0,
        }
    }

    /// The user's live sessions at `now`, the most recently started first.
    pub fn sessions(
        &self,
        tenant: TenantId,
        user: UserId,
        now: DateTime<Utc>,
    ) -> Vec<SessionSummary> {
        let users = self
            .inner
            .users
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut live: Vec<SessionSummary> = users
            .get(&(tenant, user))
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|s| s.expires_at > now)
            .cloned()
            .collect();
        live.sort_by_key(|s| std::cmp::Reverse(s.started_at));
        live
    }

    /// Whether `session` is one of the user's live sessions at `now`.
    pub fn owns(
        &self,
        tenant: TenantId,
        user: UserId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> bool {
        self.inner
            .users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(tenant, user))
            .and_then(|sessions| sessions.get(&session))
            .is_some_and(|s| s.expires_at > now)
    }

    /// The global position of the last event the view reflects.
    pub fn position(&self) -> u64 {
        *self.inner.position.borrow()
    }

    /// Waits until the view reflects every event up to `position` (e.g.
    /// the store's head, to read one's own writes).
    pub async fn wait_for_position(&self, position: u64) {
        let mut rx = self.inner.position.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|p| *p >= position).await;
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<(TenantId, UserId), UserSessions>> {
        self.inner
            .users
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every this many events, sessions whose refresh token expired (by the
/// events' own time, so a rebuild gives the same model) are dropped.
const SWEEP_EVERY: u32 = 1024;

/// Feeds a [`SessionsView`] from session events (`SessionStarted`,
/// `SessionRotated`, `SessionRevoked`) and the user's `SessionsRevoked`
/// (revoke-all: lock, password or role change).
pub struct SessionsProjection {
    view: SessionsView,
    position: u64,
    applied_since_sweep: u32,
}

impl fmt::Debug for SessionsProjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionsProjection")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Projection for SessionsProjection {
    fn name(&self) -> &'static str {
        "authn-sessions"
    }

    fn apply(&mut self, event: &StoredEvent) -> Result<(), ProjectionError> {
        self.position = self.position.max(event.global_position);
        let tenant = event.stream_id.tenant_id;
        let aggregate = &*event.stream_id.aggregate_type;
        if aggregate == Session::TYPE {
            let mut users = self.view.write();
            match event.decode::<SessionEvent>()? {
                SessionEvent::SessionStarted {
                    session_id,
                    user_id,
                    method,
                    client,
                    expires_at,
                    started_at,
                    passkey,
                    ..
                } => {
                    users.entry((tenant, user_id)).or_default().insert(
                        session_id,
                        SessionSummary {
                            session_id,
                            method,
                            client,
                            started_at,
                            last_refreshed_at: None,
                            expires_at,
                            passkey,
                        },
                    );
                }
                SessionEvent::SessionRotated {
                    session_id,
                    user_id,
                    expires_at,
                    client,
                    rotated_at,
                    ..
                } => {
                    if let Some(session) = users
                        .get_mut(&(tenant, user_id))
                        .and_then(|s| s.get_mut(&session_id))
                    {
                        session.last_refreshed_at = Some(rotated_at);
                        session.expires_at = expires_at;
                        session.client = client;
                    }
                }
                SessionEvent::SessionRevoked {
                    session_id,
                    user_id,
                    ..
                } => {
                    remove_where(&mut users, (tenant, user_id), |s| {
                        s.session_id == session_id
                    });
                }
                SessionEvent::RefreshTokenReuseDetected { .. } => {}
            }
        } else if aggregate == User::TYPE && &*event.event_type == "SessionsRevoked" {
            if let UserEvent::SessionsRevoked {
                user_id,
                revoked_at,
                passkey,
                ..
            } = event.decode::<UserEvent>()?
            {
                // One passkey's revocation ends only the sessions it opened.
                let mut users = self.view.write();
                remove_where(&mut users, (tenant, user_id), |s| {
                    s.started_at <= revoked_at
                        && passkey
                            .as_ref()
                            .is_none_or(|id| s.passkey.as_ref() == Some(id))
                });
            }
        } else {
            return Ok(());
        }
        self.applied_since_sweep += 1;
        if self.applied_since_sweep >= SWEEP_EVERY {
            self.applied_since_sweep = 0;
            let now = event.occurred_at;
            let mut users = self.view.write();
            users.retain(|_, sessions| {
                sessions.retain(|_, s| s.expires_at > now);
                !sessions.is_empty()
            });
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.view.write().clear();
        self.position = 0;
        self.applied_since_sweep = 0;
    }

    fn flush(&mut self) {
        self.view.inner.position.send_if_modified(|p| {
            let moved = *p != self.position;
            *p = self.position;
            moved
        });
    }
}

fn remove_where(
    users: &mut HashMap<(TenantId, UserId), UserSessions>,
    key: (TenantId, UserId),
    doomed: impl Fn(&SessionSummary) -> bool,
) {
    if let Some(sessions) = users.get_mut(&key) {
        sessions.retain(|_, s| !doomed(s));
        if sessions.is_empty() {
            users.remove(&key);
        }
    }
}
