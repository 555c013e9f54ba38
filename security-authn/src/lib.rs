//! Authentication for the security crate family: passwords, MFA (TOTP,
//! backup codes, passkeys), passwordless passkey login (WebAuthn, module
//! `passkeys`, feature `passkeys`), access and refresh tokens, sessions, throttling and
//! lockout; and NATS decentralized auth (operator, account and user JWTs,
//! `.creds` files).
//!
//! # Authentication
//!
//! [`AuthenticationService`] is what an application calls. Every step is an
//! event: attempts, failures (with their reason), MFA challenged, verified
//! and failed, backup codes used, locks, sessions started, rotated and
//! revoked, refresh-token reuse. Attempts against a known user go to the
//! user's stream; the others (unknown usernames, throttled attempts) go to
//! the tenant's auth-audit stream ([`AuthAudit`]).
//!
//! - **Login**: [`authenticate`](AuthenticationService::authenticate) with a
//!   username and password gives a [`LoginOutcome`]: tokens, an MFA
//!   challenge ([`verify_mfa`](AuthenticationService::verify_mfa) with a TOTP
//!   or backup code, or `verify_mfa_passkey`
//!   with a passkey), or a password-change ticket for a temporary or
//!   expired password. Passkeys (alone, with a discoverable credential),
//!   API keys and public keys (nkey nonce signing) log in too.
//! - **Tokens**: access tokens are JWTs (`typ` `at+jwt`), EdDSA with the
//!   tenant's signing key from the [`KeyStore`](security_core::KeyStore)
//!   (the private key never leaves it), or HS256 with `JWT_SECRET_KEY`.
//!   [`JwtValidator`] validates them in-process and is the
//!   [`TokenValidator`](security_core::TokenValidator) that `security-authz`
//!   takes. Refresh tokens are opaque: each generation's token is an
//!   HMAC under the session's random seed, which is stored sealed; they
//!   rotate on every use, reusing any rotated one revokes its whole
//!   [`Session`], and a session ends at its absolute lifetime
//!   (`SESSION_MAX_LIFETIME_DAYS`) or when the credential that opened it
//!   is replaced or revoked.
//! - **Throttling and lockout**: a [`RateLimiter`] (sliding window) per IP
//!   (IPv6 per /64) and per username; consecutive failures lock the user for
//!   a growing time that decays; each verification holds a lease of the
//!   user's budget in the [`AttemptLedger`](security_core::AttemptLedger),
//!   so the lockout is exact under concurrency.
//! - **Several replicas**: every piece of state a guarantee depends on is a
//!   port with an in-memory default and shared implementations in
//!   `security-eventstore` (PostgreSQL, Redis): the rate limiter, the
//!   [`ChallengeStore`](security_core::ChallengeStore) and the attempt
//!   ledger, given to the builder. Revocations come from the store: the
//!   service runs its own supervised [`RevocationProjection`]
//!   ([`AuthenticationService::revocation_health`]); tenant keys are chosen
//!   through the event store's optimistic concurrency
//!   ([`TenantKeyring`]); the validator fetches keys other replicas made.
//! - **Configuration**: [`AuthnConfig::from_env`] reads the variables of
//!   [`ENV_VARS`]; defaults are those of the source documents.
//!
//! # Threat model, in short
//!
//! Guessing is throttled (5 logins per minute per IP and per username, 3 MFA
//! codes per minute) and locks the user (without ending its sessions:
//! anyone can cause such a lock); simultaneous guesses on any replicas cost
//! at most the lockout limit in verifications; an unknown username costs
//! the same hashing work, gets the same error and "locks" the same way in
//! the shared ledger, so neither timing nor answers tell usernames apart; a
//! locked user is refused whatever the password, and a lock that lands
//! while a right password is checked answers like a wrong one. Inputs are
//! checked before any hashing. A public-key login signs a message bound to
//! its purpose, service and tenant, so no signature made for another
//! protocol (a NATS `CONNECT`) opens a session. A TOTP step works once; a backup code works once;
//! a challenge is single-use. A stolen refresh token that is used after its
//! owner refreshed (or the other way round) kills the session; no session
//! outlives its absolute lifetime or the API key or login key that opened
//! it. Secrets
//! (password hashes, TOTP secrets, backup-code hashes, unknown usernames)
//! are sealed with a per-subject data key in stored events and never
//! published; `Debug` of every secret-bearing type is redacted. Tokens
//! whose `alg`, `kid`, `typ`, `crit`, size, times, issuer or audience are
//! not exactly as configured are refused (see [`JwtValidator`]).
//!
//! ```
//! use std::sync::Arc;
//! use secrecy::SecretString;
//! use security_authn::{AuthenticationService, LoginOutcome, NewPasswordUser};
//! use security_core::{
//!     AccountClaims, ClientInfo, Clock, ManualClock, Repository, Request, SequentialIds,
//! };
//! use security_crypto::{Argon2Config, Argon2PasswordHasher, MemoryKeyStore};
//! use security_eventstore::MemoryEventStore;
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
//! let repo = Repository::new(Arc::new(MemoryEventStore::new()), Arc::new(SequentialIds::new()));
//! let keys = Arc::new(MemoryKeyStore::new());
//! # let cost = Argon2Config { memory_kib: 1024, iterations: 1, ..Argon2Config::OWASP };
//! let hasher = Arc::new(Argon2PasswordHasher::new(cost)?);
//! let authn = AuthenticationService::builder(repo, keys, hasher, clock).build()?;
//!
//! // An operator, a tenant and a user (through the admin API).
//! let admin = authn.admin();
//! let operator = admin.create_operator(&Request::default(), "ops").await?;
//! let account = admin.create_account(&Request::default(), operator, "acme", AccountClaims::default()).await?;
//! let password = SecretString::from("Correct-Horse-Battery-9");
//! let user = authn
//!     .create_user_with_password(&Request::default(), account, NewPasswordUser::new("alice", password.clone()))
//!     .await?;
//!
//! // Log in and use the access token.
//! let client = ClientInfo::new(Some("203.0.113.7".parse()?), Some("demo"));
//! let LoginOutcome::Authenticated(tokens) = authn.authenticate(account.tenant(), "alice", &password, &client).await? else {
//!     unreachable!("no MFA, no password change")
//! };
//! use secrecy::ExposeSecret;
//! let claims = authn.validate_access_token(tokens.access_token.expose_secret()).await?;
//! assert_eq!(claims.user_id, user);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// ---- authentication -------------------------------------------
mod audit;
mod background;
mod backup;
mod challenge;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod identity;
mod jwks;
mod jwt;
mod lockout;
mod login;
mod manage;
mod new_user;
pub mod observe;
pub mod oidc;
#[cfg(feature = "passkeys")]
pub mod passkeys;
mod password_change;
mod policy;
mod projection;
mod rate_limit;
mod refresh;
mod revocation;
mod service;
mod session;
mod sessions_view;
mod strict_json;
mod tenant_keys;
mod tickets;
mod token_tenant;
mod tokens;
mod totp;

