//! The login flows: password (then MFA, then a forced password change),
//! API key, public-key challenge/response.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use security_core::{
    Account, Actor, AttemptOutcome, AuthMethod, ChallengePurpose, ClientInfo, CommandContext,
    Credential, CredentialType, FailureReason, MfaProof, TenantId, User, UserCommand, UserId,
    UserStatus, fold_username,
};

use crate::audit::{AuthAuditEvent, ThrottleScope, audit_key_owner};
use crate::backup::{self, SealedCodes};
use crate::error::AuthnError;
use crate::guard::{Gate, lock_end, name_key, user_key};
use crate::service::{
    API_KEY_PREFIX, AuthenticationService, TokenPair, blocking, parse_opaque_token,
};
use crate::tickets::Lookup;
use crate::totp::TotpSecret;

/// Prefix of MFA challenges.
pub(crate) const MFA_CHALLENGE_PREFIX: &str = "sec_mfa_";
/// Prefix of password-change tickets.
const PASSWORD_TICKET_PREFIX: &str = "sec_pwc_";
/// Prefix of public-key challenges.
const PUBLIC_KEY_CHALLENGE_PREFIX: &str = "sec_pkc_";

/// What a login step led to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// The user is in: a session started.
    Authenticated(TokenPair),
    /// The password was right; a second factor is needed
    /// ([`AuthenticationService::verify_mfa`]).
    MfaRequired(MfaChallenge),
    /// The credentials were right but the password is temporary or
    /// expired: it must be changed
    /// ([`AuthenticationService::complete_password_change`]).
    PasswordChangeRequired(PasswordChangeTicket),
}

impl LoginOutcome {
    /// The tokens, if the user is in.
    pub fn into_tokens(self) -> Option<TokenPair> {
        match self {
            Self::Authenticated(tokens) => Some(tokens),
            _ => None,
        }
    }
}

/// A short-lived, single-use MFA challenge. `Debug` hides it.
pub struct MfaChallenge {
    /// The challenge to send back with the code.
    pub challenge: SecretString,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When the user has passkeys (and the tenant a relying party): the
    /// WebAuthn request options (`{"publicKey": …}`) listing them, for
    /// `AuthenticationService::verify_mfa_passkey` (feature `passkeys`)
    /// instead of a code.
    pub passkey_options: Option<serde_json::Value>,
}

impl fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaChallenge")
            .field("challenge", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("passkey", &self.passkey_options.is_some())
            .finish()
    }
}

/// A short-lived, single-use ticket to set a new password and finish the
/// login. `Debug` hides it.
pub struct PasswordChangeTicket {
    /// The ticket to send back with the new password.
    pub ticket: SecretString,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for PasswordChangeTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordChangeTicket")
            .field("ticket", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A nonce to sign with the user's key, and the challenge it belongs to.
pub struct PublicKeyChallenge {
    /// The challenge to send back with the signature. Secret.
    pub challenge: SecretString,
    /// The nonce (unpadded base64url of 32 random bytes).
    pub nonce: String,
    /// The exact bytes to sign with the Ed25519 / nkey seed: they bind the
    /// purpose, the service (issuer and audience), the tenant, the nonce
    /// and the expiry (see [`public_key_login_message`]), so that no
    /// signature made for another protocol (a NATS server's `CONNECT`
    /// nonce, another service) is accepted, and no signature made here is
    /// of use elsewhere.
    pub message: Vec<u8>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// The bytes a public-key login signs (UTF-8 text, lines ending in `\n`):
///
/// ```text
/// security-authn public-key login v1
/// issuer: <issuer>
/// audience: <audience>
/// tenant: <tenant id>
/// nonce: <nonce>
/// expires: <Unix seconds>
/// ```
///
/// The first line is a purpose that no other protocol's message starts
/// with (a NATS server has its clients sign the bare nonce).
pub fn public_key_login_message(
    issuer: &str,
    audience: &str,
    tenant: TenantId,
    nonce: &str,
    expires_at: DateTime<Utc>,
) -> Vec<u8> {
    format!(
        "security-authn public-key login v1\nissuer: {issuer}\naudience: {audience}\ntenant: {tenant}\nnonce: {nonce}\nexpires: {}\n",
        expires_at.timestamp()
    )
    .into_bytes()
}

impl fmt::Debug for PublicKeyChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKeyChallenge")
            .field("challenge", &"[REDACTED]")
            .field("nonce", &self.nonce)
            .field("message_len", &self.message.len())
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How long until `until`, in whole seconds rounded up (the precision a
/// client is told, so that answers computed on different replicas, or for
/// a user and for an unknown username, look alike).
pub(crate) fn remaining(now: DateTime<Utc>, until: Option<DateTime<Utc>>) -> Option<Duration> {
    until.map(|u| {
        let left = (u - now).to_std().unwrap_or(Duration::ZERO);
        let whole = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Duration::from_secs(whole)
    })
}

pub(crate) fn lock_error(user: &User, now: DateTime<Utc>) -> AuthnError {
    let until = match &user.status {
        UserStatus::Locked { until, .. } => *until,
        _ => None,
    };
    AuthnError::UserLocked {
        retry_after: remaining(now, until),
    }
}

/// The longest username accepted, in bytes: no user has a longer one
/// (usernames are at most 256 characters). A longer input is refused
/// before anything else, hashing included.
const MAX_USERNAME_BYTES: usize = 1024;

/// The longest MFA code looked at, in bytes (a TOTP code or a backup code,
/// with spaces).
const MAX_CODE_BYTES: usize = 64;

/// Whether a username may name a user at all: checked before any work.
fn acceptable_username(username: &str) -> bool {
    !username.is_empty() && username.len() <= MAX_USERNAME_BYTES && username.chars().count() <= 256
}

impl AuthenticationService {
    /// The rate-limit key of a client: its IPv4 address, or its IPv6
    /// address cut to the configured prefix (an IPv4-mapped IPv6 address
    /// counts as the IPv4 one).
    pub(crate) fn ip_key(&self, kind: &str, client: &ClientInfo) -> Option<String> {
        let ip = client.ip?;
        Some(match ip {
            std::net::IpAddr::V4(v4) => format!("{kind}:ip:{v4}"),
            std::net::IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    format!("{kind}:ip:{v4}")
                } else {
                    let bits = u32::from(self.inner.config.ipv6_prefix_len.clamp(1, 128));
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
                    format!("{kind}:ip:{network}/{bits}")
                }
            }
        })
    }
}

/// The rate-limit key of a username in a tenant (a hash of the name: see
/// [`name_key`]).
pub(crate) fn username_rate_key(tenant: TenantId, folded: &str) -> String {
    format!("login:{}", name_key(tenant, folded))
}

/// Where a right password leads.
enum Step {
    /// A challenge or a ticket (the login goes on elsewhere).
    Done(LoginOutcome),
    /// The authentication is recorded: open a session for the user as it
    /// is now.
    Open(Box<User>),
}

/// An attempt that failed without (or before) a user stream.
pub(crate) struct Attempt<'a> {
    pub(crate) user_id: Option<UserId>,
    pub(crate) username: Option<&'a str>,
    pub(crate) method: AuthMethod,
    pub(crate) reason: FailureReason,
    pub(crate) throttled: Option<(ThrottleScope, Duration)>,
}

impl AuthenticationService {
    pub(crate) async fn audit_attempt(
        &self,
        ctx: &CommandContext,
        attempt: Attempt<'_>,
        client: &ClientInfo,
    ) -> Result<(), AuthnError> {
        let username = match attempt.username {
            Some(name) => Some(
                self.inner
                    .keys
                    .store()
                    .seal(audit_key_owner(ctx.tenant_id), name.as_bytes())
                    .await?,
            ),
            None => None,
        };
        let event = AuthAuditEvent::AuthenticationAttemptFailed {
            user_id: attempt.user_id,
            username,
            method: attempt.method,
            reason: attempt.reason,
            throttled: attempt.throttled.map(|(scope, _)| scope),
            retry_after_secs: attempt.throttled.map(|(_, d)| d.as_secs()),
            client: client.clone(),
            failed_at: ctx.now,
        };
        self.record_audit(ctx, &event).await
    }

