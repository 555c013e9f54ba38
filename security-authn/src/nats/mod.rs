//! NATS decentralized auth: the operator, account and user JWTs (NATS v2,
//! `ed25519-nkey`) and `.creds` files that a stock `nats-server` in
//! operator mode trusts, issued from the Operator, Account, User and Policy
//! aggregates and signed by keys that never leave the
//! [`KeyStore`](security_core::KeyStore).
//!
//! - [`NatsIssuer`] turns aggregates into signed JWTs: the operator JWT
//!   (self-signed, with its signing keys and system account), account JWTs
//!   (limits with -1 for "no limit", default permissions, signing keys,
//!   scoped ones included, revocations) and user JWTs (the union of the
//!   user's policies and its account's defaults, encoded so that the
//!   server denies what the domain denies).
//! - [`NatsAdmin`] does the same from the event store, and runs the life
//!   cycle: key rotation and revocation, user revocation, account
//!   suspension, policy changes, each recorded as an event before the JWTs
//!   it makes stale are reissued.
//! - [`NatsTrust`] verifies JWTs as the server does: the chain user →
//!   account (or its signing key) → operator (or its signing key),
//!   signatures, expiry, `nbf`, revocations, scoped keys; with typed
//!   [`NatsJwtError`]s.
//! - [`UserCreds`] reads and writes `.creds` files; [`NatsServerConfig`]
//!   renders the server's configuration (operator, system account, MEMORY
//!   resolver with the account JWTs preloaded).
//!
//! The pitfalls of the format are handled here: an absent limit is 0 in
//! the server (so -1 is always written), absent permissions allow
//! everything (so an empty allow list is written as `deny: [">"]`), a user
//! signed by a scoped key must carry no permissions or limits at all, and
//! the system account's JWT must be preloaded.

mod admin;
mod claims;
mod creds;
mod error;
mod issue;
mod jwt;
mod server;
mod verify;

pub use admin::{NatsAdmin, Reissued, ReissuedUser};
pub use claims::{
    ALL_SUBJECTS, ALL_USERS, AccountJwtClaims, AccountNats, ClaimType, JWT_VERSION, NO_LIMIT,
    NatsAccountLimits, NatsClaimKind, NatsClaims, NatsExport, NatsImport, NatsPermission,
    NatsPermissions, NatsResponsePermission, NatsSigningKey, NatsTimeRange,
    NatsUserPermissionLimits, NatsUserScope, OperatorClaims, OperatorNats, USER_SCOPE_KIND,
    UserClaims, UserNats,
};
pub use creds::UserCreds;
pub use error::{NatsError, NatsJwtError};
pub use issue::{
    AccountSigner, DEFAULT_USER_JWT_LIFETIME, EffectiveUserPermissions, IssuedUserJwt, NatsIssuer,
    UserJwtOptions, UserSigner, effective_user_permissions, user_jwt_cutoff, user_nkey,
    user_revocations,
};
pub use jwt::{DecodedJwt, NATS_JWT_HEADER, NATS_MAX_JWT_LEN, decode_jwt, nats_jti};
pub use server::{NatsServerConfig, OperatorSource};
pub use verify::{
    NatsTrust, VerifiedUser, decode_account_jwt, decode_operator_jwt, decode_user_jwt,
    verify_user_chain,
};