pub use audit::{
    AuthAudit, AuthAuditEvent, RecordAuthAudit, ThrottleScope, audit_key_owner, audit_stream_id,
};
pub use background::ProjectionHealth;
pub use backup::{BACKUP_CODE_LEN, BackupCodes};
pub use challenge::MemoryChallengeStore;
pub use config::{AuthnConfig, ConfigError, ENV_VARS, JwtConfig, JwtSigning, MIN_HS256_KEY_BYTES};
pub use error::AuthnError;
pub use identity::{IdentitySync, OrganizationCreated, PersonCreated, PersonProvisioned};
pub use jwt::{
    ACCESS_TOKEN_TYP, DEFAULT_MAX_TOKEN_BYTES, JwtValidator, JwtValidatorBuilder, KeyError,
    RevocationList,
};
pub use lockout::MemoryAttemptLedger;
pub use login::{
    LoginOutcome, MfaChallenge, PasswordChangeTicket, PublicKeyChallenge, public_key_login_message,
};
pub use new_user::NewPasswordUser;
pub use policy::{PasswordPolicy, PasswordRule, PolicyViolation};
pub use projection::RevocationProjection;
pub use rate_limit::MemoryRateLimiter;
pub use revocation::{ACCESS_TOKEN_REVOCATION, TokenRevocationEvent};
pub use revocation::{RevokeAccessToken, TokenRevocations};
/// Re-exported from `security-core`, where the port lives (so shared
/// backends implement it without depending on this crate).
pub use security_core::{InvalidRateLimit, RateDecision, RateLimit, RateLimitError, RateLimiter};
pub use service::{AuthenticationService, AuthenticationServiceBuilder, TokenPair};
pub use session::{Session, SessionCommand, SessionError, SessionEvent, SessionStatus};
pub use sessions_view::{SessionSummary, SessionsProjection, SessionsView};
pub use tenant_keys::{KeyringCommand, KeyringError, KeyringEvent, TENANT_KEYRING, TenantKeyring};
pub use totp::{TOTP_SECRET_BYTES, TotpAlgorithm, TotpConfig, TotpEnrollment, TotpSecret};

/// Re-exported: the JWT algorithm type of [`JwtValidatorBuilder::algorithms`].
pub use jsonwebtoken::Algorithm as JwtAlgorithm;

// ---- NATS decentralized auth: see `nats/` ----------------------
mod nats;
pub use nats::{
    ALL_SUBJECTS, ALL_USERS, AccountJwtClaims, AccountNats, AccountSigner, ClaimType,
    DEFAULT_USER_JWT_LIFETIME, DecodedJwt, EffectiveUserPermissions, IssuedUserJwt, JWT_VERSION,
    NATS_JWT_HEADER, NATS_MAX_JWT_LEN, NO_LIMIT, NatsAccountLimits, NatsAdmin, NatsClaimKind,
    NatsClaims, NatsError, NatsExport, NatsImport, NatsIssuer, NatsJwtError, NatsPermission,
    NatsPermissions, NatsResponsePermission, NatsServerConfig, NatsSigningKey, NatsTimeRange,
    NatsTrust, NatsUserPermissionLimits, NatsUserScope, OperatorClaims, OperatorNats,
    OperatorSource, Reissued, ReissuedUser, USER_SCOPE_KIND, UserClaims, UserCreds, UserJwtOptions,
    UserNats, UserSigner, VerifiedUser, decode_account_jwt, decode_jwt, decode_operator_jwt,
    decode_user_jwt, effective_user_permissions, nats_jti, user_jwt_cutoff, user_nkey,
    user_revocations, verify_user_chain,
};
