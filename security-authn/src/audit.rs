//! The per-tenant authentication audit stream: attempts that have no user
//! stream to go to (unknown usernames, throttled or refused before a user
//! was looked at, malformed tokens), and the steps of a login between the
//! password and the session (MFA challenged, password change required).
//!
//! Attempts against a known user are recorded in that user's own stream
//! (`AuthenticationFailed`, `MfaFailed`, `UserAuthenticated`, …).
//!
//! The stream is `(tenant, "auth_audit", <tenant audit id>)`. It has no
//! invariant to protect, so events are appended without a version check
//! (no read, no contention under attack). A username that matches no user
//! (it may be a password typed in the wrong field) is sealed with the
//! tenant's audit data key, so it never reaches a publisher and can be
//! crypto-shredded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::sync::Arc;

use security_core::{
    Aggregate, AppendRequest, AuthMethod, ClientInfo, CommandContext, DomainEvent, ExpectedVersion,
    FailureReason, KeyOwner, Repository, SealedSecret, StoredEvent, StreamId, StreamQuery,
    TenantId, Until, UserId, impl_domain_event,
};

use crate::error::AuthnError;

/// The id of a tenant's auth-audit stream (and of the data subject whose
/// key seals the usernames in it).
pub fn audit_stream_id(tenant: TenantId) -> Uuid {
    Uuid::new_v5(&tenant.as_uuid(), b"security-authn:auth-audit")
}

/// The key owner that seals the unknown usernames of a tenant's audit stream.
pub fn audit_key_owner(tenant: TenantId) -> KeyOwner {
    KeyOwner::new(tenant, audit_stream_id(tenant))
}

/// What was throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleScope {
    /// The client's IP address.
    Ip,
    /// The username or user, across addresses.
    User,
}

/// Events of the auth-audit stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names, reason = "past-tense event names")]
pub enum AuthAuditEvent {
    /// An attempt failed before or without a user stream: unknown
    /// username, inactive account, throttled, malformed token.
    AuthenticationAttemptFailed {
        /// The user, when one was identified.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<UserId>,
        /// The username as given, sealed, when it matched no user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<SealedSecret>,
        /// How the client tried.
        method: AuthMethod,
        /// Why it failed.
        reason: FailureReason,
        /// What was throttled, for a throttled attempt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        throttled: Option<ThrottleScope>,
        /// Seconds the client was told to wait.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
        /// Where from.
        client: ClientInfo,
        /// When.
        failed_at: DateTime<Utc>,
    },
    /// The password was right and a second factor was asked for.
    MfaChallenged {
        /// The user.
        user_id: UserId,
        /// Where from.
        client: ClientInfo,
        /// When the challenge expires.
        expires_at: DateTime<Utc>,
        /// When.
        challenged_at: DateTime<Utc>,
    },
    /// The credentials were right but the password must be changed first
    /// (temporary or expired password).
    PasswordChangeRequired {
        /// The user.
        user_id: UserId,
        /// Where from.
        client: ClientInfo,
        /// When.
        required_at: DateTime<Utc>,
    },
}

impl_domain_event!(
    AuthAuditEvent,
    version = 1,
    types = [
        AuthenticationAttemptFailed,
        MfaChallenged,
        PasswordChangeRequired
    ]
);

/// Records one audit event (for [`Repository`](security_core::Repository) users; the service appends
/// directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAuthAudit(pub AuthAuditEvent);

/// Counts over a tenant's auth-audit stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthAudit {
    /// Failed attempts recorded here.
    pub failed_attempts: u64,
    /// Of which throttled.
    pub throttled: u64,
    /// Of which for an unknown username.
    pub unknown_users: u64,
    /// MFA challenges issued.
    pub mfa_challenges: u64,
    /// Logins that required a password change.
    pub password_changes_required: u64,
}

impl Aggregate for AuthAudit {
    const TYPE: &'static str = "auth_audit";
    type Command = RecordAuthAudit;
    type Event = AuthAuditEvent;
    type Error = std::convert::Infallible;

    fn handle(
        &self,
        command: &RecordAuthAudit,
        _ctx: &CommandContext,
    ) -> Result<Vec<AuthAuditEvent>, Self::Error> {
        Ok(vec![command.0.clone()])
    }

    fn apply(&mut self, event: &AuthAuditEvent) {
        match event {
            AuthAuditEvent::AuthenticationAttemptFailed {
                user_id, throttled, ..
            } => {
                self.failed_attempts += 1;
                if throttled.is_some() {
                    self.throttled += 1;
                }
                if user_id.is_none() && throttled.is_none() {
                    self.unknown_users += 1;
                }
            }
            AuthAuditEvent::MfaChallenged { .. } => self.mfa_challenges += 1,
            AuthAuditEvent::PasswordChangeRequired { .. } => self.password_changes_required += 1,
        }
    }
}

/// Appends to auth-audit streams without a version check, and publishes
/// what it appended through the repository's publisher.
///
/// The one write of this crate that does not go through
/// [`Repository::execute`]: the audit stream is a log, not an aggregate
/// with a rule to protect, and under attack every replica records failed
/// attempts of a tenant into it at once; a versioned append would make
/// them contend for nothing.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    repo: Repository,
}

impl AuditLog {
    pub(crate) fn new(repo: Repository) -> Self {
        Self { repo }
    }

    pub(crate) async fn record(
        &self,
        ctx: &CommandContext,
        event: &AuthAuditEvent,
    ) -> Result<(), AuthnError> {
        let stream_id = StreamId::new(
            ctx.tenant_id,
            AuthAudit::TYPE,
            audit_stream_id(ctx.tenant_id),
        );
        self.append(ctx, stream_id, event).await
    }

    /// Appends one event to a log stream without a version check, and
    /// publishes it.
    pub(crate) async fn append<E: DomainEvent>(
        &self,
        ctx: &CommandContext,
        stream_id: StreamId,
        event: &E,
    ) -> Result<(), AuthnError> {
        let events =
            security_core::new_events(std::slice::from_ref(event), ctx, &**self.repo.ids())?;
        let request = AppendRequest {
            stream_id: stream_id.clone(),
            expected: ExpectedVersion::Any,
            events,
            idempotency_key: ctx.idempotency_key.clone(),
        };
        let result = self.repo.store().append(request).await?;
        if let Some(publisher) = self.repo.publisher() {
            let query = StreamQuery {
                from_version: result.first_version,
                until: Until::Version(result.last_version),
                limit: usize::MAX,
            };
            let stored = self.repo.store().read_stream(&stream_id, query).await?;
            let published: Vec<_> = stored.iter().map(StoredEvent::to_published).collect();
            if let Err(error) = Arc::clone(publisher).publish(&published).await {
                // Stored is what counts; publishing again is safe (dedupe on id).
                tracing::warn!(%error, "audit events stored but not published");
            }
        }
        Ok(())
    }
}