    /// After a credential verified: a locked or expired user is refused
    /// (and the attempt recorded) as at a password login.
    pub(crate) async fn refuse_unusable(
        &self,
        ctx: &CommandContext,
        user: &User,
        user_id: UserId,
        now: DateTime<Utc>,
        client: &ClientInfo,
    ) -> Result<(), AuthnError> {
        if user.is_locked_at(now) {
            self.record_failure(ctx, user_id, FailureReason::UserLocked, false, client)
                .await?;
            return Err(lock_error(user, now));
        }
        if user.status == UserStatus::Expired {
            self.record_failure(ctx, user_id, FailureReason::UserExpired, false, client)
                .await?;
            return Err(AuthnError::UserExpired);
        }
        Ok(())
    }

    pub(crate) async fn record_failure(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        reason: FailureReason,
        lockout: bool,
        client: &ClientInfo,
    ) -> Result<(), AuthnError> {
        let command = UserCommand::RecordAuthenticationFailure {
            reason,
            client: client.clone(),
            lockout: lockout.then_some(self.inner.config.lockout),
        };
        // The library records the failure (the client is in the event) and
        // locks the user by itself: no user acted, so the actor is `system`.
        let ctx = ctx.clone().with_actor(Actor::system());
        self.record_user_fact(&ctx, user_id, command)
            .await
            .map(|_| ())
    }

    pub(crate) async fn active_account(
        &self,
        ctx: &CommandContext,
        user_id: Option<UserId>,
        username: Option<&str>,
        method: AuthMethod,
        client: &ClientInfo,
    ) -> Result<Option<Account>, AuthnError> {
        let account = self.account(ctx.tenant_id).await?;
        if account.id.is_none() {
            return Ok(None);
        }
        if let Err(e) = account.check_active(ctx.now) {
            let attempt = Attempt {
                user_id,
                username: if user_id.is_some() { None } else { username },
                method,
                reason: FailureReason::AccountInactive,
                throttled: None,
            };
            self.audit_attempt(ctx, attempt, client).await?;
            return Err(e.into());
        }
        Ok(Some(account))
    }

