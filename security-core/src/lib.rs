//! The pure, event-sourced security domain.
//!
//! This crate holds the aggregates (Operator, Account = tenant, User,
//! Policy, Role), their commands and events, and the traits the domain needs
//! from the outside world: [`EventStore`], [`Publisher`], [`KeyStore`],
//! [`Clock`], [`IdGenerator`], [`PasswordHasher`]. It does no I/O, reads no
//! clock and draws no randomness: time, ids and secrets come in through
//! commands and the [`CommandContext`].
//!
//! On top of the aggregates sit a [`Repository`] (load by replay, handle,
//! append with optimistic concurrency, retry on conflict, idempotency,
//! publish), the [`AdminService`] (cross-aggregate rules), and a
//! [`ProjectionRunner`] for read models.
//!
//! Secrets never appear in clear: they arrive as [`SealedSecret`]s, and
//! [`StoredEvent::to_published`] strips them before anything is published.
//!
//! ```
//! use security_core::*;
//! use chrono::{TimeZone, Utc};
//! use uuid::Uuid;
//!
//! // A pure aggregate: handle a command, apply the events.
//! let tenant = TenantId::from_uuid(Uuid::from_u128(1));
//! let ctx = CommandContext::new(tenant, Utc.timestamp_opt(1_700_000_000, 0).unwrap());
//! let permissions = Permissions {
//!     publish: SubjectPermissions::from_patterns(["orders.>"], ["orders.delete"]).unwrap(),
//!     ..Permissions::default()
//! };
//! let mut policy = Policy::default();
//! let events = policy
//!     .handle(
//!         &PolicyCommand::CreatePolicy {
//!             policy_id: PolicyId::from_uuid(Uuid::from_u128(2)),
//!             name: "orders".into(),
//!             description: "order service".into(),
//!             permissions,
//!             limits: ResourceLimits::default(),
//!         },
//!         &ctx,
//!     )
//!     .unwrap();
//! for event in &events {
//!     policy.apply(event);
//! }
//! assert_eq!(policy.version, 1);
//! ```

mod account;
mod admin;
mod aggregate;
mod attempts;
pub mod audit;
mod cache;
pub mod chain;
mod challenge;
mod claims;
mod error;
mod event;
mod ids;
mod keys;
pub mod limits;
pub mod oauth;
pub mod observe;
mod operator;
mod passkey;
mod permissions;
mod policy;
mod ports;
mod projection;
mod rate_limit;
mod repository;
mod retry;
mod role;
mod sealed;
mod snapshot;
mod store;
pub mod subject;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
#[cfg(feature = "tokio")]
mod timer;
mod user;
mod user_claim;
mod username;

pub use account::{
    Account, AccountClaims, AccountCommand, AccountEvent, AccountSigningKey, AccountStatus,
    UserScope,
};
pub use admin::{AdminError, AdminResult, AdminService, NewPolicy, NewUser, Request};
pub use aggregate::{Aggregate, CommandContext};
pub use attempts::{
    AttemptLedger, AttemptLedgerError, AttemptOutcome, AttemptPolicy, LeaseId, Reservation,
};
pub use cache::{DEFAULT_CACHE_CAPACITY, StateCache};
pub use challenge::{
    ChallengeDigest, ChallengePurpose, ChallengeQuota, ChallengeStore, ChallengeStoreError,
    PendingChallenge, QuotaScope,
};
pub use claims::{AccessClaims, Audience, TokenError, TokenValidator};
pub use error::DomainError;
pub use event::{
    Actor, DomainEvent, EventDecodeError, EventEncodeError, EventMetadata, IdempotencyKey,
    InvalidIdempotencyKey, MAX_IDEMPOTENCY_KEY_LEN, NewEvent, PublishedEvent, RawEvent,
    StoredEvent, StreamId, Upcaster, decode_variant, encode_variant, upcast,
};
pub use ids::{
    AccountId, EventId, KeyId, OperatorId, ParseIdError, PolicyId, RoleId, SessionId, TenantId,
    UserId,
};
pub use keys::{
    KeyAlgorithm, KeyInfo, KeyOwner, KeyPurpose, KeySpec, KeyStatus, KeyStore, KeyStoreError,
    PublicKey,
};
pub use operator::{NewSigningKey, Operator, OperatorCommand, OperatorEvent, SigningKey};
pub use passkey::{
    MAX_PASSKEY_CREDENTIAL_BYTES, MAX_PASSKEY_CREDENTIAL_DEPTH, MAX_PASSKEY_ID_BYTES,
    MAX_PASSKEY_NAME_CHARS, MAX_PASSKEY_TRANSPORT_BYTES, MAX_PASSKEY_TRANSPORTS,
    MAX_PASSKEYS_PER_USER, PasskeyId, PasskeyRefusal, RegisteredPasskey, check_passkey_name,
};
pub use permissions::{
    AccountLimits, DataRate, Export, ExportKind, Import, Permissions, ResourceLimits,
    ResponsePermission, SubjectPattern, SubjectPermissions,
};
pub use policy::{Policy, PolicyCommand, PolicyEvent};
pub use ports::{
    Clock, IdGenerator, ManualClock, PasswordHashError, PasswordHasher, PublishError, Publisher,
    SequentialIds,
};
pub use projection::{
    CheckpointStore, DEFAULT_BATCH_SIZE, DeadLetter, HealthHandle, InMemoryCheckpoints,
    MAX_DEAD_LETTER_REASON, Projection, ProjectionError, ProjectionHealth, ProjectionRunner,
    ProjectionStatus,
};
pub use rate_limit::{InvalidRateLimit, RateDecision, RateLimit, RateLimitError, RateLimiter};
pub use repository::{
    CommandError, CommandOutcome, DEFAULT_MAX_RETRIES, Loaded, Repository, new_events, replay,
};
pub use retry::{Backoff, DEFAULT_ATTEMPTS, RetryPolicy, Timer};
pub use role::{
    BUILTIN_ROLES, InvalidPermission, InvalidRoleName, Permission, Role, RoleCommand, RoleEvent,
    RoleName,
};
pub use sealed::{SEALED_TAG, SealedSecret, contains_sealed, strip_sealed};
pub use snapshot::{Snapshot, SnapshotCodec, SnapshotPolicy};
pub use store::{
    AppendRequest, AppendResult, EventStore, EventStream, ExpectedVersion, GlobalQuery, Scope,
    StoreError, StreamQuery, Until,
};
pub use subject::SubjectError;
#[cfg(feature = "tokio")]
pub use timer::TokioTimer;
pub use user::{
    AuthMethod, ClientInfo, Credential, CredentialType, DEFAULT_ESCALATION_RESET_SECS,
    FAILURE_LOCK_REASON, FailureReason, LockoutPolicy, MAX_USER_AGENT_LEN, MfaProof, MfaState,
    PASSWORD_HISTORY_KEPT, User, UserCommand, UserEvent, UserStatus,
};
pub use user_claim::{UserIdClaim, UserIdClaimCommand, UserIdClaimEvent};
pub use username::{MAX_USERNAME_CHARS, fold_username, validate_username};

/// Re-exported so that implementors of the async traits use the same version.
pub use async_trait::async_trait;