    /// Logs a user in with a username and password.
    ///
    /// Throttled per client IP (IPv6 by prefix) and per username
    /// (`AUTH_RATE_LIMIT`); a refusal carries `retry_after`. An unknown
    /// username costs the same hashing work as a known one and gets the
    /// same error ([`AuthnError::InvalidCredentials`]); it also "locks" like
    /// a real user, in the shared attempt ledger, so a lockout does not
    /// reveal that a username exists. A locked user is refused whatever the
    /// password (no password oracle during a lock). Consecutive failures
    /// lock the user for a growing time; the lock ends no session.
    ///
    /// The lockout is exact under concurrency: each verification holds a
    /// lease of the user's budget in the [`AttemptLedger`](security_core::AttemptLedger),
    /// so simultaneous guesses on any replicas cost at most
    /// `max_failures` verifications before the lock, and a lock that lands
    /// while a password is being verified is answered like a wrong
    /// password. A username longer than any user's (256 characters) is
    /// refused before any work.
    ///
    /// Every attempt is an event: in the user's stream when the username
    /// matches a user, in the tenant's auth-audit stream otherwise.
    #[tracing::instrument(
        name = "authn.authenticate",
        skip_all,
        fields(
            operation = "authenticate",
            tenant = %tenant,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn authenticate(
        &self,
        tenant: TenantId,
        username: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, AuthnError> {
        crate::observe::traced_login(
            "password",
            "authenticate",
            Box::pin(async {
                if !acceptable_username(username) {
                    return Err(AuthnError::InvalidCredentials);
                }
                let ctx = self.context(tenant, None);
                let now = ctx.now;
                let folded = fold_username(username);
                let keys = [
                    self.ip_key("login", client),
                    Some(username_rate_key(tenant, &folded)),
                ];
                if let Some((which, retry_after)) = self
                    .throttle(&keys, self.inner.config.login_rate, now)
                    .await?
                {
                    let scope = if which == 0 {
                        ThrottleScope::Ip
                    } else {
                        ThrottleScope::User
                    };
                    let attempt = Attempt {
                        user_id: None,
                        username: Some(username),
                        method: AuthMethod::Password,
                        reason: FailureReason::Throttled,
                        throttled: Some((scope, retry_after)),
                    };
                    self.audit_attempt(&ctx, attempt, client).await?;
                    return Err(AuthnError::Throttled { retry_after });
                }
                let Some(account) = self
                    .active_account(&ctx, None, Some(username), AuthMethod::Password, client)
                    .await?
                else {
                    // No such tenant: same work, same answer, nowhere to record.
                    self.dummy_verify(password).await?;
                    return Err(AuthnError::InvalidCredentials);
                };
                let user = match account.user_by_name(username) {
                    Some(user_id) => self.user(tenant, user_id).await?,
                    None => None,
                };
                match user {
                    Some(user) => {
                        self.password_login(ctx, account, user, password, client)
                            .await
                    }
                    None => {
                        self.unknown_user_login(&ctx, username, &folded, password, client)
                            .await
                    }
                }
            }),
            crate::observe::login_outcome,
        )
        .await
    }

    fn too_long(&self, password: &SecretString) -> bool {
        password.expose_secret().len() > self.inner.config.password_policy.max_bytes
    }

    async fn dummy_verify(&self, password: &SecretString) -> Result<(), AuthnError> {
        if self.too_long(password) {
            return Ok(());
        }
        let hasher = std::sync::Arc::clone(&self.inner.hasher);
        let password = password.clone();
        blocking(move || hasher.dummy_verify(&password)).await
    }

    /// Whether `password` matches the sealed PHC hash. Exactly one hasher
    /// call (a dummy one when there is no hash), none for an over-long
    /// password, whatever the outcome.
    pub(crate) async fn verify_password(
        &self,
        sealed: Option<&security_core::SealedSecret>,
        password: &SecretString,
    ) -> Result<bool, AuthnError> {
        if self.too_long(password) {
            return Ok(false);
        }
        let Some(sealed) = sealed else {
            self.dummy_verify(password).await?;
            return Ok(false);
        };
        let phc = self.unseal_text(sealed).await?;
        let hasher = std::sync::Arc::clone(&self.inner.hasher);
        let password = password.clone();
        match blocking(move || hasher.verify(&password, &phc)).await? {
            Ok(matches) => Ok(matches),
            Err(error) => {
                tracing::warn!(%error, "stored password hash could not be checked");
                Ok(false)
            }
        }
    }

    async fn unknown_user_login(
        &self,
        ctx: &CommandContext,
        username: &str,
        folded: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, AuthnError> {
        let key = name_key(ctx.tenant_id, folded);
        let policy = self.attempt_policy(true);
        let attempt = |reason| Attempt {
            user_id: None,
            username: Some(username),
            method: AuthMethod::Password,
            reason,
            throttled: None,
        };
        match self.gate(&key, &policy, None).await? {
            Gate::Locked(until) => {
                self.verify_password(None, password).await?;
                self.audit_attempt(ctx, attempt(FailureReason::UserLocked), client)
                    .await?;
                Err(AuthnError::UserLocked {
                    retry_after: remaining(self.now(), until),
                })
            }
            Gate::Lease(lease, _) => {
                let result = async {
                    self.verify_password(None, password).await?;
                    self.audit_attempt(ctx, attempt(FailureReason::BadPassword), client)
                        .await
                }
                .await;
                let outcome = if result.is_ok() {
                    AttemptOutcome::Failure
                } else {
                    AttemptOutcome::Released
                };
                self.settle(&key, lease, outcome, &policy).await?;
                result?;
                Err(AuthnError::InvalidCredentials)
            }
        }
    }

    /// A user who is locked: the same hashing work as any attempt (none of
    /// it on the user's hash), the attempt recorded, the lock answered.
    pub(crate) async fn refuse_locked(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        until: Option<DateTime<Utc>>,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, AuthnError> {
        self.verify_password(None, password).await?;
        self.record_failure(ctx, user_id, FailureReason::UserLocked, false, client)
            .await?;
        Err(AuthnError::UserLocked {
            retry_after: remaining(self.now(), until),
        })
    }

    async fn password_login(
        &self,
        ctx: CommandContext,
        account: Account,
        user: User,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, AuthnError> {
        let now = ctx.now;
        let Some(user_id) = user.id else {
            return Err(AuthnError::InvalidCredentials);
        };
        if user.is_locked_at(now) {
            return self
                .refuse_locked(&ctx, user_id, lock_end(&user), password, client)
                .await;
        }
        if user.status == UserStatus::Expired {
            // No lockout: a lock would replace the expired status.
            let verified = self.verify_password(user.password_hash(), password).await?;
            let reason = if verified {
                FailureReason::UserExpired
            } else {
                FailureReason::BadPassword
            };
            self.record_failure(&ctx, user_id, reason, false, client)
                .await?;
            return Err(if verified {
                AuthnError::UserExpired
            } else {
                AuthnError::InvalidCredentials
            });
        }
        let key = user_key(ctx.tenant_id, user_id);
        let policy = self.attempt_policy(false);
        let (lease, waited) = match self
            .gate(&key, &policy, Some((ctx.tenant_id, user_id)))
            .await?
        {
            Gate::Lease(lease, waited) => (lease, waited),
            Gate::Locked(until) => {
                return self
                    .refuse_locked(&ctx, user_id, until, password, client)
                    .await;
            }
        };
        // After a wait, verify against the user as the verifications in
        // flight left it (a password may have changed meanwhile).
        let user = if waited {
            match self.user(ctx.tenant_id, user_id).await {
                Ok(Some(fresh)) => fresh,
                Ok(None) => user,
                Err(e) => {
                    self.settle(&key, lease, AttemptOutcome::Released, &policy)
                        .await?;
                    return Err(e);
                }
            }
        } else {
            user
        };
        let (result, outcome) = self
            .password_login_leased(ctx.clone(), &account, &user, password, client)
            .await;
        // Released as soon as the outcome is recorded: the session is
        // opened outside the budget.
        if let Err(error) = self.settle(&key, lease, outcome, &policy).await {
            // The lease expires by itself; the login's own answer stands.
            tracing::warn!(%error, "could not settle a verification lease");
        }
        match result? {
            Step::Done(outcome) => Ok(outcome),
            Step::Open(state) => {
                let ctx = ctx.with_actor(Actor::user(user_id));
                let tokens = self
                    .open_session(&ctx, &state, &account, AuthMethod::Password, client)
                    .await?;
                self.rehash_if_needed(&ctx, &user, password).await;
                Ok(LoginOutcome::Authenticated(tokens))
            }
        }
    }

    /// The part of a password login that runs under a verification lease;
    /// also says how the lease settles.
    async fn password_login_leased(
        &self,
        ctx: CommandContext,
        account: &Account,
        user: &User,
        password: &SecretString,
        client: &ClientInfo,
    ) -> (Result<Step, AuthnError>, AttemptOutcome) {
        let Some(user_id) = user.id else {
            return (
                Err(AuthnError::InvalidCredentials),
                AttemptOutcome::Released,
            );
        };
        let verified = match self.verify_password(user.password_hash(), password).await {
            Ok(verified) => verified,
            Err(e) => return (Err(e), AttemptOutcome::Released),
        };
        if !verified {
            // Whether or not a lock landed meanwhile, the answer is the same.
            return match self
                .record_failure(&ctx, user_id, FailureReason::BadPassword, true, client)
                .await
            {
                Ok(()) => (Err(AuthnError::InvalidCredentials), AttemptOutcome::Failure),
                Err(e) => (Err(e), AttemptOutcome::Released),
            };
        }
        match self
            .after_right_password(ctx, account, user, password, client)
            .await
        {
            Ok(step @ Step::Open(_)) => (Ok(step), AttemptOutcome::Success),
            Ok(step) => (Ok(step), AttemptOutcome::Released),
            Err(e) => (Err(e), AttemptOutcome::Released),
        }
    }

    /// The password was right. A lock that landed while it was verified is
    /// answered exactly like a wrong password (so the answer never tells
    /// that the password was right).
    async fn after_right_password(
        &self,
        ctx: CommandContext,
        account: &Account,
        user: &User,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<Step, AuthnError> {
        let now = ctx.now;
        let user_id = user.id.ok_or(AuthnError::InvalidCredentials)?;
        let mut must_change = user.password_must_change;
        if !must_change && self.password_too_old(user, now) {
            must_change = true;
        }
        let ctx = ctx.with_actor(Actor::user(user_id));
        // A registered passkey asks for a second factor even where the
        // tenant has no relying party (a misconfigured replica): fail
        // closed rather than fall back to the password alone.
        let second_factor = user.needs_second_factor();
        if second_factor || must_change {
            // The next step is a challenge, which no command checks: look
            // at the user as it is now.
            let current = self.user(ctx.tenant_id, user_id).await?;
            if current.as_ref().is_none_or(|u| u.is_locked_at(now)) {
                self.record_failure(&ctx, user_id, FailureReason::UserLocked, false, client)
                    .await?;
                return Err(AuthnError::InvalidCredentials);
            }
            if must_change && !user.password_must_change {
                // The password's age expired it: an automatic action.
                let system = ctx.clone().with_actor(Actor::system());
                self.user_command(&system, user_id, UserCommand::ExpirePassword)
                    .await?;
            }
            self.rehash_if_needed(&ctx, user, password).await;
            if second_factor {
                return self
                    .issue_mfa_challenge(&ctx, user, must_change, client)
                    .await
                    .map(Step::Done);
            }
            return self
                .issue_password_ticket(&ctx, user_id, AuthMethod::Password, client)
                .await
                .map(Step::Done);
        }
        let _ = account;
        let recorded = self
            .record_user_fact(
                &ctx,
                user_id,
                UserCommand::RecordAuthentication {
                    method: AuthMethod::Password,
                    client: client.clone(),
                },
            )
            .await;
        match recorded {
            Err(AuthnError::UserLocked { .. }) => {
                self.record_failure(&ctx, user_id, FailureReason::UserLocked, false, client)
                    .await?;
                Err(AuthnError::InvalidCredentials)
            }
            other => Ok(Step::Open(Box::new(other?.state))),
        }
    }

    fn password_too_old(&self, user: &User, now: DateTime<Utc>) -> bool {
        let Some(max_age) = self.inner.config.password_policy.max_age else {
            return false;
        };
        let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
        user.password_hash().is_some()
            && user
                .password_changed_at
                .is_some_and(|changed| now >= changed + max_age)
    }

    /// Replaces a hash made with weaker parameters (never fails the login).
    async fn rehash_if_needed(&self, ctx: &CommandContext, user: &User, password: &SecretString) {
        let (Some(user_id), Some(sealed)) = (user.id, user.password_hash()) else {
            return;
        };
        let result = async {
            let phc = self.unseal_text(sealed).await?;
            if !self.inner.hasher.needs_rehash(&phc) {
                return Ok(());
            }
            let new_hash = self.seal_password(ctx.tenant_id, user_id, password).await?;
            self.user_command(ctx, user_id, UserCommand::RehashPassword { new_hash })
                .await
                .map(|_| ())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "password rehash failed; the old hash stays");
        }
    }

    /// Hashes a password and seals the PHC string with the user's data key.
    pub(crate) async fn seal_password(
        &self,
        tenant: TenantId,
        user_id: UserId,
        password: &SecretString,
    ) -> Result<security_core::SealedSecret, AuthnError> {
        let hasher = std::sync::Arc::clone(&self.inner.hasher);
        let password = password.clone();
        let phc = blocking(move || hasher.hash(&password))
            .await?
            .map_err(AuthnError::crypto)?;
        self.seal_for(tenant, user_id.as_uuid(), phc.expose_secret().as_bytes())
            .await
    }

    /// What every MFA step does before it looks at the factor: the
    /// challenge's user is throttled per IP and per user (a throttled
    /// attempt puts the challenge back, unspent, and is audited), then must
    /// exist, not be locked, be allowed to authenticate, and belong to an
    /// active account. Any refusal here is the caller's answer.
    pub(crate) async fn begin_mfa_step(
        &self,
        pending: &security_core::PendingChallenge,
        method: AuthMethod,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<(CommandContext, User, Account), AuthnError> {
        let user_id = pending.user_id;
        let tenant = pending.tenant_id;
        let ctx = self.context(tenant, Some(Actor::user(user_id)));
        let keys = [
            self.ip_key("mfa", client),
            Some(format!("mfa:user:{tenant}:{user_id}")),
        ];
        if let Some((which, retry_after)) = self
            .throttle(&keys, self.inner.config.mfa_rate, now)
            .await?
        {
            self.put_back_challenge(pending.clone(), now).await?;
            let attempt = Attempt {
                user_id: Some(user_id),
                username: None,
                method,
                reason: FailureReason::Throttled,
                throttled: Some((
                    if which == 0 {
                        ThrottleScope::Ip
                    } else {
                        ThrottleScope::User
                    },
                    retry_after,
                )),
            };
            self.audit_attempt(&ctx, attempt, client).await?;
            return Err(AuthnError::Throttled { retry_after });
        }
        let user = self
            .user(tenant, user_id)
            .await?
            .ok_or(AuthnError::InvalidChallenge)?;
        if user.is_locked_at(now) {
            return Err(lock_error(&user, now));
        }
        user.check_can_authenticate(now)?;
        let Some(account) = self
            .active_account(&ctx, Some(user_id), None, method, client)
            .await?
        else {
            return Err(AuthnError::InvalidChallenge);
        };
        Ok((ctx, user, account))
    }

    /// The WebAuthn request options of an MFA challenge for a user with
    /// passkeys (where the tenant has a relying party); the ceremony's state
    /// goes into the challenge's `payload`.
    #[cfg(feature = "passkeys")]
    fn offer_passkey(
        &self,
        tenant: TenantId,
        user: &User,
        payload: &mut serde_json::Value,
    ) -> Result<Option<serde_json::Value>, AuthnError> {
        if user.passkeys.is_empty() {
            return Ok(None);
        }
        let Ok(webauthn) = self.webauthn(tenant) else {
            return Ok(None);
        };
        let (options, state) = crate::passkeys::assertion_ceremony(webauthn, Some(user))?;
        payload["passkey"] = state;
        Ok(Some(options))
    }

    /// Without passkey support no challenge offers one: a user with
    /// passkeys is still asked for a second factor (TOTP or a backup code).
    #[cfg(not(feature = "passkeys"))]
    #[allow(
        clippy::unused_self,
        clippy::unnecessary_wraps,
        reason = "the same signature as with passkeys"
    )]
    fn offer_passkey(
        &self,
        _tenant: TenantId,
        _user: &User,
        _payload: &mut serde_json::Value,
    ) -> Result<Option<serde_json::Value>, AuthnError> {
        Ok(None)
    }

    async fn issue_mfa_challenge(
        &self,
        ctx: &CommandContext,
        user: &User,
        then_change_password: bool,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, AuthnError> {
        let user_id = user.id.ok_or(AuthnError::InvalidCredentials)?;
        let mut payload = serde_json::json!({ "then_change_password": then_change_password });
        let passkey_options = self.offer_passkey(ctx.tenant_id, user, &mut payload)?;
        let (challenge, expires_at) = self
            .issue_challenge(
                MFA_CHALLENGE_PREFIX,
                ctx.tenant_id,
                user_id,
                ChallengePurpose::mfa(),
                payload,
                ctx.now,
            )
            .await?;
        let event = AuthAuditEvent::MfaChallenged {
            user_id,
            client: client.clone(),
            expires_at,
            challenged_at: ctx.now,
        };
        self.record_audit(ctx, &event).await?;
        Ok(LoginOutcome::MfaRequired(MfaChallenge {
            challenge,
            expires_at,
            passkey_options,
        }))
    }

    pub(crate) async fn issue_password_ticket(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        method: AuthMethod,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, AuthnError> {
        let (ticket, expires_at) = self
            .issue_challenge(
                PASSWORD_TICKET_PREFIX,
                ctx.tenant_id,
                user_id,
                ChallengePurpose::password_change(),
                serde_json::json!({ "method": method }),
                ctx.now,
            )
            .await?;
        let event = AuthAuditEvent::PasswordChangeRequired {
            user_id,
            client: client.clone(),
            required_at: ctx.now,
        };
        self.record_audit(ctx, &event).await?;
        Ok(LoginOutcome::PasswordChangeRequired(PasswordChangeTicket {
            ticket,
            expires_at,
        }))
    }

    /// Records the authentication and opens a session.
    async fn finish_login(
        &self,
        ctx: &CommandContext,
        account: &Account,
        user_id: UserId,
        method: AuthMethod,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthnError> {
        let outcome = self
            .record_user_fact(
                ctx,
                user_id,
                UserCommand::RecordAuthentication {
                    method,
                    client: client.clone(),
                },
            )
            .await?;
        self.open_session(ctx, &outcome.state, account, method, client)
            .await
    }

    /// Completes a login with a second factor: a TOTP code (each time step
    /// works once: a replayed code is refused) or a backup code (each works
    /// once). Throttled per IP and per user (`MFA_RATE_LIMIT`); wrong codes
    /// count towards the user's lockout, and a challenge allows
    /// `challenge_max_attempts` wrong codes.
    #[tracing::instrument(
        name = "authn.verify_mfa",
        skip_all,
        fields(
            operation = "verify_mfa",
            tenant = tracing::field::Empty,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn verify_mfa(
        &self,
        challenge: &SecretString,
        code: &SecretString,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, AuthnError> {
        crate::observe::traced_mfa(Box::pin(async {
            let now = self.now();
            if code.expose_secret().len() > MAX_CODE_BYTES {
                // No code is that long: refused before any hashing.
                return Err(AuthnError::InvalidMfaCode);
            }
            let Lookup::Found(mut pending) = self
                .take_challenge(
                    MFA_CHALLENGE_PREFIX,
                    challenge,
                    &ChallengePurpose::mfa(),
                    now,
                )
                .await?
            else {
                return Err(AuthnError::InvalidChallenge);
            };
            let then_change_password = pending.payload["then_change_password"]
                .as_bool()
                .unwrap_or(false);
            let user_id = pending.user_id;
            let (ctx, user, account) = self
                .begin_mfa_step(&pending, AuthMethod::PasswordTotp, client, now)
                .await?;
            let proof = self.second_factor(&user, code, now).await?;
            let verified = match proof {
                Some(proof) => {
                    let command = UserCommand::RecordMfaSuccess {
                        proof,
                        client: client.clone(),
                    };
                    match self.user_command(&ctx, user_id, command).await {
                        Ok(_) => Some(proof),
                        // A concurrent login used the same step or code first.
                        Err(AuthnError::Rejected(_)) => None,
                        Err(e) => return Err(e),
                    }
                }
                None => None,
            };
            let Some(proof) = verified else {
                let command = UserCommand::RecordMfaFailure {
                    client: client.clone(),
                    lockout: Some(self.inner.config.lockout),
                };
                // Recorded (and the user locked) by the library: actor `system`.
                let system = ctx.clone().with_actor(Actor::system());
                self.record_user_fact(&system, user_id, command).await?;
                pending.failures += 1;
                if pending.failures < self.inner.config.challenge_max_attempts {
                    self.put_back_challenge(pending, now).await?;
                }
                return Err(AuthnError::InvalidMfaCode);
            };
            let method = match proof {
                MfaProof::Totp { .. } => AuthMethod::PasswordTotp,
                MfaProof::BackupCode { .. } => AuthMethod::PasswordBackupCode,
            };
            if then_change_password {
                return self
                    .issue_password_ticket(&ctx, user_id, method, client)
                    .await;
            }
            self.finish_login(&ctx, &account, user_id, method, client)
                .await
                .map(LoginOutcome::Authenticated)
        }))
        .await
    }

    /// What a code proves for this user, if anything: a TOTP step newer than
    /// the last one used, or an unused backup code.
    async fn second_factor(
        &self,
        user: &User,
        code: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<Option<MfaProof>, AuthnError> {
        let Some(user_id) = user.id else {
            return Ok(None);
        };
        let text: String = code
            .expose_secret()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let text = zeroize::Zeroizing::new(text);
        let totp = &self.inner.config.totp;
        if text.len() == usize::from(totp.digits) && text.bytes().all(|b| b.is_ascii_digit()) {
            let Some(sealed) = &user.mfa.secret else {
                return Ok(None);
            };
            let secret = TotpSecret::from_bytes(self.unseal(sealed).await?.expose_secret());
            return Ok(match totp.verify(&secret, &text, now) {
                Some(step) if user.mfa.last_step.is_none_or(|last| step > last) => {
                    Some(MfaProof::Totp { step })
                }
                _ => None,
            });
        }
        let (Some(normalized), Some(sealed)) = (backup::normalize(&text), &user.mfa.backup_codes)
        else {
            return Ok(None);
        };
        let codes: SealedCodes = serde_json::from_slice(self.unseal(sealed).await?.expose_secret())
            .map_err(|_| AuthnError::KeyStore(security_core::KeyStoreError::Unseal))?;
        let message = backup::hash_input(user_id, &normalized);
        let tag = self
            .inner
            .keys
            .lookup_hash_with(codes.kid, &message)
            .await?;
        let mut found = None;
        for (index, hash) in codes.hashes.iter().enumerate() {
            let Ok(index) = u8::try_from(index) else {
                break;
            };
            if user.mfa.backup_codes_used.contains(&index) {
                continue;
            }
            let Ok(stored) = URL_SAFE_NO_PAD.decode(hash) else {
                continue;
            };
            let matches = match &tag {
                Some(tag) => tag.len() == stored.len() && bool::from(tag.ct_eq(&stored)),
                None => {
                    self.inner
                        .keys
                        .store()
                        .verify(codes.kid, &message, &stored)
                        .await?
                }
            };
            if matches && found.is_none() {
                found = Some(MfaProof::BackupCode { index });
            }
        }
        Ok(found)
    }

    /// Sets the new password demanded by a
    /// [`LoginOutcome::PasswordChangeRequired`] and finishes the login. The
    /// password must meet the policy (including the history); on a
    /// violation the ticket stays valid for another try.
    #[tracing::instrument(
        name = "authn.complete_password_change",
        skip_all,
        fields(
            operation = "complete_password_change",
            tenant = tracing::field::Empty,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn complete_password_change(
        &self,
        ticket: &SecretString,
        new_password: &SecretString,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthnError> {
        crate::observe::traced(
            "complete_password_change",
            async {
                let now = self.now();
                let Lookup::Found(pending) = self
                    .take_challenge(
                        PASSWORD_TICKET_PREFIX,
                        ticket,
                        &ChallengePurpose::password_change(),
                        now,
                    )
                    .await?
                else {
                    return Err(AuthnError::InvalidChallenge);
                };
                let method: AuthMethod = serde_json::from_value(pending.payload["method"].clone())
                    .map_err(|_| AuthnError::InvalidChallenge)?;
                let user_id = pending.user_id;
                let tenant = pending.tenant_id;
                let ctx = self.context(tenant, Some(Actor::user(user_id)));
                let user = self
                    .user(tenant, user_id)
                    .await?
                    .ok_or(AuthnError::InvalidChallenge)?;
                if user.is_locked_at(now) {
                    return Err(lock_error(&user, now));
                }
                user.check_can_authenticate(now)?;
                let Some(account) = self
                    .active_account(&ctx, Some(user_id), None, method, client)
                    .await?
                else {
                    return Err(AuthnError::InvalidChallenge);
                };
                if let Err(violation) = self.check_new_password(&user, new_password).await {
                    self.put_back_challenge(pending, now).await?;
                    return Err(violation);
                }
                self.set_password(&ctx, user_id, new_password, false)
                    .await?;
                self.finish_login(&ctx, &account, user_id, method, client)
                    .await
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Logs in with an API key alone. Throttled per IP (`API_RATE_LIMIT_PER_MINUTE`).
    #[tracing::instrument(
        name = "authn.authenticate_api_key",
        skip_all,
        fields(
            operation = "authenticate_api_key",
            tenant = tracing::field::Empty,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn authenticate_api_key(
        &self,
        api_key: &SecretString,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthnError> {
        crate::observe::traced_login(
            "api_key",
            "authenticate_api_key",
            Box::pin(async {
                let now = self.now();
                if let Some((_, retry_after)) = self
                    .throttle(
                        &[self.ip_key("apikey", client)],
                        self.inner.config.api_rate,
                        now,
                    )
                    .await?
                {
                    return Err(AuthnError::Throttled { retry_after });
                }
                let Some(parsed) = parse_opaque_token(API_KEY_PREFIX, api_key) else {
                    return Err(AuthnError::InvalidCredentials);
                };
                let tenant = parsed.tenant;
                let user_id = UserId::from_uuid(parsed.id);
                let ctx = self.context(tenant, None);
                let Some(account) = self
                    .active_account(&ctx, Some(user_id), None, AuthMethod::ApiToken, client)
                    .await?
                else {
                    return Err(AuthnError::InvalidCredentials);
                };
                let Some(user) = self.user(tenant, user_id).await? else {
                    let attempt = Attempt {
                        user_id: None,
                        username: None,
                        method: AuthMethod::ApiToken,
                        reason: FailureReason::BadToken,
                        throttled: None,
                    };
                    self.audit_attempt(&ctx, attempt, client).await?;
                    return Err(AuthnError::InvalidCredentials);
                };
                let valid = match user.credential(CredentialType::Token) {
                    Some(Credential::Token {
                        token_hash,
                        expires_at,
                    }) if expires_at.is_none_or(|e| now < e) => {
                        self.api_key_matches(token_hash, api_key).await?
                    }
                    _ => false,
                };
                if !valid {
                    self.record_failure(&ctx, user_id, FailureReason::BadToken, false, client)
                        .await?;
                    return Err(AuthnError::InvalidCredentials);
                }
                self.refuse_unusable(&ctx, &user, user_id, now, client)
                    .await?;
                let ctx = ctx.with_actor(Actor::user(user_id));
                self.finish_login(&ctx, &account, user_id, AuthMethod::ApiToken, client)
                    .await
            }),
            crate::observe::outcome,
        )
        .await
    }

    async fn api_key_matches(
        &self,
        stored: &str,
        api_key: &SecretString,
    ) -> Result<bool, AuthnError> {
        let Some((kid, hash)) = stored.split_once('.') else {
            return Ok(false);
        };
        let (Ok(kid), Ok(hash)) = (kid.parse(), URL_SAFE_NO_PAD.decode(hash)) else {
            return Ok(false);
        };
        match self
            .inner
            .keys
            .store()
            .verify(kid, api_key.expose_secret().as_bytes(), &hash)
            .await
        {
            Ok(matches) => Ok(matches),
            Err(
                security_core::KeyStoreError::Revoked(_)
                | security_core::KeyStoreError::Destroyed(_),
            ) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a public-key login: returns a nonce, and the message that
    /// binds it to this service and tenant, for the user's key to sign.
    /// An unknown username gets a challenge of the same shape (that can
    /// never succeed) and nothing is stored for it, so the answer neither
    /// reveals whether it exists nor lets a flood of made-up usernames fill
    /// the challenge store.
    #[tracing::instrument(
        name = "authn.start_public_key_login",
        skip_all,
        fields(
            operation = "start_public_key_login",
            tenant = %tenant,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn start_public_key_login(
        &self,
        tenant: TenantId,
        username: &str,
        client: &ClientInfo,
    ) -> Result<PublicKeyChallenge, AuthnError> {
        crate::observe::traced(
            "start_public_key_login",
            async {
                if !acceptable_username(username) {
                    return Err(AuthnError::InvalidCredentials);
                }
                let ctx = self.context(tenant, None);
                let now = ctx.now;
                let folded = fold_username(username);
                let keys = [
                    self.ip_key("login", client),
                    Some(username_rate_key(tenant, &folded)),
                ];
                if let Some((which, retry_after)) = self
                    .throttle(&keys, self.inner.config.login_rate, now)
                    .await?
                {
                    let attempt = Attempt {
                        user_id: None,
                        username: Some(username),
                        method: AuthMethod::PublicKey,
                        reason: FailureReason::Throttled,
                        throttled: Some((
                            if which == 0 {
                                ThrottleScope::Ip
                            } else {
                                ThrottleScope::User
                            },
                            retry_after,
                        )),
                    };
                    self.audit_attempt(&ctx, attempt, client).await?;
                    return Err(AuthnError::Throttled { retry_after });
                }
                let user_id = self
                    .active_account(&ctx, None, Some(username), AuthMethod::PublicKey, client)
                    .await?
                    .and_then(|account| account.user_by_name(username));
                let random = security_crypto::random_bytes::<32>().map_err(AuthnError::crypto)?;
                let nonce = URL_SAFE_NO_PAD.encode(random.as_ref());
                let purpose = ChallengePurpose::public_key();
                let (challenge, expires_at) = match user_id {
                    Some(user_id) => {
                        self.issue_challenge(
                            PUBLIC_KEY_CHALLENGE_PREFIX,
                            tenant,
                            user_id,
                            purpose,
                            serde_json::json!({ "nonce": nonce }),
                            now,
                        )
                        .await?
                    }
                    None => {
                        self.phantom_challenge(PUBLIC_KEY_CHALLENGE_PREFIX, tenant, &purpose, now)
                            .await?
                    }
                };
                let jwt = &self.inner.config.jwt;
                let message = public_key_login_message(
                    &jwt.issuer,
                    &jwt.audience,
                    tenant,
                    &nonce,
                    expires_at,
                );
                Ok(PublicKeyChallenge {
                    challenge,
                    nonce,
                    message,
                    expires_at,
                })
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Completes a public-key login with the Ed25519 signature (64 bytes)
    /// of the challenge's [`message`](PublicKeyChallenge::message) by the
    /// user's registered public key or nkey. A signature of anything else
    /// (the bare nonce, as a NATS server asks for) is refused. A challenge
    /// that was never stored (an unknown username) or is already used
    /// answers like a wrong signature; an expired one like any expired
    /// challenge.
    #[tracing::instrument(
        name = "authn.complete_public_key_login",
        skip_all,
        fields(
            operation = "complete_public_key_login",
            tenant = tracing::field::Empty,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn complete_public_key_login(
        &self,
        challenge: &SecretString,
        signature: &[u8],
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthnError> {
        crate::observe::traced_login(
            "public_key",
            "complete_public_key_login",
            Box::pin(async {
                let now = self.now();
                let pending = match self
                    .take_challenge(
                        PUBLIC_KEY_CHALLENGE_PREFIX,
                        challenge,
                        &ChallengePurpose::public_key(),
                        now,
                    )
                    .await?
                {
                    Lookup::Found(pending) => pending,
                    Lookup::Missing {
                        live_tenant: Some(tenant),
                    } => {
                        // Recorded only where a tenant exists to record it.
                        if self.account(tenant).await?.id.is_some() {
                            let ctx = self.context(tenant, None);
                            let attempt = Attempt {
                                user_id: None,
                                username: None,
                                method: AuthMethod::PublicKey,
                                reason: FailureReason::BadSignature,
                                throttled: None,
                            };
                            self.audit_attempt(&ctx, attempt, client).await?;
                        }
                        return Err(AuthnError::InvalidCredentials);
                    }
                    Lookup::Missing { live_tenant: None } => {
                        return Err(AuthnError::InvalidChallenge);
                    }
                };
                let tenant = pending.tenant_id;
                let user_id = pending.user_id;
                let ctx = self.context(tenant, None);
                let Some(user) = self.user(tenant, user_id).await? else {
                    return Err(AuthnError::InvalidCredentials);
                };
                let nonce = pending.payload["nonce"].as_str().unwrap_or_default();
                let jwt = &self.inner.config.jwt;
                let message = public_key_login_message(
                    &jwt.issuer,
                    &jwt.audience,
                    tenant,
                    nonce,
                    pending.expires_at,
                );
                let valid = !nonce.is_empty()
                    && signature.len() == 64
                    && match user.credential(CredentialType::PublicKey) {
                        Some(Credential::PublicKey { key }) => {
                            security_crypto::Ed25519PublicKey::from_public_key(key)
                                .is_ok_and(|key| key.verify(&message, signature))
                        }
                        _ => false,
                    };
                if !valid {
                    self.record_failure(&ctx, user_id, FailureReason::BadSignature, false, client)
                        .await?;
                    return Err(AuthnError::InvalidCredentials);
                }
                self.refuse_unusable(&ctx, &user, user_id, now, client)
                    .await?;
                let Some(account) = self
                    .active_account(&ctx, Some(user_id), None, AuthMethod::PublicKey, client)
                    .await?
                else {
                    return Err(AuthnError::InvalidCredentials);
                };
                let ctx = ctx.with_actor(Actor::user(user_id));
                self.finish_login(&ctx, &account, user_id, AuthMethod::PublicKey, client)
                    .await
            }),
            crate::observe::outcome,
        )
        .await
    }
}
