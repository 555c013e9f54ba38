//! The [`AuthenticationService`]: its parts, its builder, and what every
//! flow shares (contexts, user commands, sessions, access tokens).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use uuid::Uuid;

use security_core::{
    AccessClaims, Account, Actor, AdminService, Audience, AuthMethod, ClientInfo, Clock,
    CommandContext, KeyOwner, KeyPurpose, KeyStatus, KeyStore, PasswordHasher, Permissions, Policy,
    Repository, SealedSecret, SessionId, TenantId, TokenError, User, UserCommand, UserId,
};

use crate::audit::{AuditLog, AuthAuditEvent};
use crate::background::{self, Health, ProjectionHealth, Supervisor};
use crate::challenge::MemoryChallengeStore;
use crate::config::{AuthnConfig, JwtSigning};
use crate::error::AuthnError;
use crate::jwt::{self, ACCESS_TOKEN_TYP, JwtValidator, RevocationList};
use crate::lockout::MemoryAttemptLedger;
use crate::projection::{RevocationProjection, RevocationTap};
use crate::rate_limit::MemoryRateLimiter;
use crate::session::{Session, SessionCommand};
use crate::tenant_keys::TenantKeys;
use security_core::{
    AttemptLedger, ChallengeStore, DEFAULT_CACHE_CAPACITY, RateLimit, RateLimiter, RetryPolicy,
    StateCache, TokioTimer,
};

/// Prefix of refresh tokens (lets secret scanners find leaked ones).
pub(crate) const REFRESH_TOKEN_PREFIX: &str = "sec_rt_";
/// Prefix of API keys.
pub(crate) const API_KEY_PREFIX: &str = "sec_ak_";

/// An access token and the refresh token of its session.
///
/// `Debug` shows neither token.
pub struct TokenPair {
    /// The access token (a JWT): send it as `Authorization: Bearer …`.
    pub access_token: SecretString,
    /// The refresh token (opaque, 256 random bits): keep it secret; each
    /// use returns a new one and kills this one.
    pub refresh_token: SecretString,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// When the refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
    /// The session (refresh-token family).
    pub session_id: SessionId,
    /// The user.
    pub user_id: UserId,
    /// The user's tenant.
    pub tenant_id: TenantId,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[REDACTED]")
            .field("refresh_token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// A session just started: its first refresh token.
pub(crate) struct StartedSession {
    pub(crate) refresh_token: SecretString,
    pub(crate) refresh_expires_at: DateTime<Utc>,
    pub(crate) user_id: UserId,
    /// The session's start (after any revoke-all of the same instant).
    pub(crate) now: DateTime<Utc>,
}

/// The service an application calls to authenticate users and manage
/// their credentials, MFA, tokens and sessions. Cheap to clone.
///
/// See the crate documentation for the flows and the threat model.
#[derive(Clone)]
pub struct AuthenticationService {
    pub(crate) inner: Arc<Inner>,
}

/// What a user command did.
pub(crate) struct UserOutcome {
    /// The user after it.
    pub(crate) state: User,
}

pub(crate) struct Inner {
    pub(crate) repo: Repository,
    pub(crate) admin: AdminService,
    pub(crate) keys: TenantKeys,
    pub(crate) hasher: Arc<dyn PasswordHasher>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limiter: Arc<dyn RateLimiter>,
    pub(crate) config: AuthnConfig,
    pub(crate) validator: Arc<JwtValidator>,
    pub(crate) hs256: Option<(String, jsonwebtoken::EncodingKey)>,
    pub(crate) challenges: Arc<dyn ChallengeStore>,
    pub(crate) attempts: Arc<dyn AttemptLedger>,
    #[cfg(feature = "passkeys")]
    pub(crate) passkeys: crate::passkeys::Verifiers,
    pub(crate) health: Arc<Health>,
    /// Dropped with the service: stops the background work.
    #[allow(dead_code, reason = "held for its Drop")]
    pub(crate) background: Option<Supervisor>,
    pub(crate) audit: AuditLog,
}

impl fmt::Debug for AuthenticationService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticationService")
            .field("algorithm", &self.inner.config.jwt.signing.algorithm_name())
            .field("validator", &self.inner.validator)
            .field("limiter", &self.inner.limiter)
            .field("challenges", &self.inner.challenges)
            .field("attempts", &self.inner.attempts)
            .finish_non_exhaustive()
    }
}

/// Builds an [`AuthenticationService`].
pub struct AuthenticationServiceBuilder {
    repo: Repository,
    keys: Arc<dyn KeyStore>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    config: AuthnConfig,
    limiter: Option<Arc<dyn RateLimiter>>,
    challenges: Option<Arc<dyn ChallengeStore>>,
    attempts: Option<Arc<dyn AttemptLedger>>,
    background: bool,
}

impl fmt::Debug for AuthenticationServiceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticationServiceBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AuthenticationServiceBuilder {
    /// Replaces the default configuration (see [`AuthnConfig::from_env`]).
    pub fn config(mut self, config: AuthnConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses this rate limiter (default: a [`MemoryRateLimiter`], which
    /// limits per process). Replicas must share one (Redis or PostgreSQL,
    /// `security-eventstore`), or each replica throttles on its own.
    pub fn rate_limiter(mut self, limiter: Arc<dyn RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Keeps pending MFA challenges, password-change tickets and
    /// public-key nonces here (default: a [`MemoryChallengeStore`], one
    /// process). Replicas must share one (PostgreSQL,
    /// `security-eventstore`), or a challenge made on one replica cannot be
    /// completed on another.
    pub fn challenge_store(mut self, challenges: Arc<dyn ChallengeStore>) -> Self {
        self.challenges = Some(challenges);
        self
    }

    /// Keeps the verification budgets and the lockouts of unknown
    /// usernames here (default: a [`MemoryAttemptLedger`], one process).
    /// Replicas must share one (Redis or PostgreSQL, `security-eventstore`),
    /// or the lockout is not exact and unknown usernames behave differently
    /// from real ones across replicas.
    pub fn attempt_ledger(mut self, attempts: Arc<dyn AttemptLedger>) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// Whether the service runs its revocation projection by itself
    /// (default: yes, when built inside a Tokio runtime). Turn it off only
    /// to run a [`RevocationProjection`] yourself: without one, a
    /// revocation made by another replica is never seen here.
    pub fn background(mut self, run: bool) -> Self {
        self.background = run;
        self
    }

    /// The service. Inside a Tokio runtime it starts its background work
    /// (see [`revocation_health`](AuthenticationService::revocation_health)),
    /// which stops when the last clone of the service is dropped.
    pub fn build(self) -> Result<AuthenticationService, AuthnError> {
        #[cfg(feature = "passkeys")]
        let passkeys = crate::passkeys::Verifiers::new(&self.config.passkeys)?;
        let jwt = &self.config.jwt;
        let retention = jwt.access_token_ttl + jwt.leeway + std::time::Duration::from_secs(60);
        let validator = JwtValidator::builder(Arc::clone(&self.clock))
            .algorithms(&[match jwt.signing {
                JwtSigning::EdDsa => jsonwebtoken::Algorithm::EdDSA,
                JwtSigning::Hs256(_) => jsonwebtoken::Algorithm::HS256,
            }])
            .issuer(jwt.issuer.clone())
            .audience(jwt.audience.clone())
            .typ(ACCESS_TOKEN_TYP)
            .leeway(jwt.leeway)
            .revocations(Arc::new(RevocationList::new(retention)))
            .key_store(Arc::clone(&self.keys))
            .build();
        let validator = Arc::new(validator);
        let hs256 = match &jwt.signing {
            JwtSigning::EdDsa => None,
            JwtSigning::Hs256(secret) => {
                let kid = hs256_kid(secret);
                validator
                    .add_hs256_key(&kid, secret.expose_secret())
                    .map_err(|e| {
                        crate::config::ConfigError::new("JWT_SECRET_KEY", e.to_string())
                    })?;
                Some((
                    kid,
                    jsonwebtoken::EncodingKey::from_secret(secret.expose_secret()),
                ))
            }
        };
        // Revocations written through this service's repository (its admin
        // API included) apply in this process before the command returns;
        // other processes' arrive through the supervised projection.
        let projection = RevocationProjection::for_validator(Arc::clone(&validator));
        let tap = RevocationTap {
            projection: projection.clone(),
            next: self.repo.publisher().cloned(),
        };
        // The one command path: the repository, with a state cache (a
        // login catches the user up from the store instead of replaying
        // its stream) and a timer for the backoff of persistent retries.
        let mut repo = self.repo;
        if repo.state_cache().is_none() {
            repo = repo.with_state_cache(StateCache::new(DEFAULT_CACHE_CAPACITY));
        }
        if repo.timer().is_none() {
            repo = repo.with_timer(Arc::new(TokioTimer));
        }
        let audit_repo = repo.clone();
        let repo = repo.with_publisher(Arc::new(tap));
        let admin = AdminService::new(
            repo.clone(),
            Arc::clone(&self.clock),
            Arc::clone(&self.keys),
        );
        let audit = AuditLog::new(audit_repo);
        let health = Arc::new(Health::default());
        let background = if self.background {
            background::start(
                Arc::clone(repo.store()),
                projection,
                Arc::clone(&self.clock),
                retention,
                Arc::clone(&health),
            )
        } else {
            None
        };
        Ok(AuthenticationService {
            inner: Arc::new(Inner {
                admin,
                keys: TenantKeys::new(self.keys, repo.clone(), Arc::clone(&self.clock)),
                background,
                health,
                hasher: self.hasher,
                clock: self.clock,
                limiter: self
                    .limiter
                    .unwrap_or_else(|| Arc::new(MemoryRateLimiter::new())),
                config: self.config,
                validator,
                hs256,
                challenges: self
                    .challenges
                    .unwrap_or_else(|| Arc::new(MemoryChallengeStore::new())),
                attempts: self
                    .attempts
                    .unwrap_or_else(|| Arc::new(MemoryAttemptLedger::new())),
                audit,
                repo,
                #[cfg(feature = "passkeys")]
                passkeys,
            }),
        })
    }
}

/// The kind of credential a login method proved (what a session opened
/// by it depends on).
fn opened_by(method: AuthMethod) -> Option<security_core::CredentialType> {
    use security_core::CredentialType;
    match method {
        AuthMethod::Password
        | AuthMethod::PasswordTotp
        | AuthMethod::PasswordBackupCode
        | AuthMethod::PasswordPasskey => Some(CredentialType::Password),
        AuthMethod::ApiToken => Some(CredentialType::Token),
        AuthMethod::PublicKey => Some(CredentialType::PublicKey),
        AuthMethod::Passkey => Some(CredentialType::Passkey),
        _ => None,
    }
}

/// The `kid` of an HS256 secret: a fingerprint that changes with the
/// secret and reveals nothing of it.
fn hs256_kid(secret: &SecretSlice<u8>) -> String {
    let tag = security_crypto::hmac_sha256(secret.expose_secret(), b"security-authn hs256 kid");
    let mut kid = String::from("hs256-");
    for b in tag.iter().take(8) {
        use std::fmt::Write as _;
        let _ = write!(kid, "{b:02x}");
    }
    kid
}

/// Runs password hashing (argon2id takes tens of milliseconds) without
/// stalling the async executor: on a multi-threaded Tokio runtime in place
/// (`block_in_place` moves the worker's other tasks elsewhere, and no thread
/// hand-off is paid), on a current-thread runtime on the blocking pool, and
/// inline outside any runtime.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, AuthnError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(f))
        }
        Ok(handle) => handle.spawn_blocking(f).await.map_err(AuthnError::crypto),
        Err(_) => Ok(f()),
    }
}

/// A refresh token or API key split into its parts.
pub(crate) struct OpaqueToken {
    pub(crate) tenant: TenantId,
    pub(crate) id: Uuid,
}

/// `prefix` + base64url(tenant ‖ id ‖ 32 random bytes): the ids let the
/// service find the stream; the random part is what makes it a secret.
pub(crate) fn new_opaque_token(
    prefix: &str,
    tenant: TenantId,
    id: Uuid,
) -> Result<SecretString, AuthnError> {
    let random = security_crypto::random_bytes::<32>().map_err(AuthnError::crypto)?;
    let mut raw = zeroize::Zeroizing::new([0_u8; 64]);
    raw[..16].copy_from_slice(tenant.as_uuid().as_bytes());
    raw[16..32].copy_from_slice(id.as_bytes());
    raw[32..].copy_from_slice(random.as_ref());
    let mut text = String::with_capacity(prefix.len() + 86);
    text.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(raw.as_ref(), &mut text);
    Ok(SecretString::from(text))
}

pub(crate) fn parse_opaque_token(prefix: &str, token: &SecretString) -> Option<OpaqueToken> {
    let body = token.expose_secret().strip_prefix(prefix)?;
    if body.len() != 86 {
        return None;
    }
    let mut raw = zeroize::Zeroizing::new([0_u8; 64]);
    match URL_SAFE_NO_PAD.decode_slice(body, raw.as_mut()) {
        Ok(64) => {}
        _ => return None,
    }
    let tenant = Uuid::from_slice(&raw[..16]).ok()?;
    let id = Uuid::from_slice(&raw[16..32]).ok()?;
    Some(OpaqueToken {
        tenant: TenantId::from_uuid(tenant),
        id,
    })
}

/// The union of several permission sets: allowed where one allows and
/// none denies; responses as generous as the most generous set.
/// Counts a lock that a command of this service stored: this service
/// locks users only through the lockout policy of a recorded failure.
fn count_lock(outcome: &security_core::CommandOutcome<User>) {
    if !outcome.deduplicated
        && outcome
            .events
            .iter()
            .any(|event| &*event.event_type == "UserLocked")
    {
        crate::observe::lockout();
    }
}

fn union_permissions<'a>(sets: impl IntoIterator<Item = &'a Permissions>) -> Permissions {
    let mut out = Permissions::default();
    for set in sets {
        for p in &set.publish.allow {
            if !out.publish.allow.contains(p) {
                out.publish.allow.push(p.clone());
            }
        }
        for p in &set.publish.deny {
            if !out.publish.deny.contains(p) {
                out.publish.deny.push(p.clone());
            }
        }
        for p in &set.subscribe.allow {
            if !out.subscribe.allow.contains(p) {
                out.subscribe.allow.push(p.clone());
            }
        }
        for p in &set.subscribe.deny {
            if !out.subscribe.deny.contains(p) {
                out.subscribe.deny.push(p.clone());
            }
        }
        out.allow_responses = match (out.allow_responses, set.allow_responses) {
            (Some(a), Some(b)) => {
                let more = |x: i64, y: i64| if x < 0 || y < 0 { -1 } else { x.max(y) };
                Some(security_core::ResponsePermission {
                    max_messages: more(a.max_messages, b.max_messages),
                    ttl_ms: more(a.ttl_ms, b.ttl_ms),
                })
            }
            (a, None) => a,
            (None, b) => b,
        };
    }
    out
}

impl AuthenticationService {
    /// A builder over a repository (event store, ids, publisher), a key
    /// store, a password hasher and a clock, with the default
    /// configuration.
    pub fn builder(
        repo: Repository,
        keys: Arc<dyn KeyStore>,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
    ) -> AuthenticationServiceBuilder {
        AuthenticationServiceBuilder {
            repo,
            keys,
            hasher,
            clock,
            config: AuthnConfig::default(),
            limiter: None,
            challenges: None,
            attempts: None,
            background: true,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &AuthnConfig {
        &self.inner.config
    }

    /// The access-token validator, to hand to `security-authz` (as an
    /// `Arc<dyn TokenValidator>`) or to other parts of the application. It
    /// shares this service's keys and revocations.
    pub fn validator(&self) -> Arc<JwtValidator> {
        Arc::clone(&self.inner.validator)
    }

    /// The admin API over the same repository and key store. Revocations
    /// it records (a lock, a role change, an expiry) apply to this
    /// service's validator before the call returns.
    pub fn admin(&self) -> &AdminService {
        &self.inner.admin
    }

    /// How the background revocation projection fares: whether it is live,
    /// the position it reached, how far behind the store's head it is, how
    /// often it restarted after a store error. A revocation made on another
    /// replica is refused here once `position` passes it (milliseconds when
    /// `live`).
    pub async fn revocation_health(&self) -> ProjectionHealth {
        let head = self.inner.repo.store().head_position().await.ok();
        self.inner.health.snapshot(head)
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub(crate) fn new_id(&self) -> Uuid {
        self.inner.repo.ids().new_id()
    }

    /// A context for one request: the clock's time and a fresh correlation id.
    pub(crate) fn context(&self, tenant: TenantId, actor: Option<Actor>) -> CommandContext {
        crate::observe::record_tenant(tenant);
        let mut ctx = CommandContext::new(tenant, self.now()).with_correlation_id(self.new_id());
        ctx.actor = actor;
        ctx
    }

    pub(crate) async fn account(&self, tenant: TenantId) -> Result<Account, AuthnError> {
        Ok(self
            .inner
            .repo
            .load::<Account>(tenant, tenant.as_uuid())
            .await?
            .state)
    }

    /// The user, if it exists in the tenant.
    pub(crate) async fn user(
        &self,
        tenant: TenantId,
        user_id: UserId,
    ) -> Result<Option<User>, AuthnError> {
        let user = self.inner.repo.load::<User>(tenant, user_id).await?.state;
        if user.id.is_some() {
            crate::observe::record_user(user_id);
        }
        Ok(user.id.is_some().then_some(user))
    }

    /// Runs a user command through the repository (with its retry policy;
    /// any sessions it revokes are refused by this service's validator
    /// before it returns).
    pub(crate) async fn user_command(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        command: UserCommand,
    ) -> Result<UserOutcome, AuthnError> {
        let outcome = self
            .inner
            .repo
            .execute::<User>(user_id, &command, ctx)
            .await?;
        count_lock(&outcome);
        Ok(UserOutcome {
            state: outcome.state,
        })
    }

    /// Runs a user command that records a fact (an authentication, a
    /// failure): a concurrency conflict is retried with the repository's
    /// persistent policy (jittered backoff) until it lands, so concurrent
    /// logins of one user never see a conflict and no failure is lost.
    pub(crate) async fn record_user_fact(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        command: UserCommand,
    ) -> Result<UserOutcome, AuthnError> {
        let outcome = self
            .inner
            .repo
            .execute_with::<User>(user_id, &command, ctx, &RetryPolicy::persistent())
            .await?;
        count_lock(&outcome);
        Ok(UserOutcome {
            state: outcome.state,
        })
    }

    pub(crate) async fn record_audit(
        &self,
        ctx: &CommandContext,
        event: &AuthAuditEvent,
    ) -> Result<(), AuthnError> {
        self.inner.audit.record(ctx, event).await
    }

    /// Counts one event under `limit` for each key (in one round trip to
    /// a shared limiter); the first refusal wins.
    pub(crate) async fn throttle(
        &self,
        keys: &[Option<String>],
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> Result<Option<(usize, std::time::Duration)>, AuthnError> {
        let present: Vec<(usize, &str)> = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.as_deref().map(|k| (i, k)))
            .collect();
        if present.is_empty() {
            return Ok(None);
        }
        let names: Vec<&str> = present.iter().map(|(_, k)| *k).collect();
        Ok(self
            .inner
            .limiter
            .acquire_all(&names, limit, now)
            .await?
            .map(|(at, retry_after)| (present[at].0, retry_after)))
    }

    // ----- sealing --------------------------------------------------------

    pub(crate) async fn seal_for(
        &self,
        tenant: TenantId,
        owner: Uuid,
        plaintext: &[u8],
    ) -> Result<SealedSecret, AuthnError> {
        Ok(self
            .inner
            .keys
            .store()
            .seal(KeyOwner::new(tenant, owner), plaintext)
            .await?)
    }

    pub(crate) async fn unseal(
        &self,
        sealed: &SealedSecret,
    ) -> Result<SecretSlice<u8>, AuthnError> {
        Ok(self.inner.keys.store().unseal(sealed).await?)
    }

    pub(crate) async fn unseal_text(
        &self,
        sealed: &SealedSecret,
    ) -> Result<SecretString, AuthnError> {
        let bytes = self.unseal(sealed).await?;
        let text = std::str::from_utf8(bytes.expose_secret())
            .map_err(|_| AuthnError::KeyStore(security_core::KeyStoreError::Unseal))?;
        Ok(SecretString::from(text.to_owned()))
    }

    // ----- sessions and tokens -------------------------------------------

    /// Starts a session for a user who just authenticated and returns its
    /// token pair.
    pub(crate) async fn open_session(
        &self,
        ctx: &CommandContext,
        user: &User,
        account: &Account,
        method: AuthMethod,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthnError> {
        self.open_session_with(ctx, user, account, method, None, client)
            .await
    }

    /// Starts a session opened (alone or as the second factor) by a
    /// passkey, which its refreshes then depend on.
    pub(crate) async fn open_session_with(
        &self,
        ctx: &CommandContext,
        user: &User,
        account: &Account,
        method: AuthMethod,
        passkey: Option<security_core::PasskeyId>,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthnError> {
        let session_id = SessionId::from_uuid(self.new_id());
        let started = self
            .start_session_with(ctx, user, method, passkey, client, session_id)
            .await?;
        let (access_token, expires_at) = self
            .access_token(ctx.tenant_id, user, account, session_id, started.now)
            .await?;
        Ok(TokenPair {
            access_token,
            refresh_token: started.refresh_token,
            token_type: "Bearer",
            expires_at,
            refresh_expires_at: started.refresh_expires_at,
            session_id,
            user_id: started.user_id,
            tenant_id: ctx.tenant_id,
        })
    }

    /// Starts the session `session_id` for a user who just authenticated
    /// and returns its first refresh token.
    pub(crate) async fn start_session(
        &self,
        ctx: &CommandContext,
        user: &User,
        method: AuthMethod,
        client: &ClientInfo,
        session_id: SessionId,
    ) -> Result<StartedSession, AuthnError> {
        self.start_session_with(ctx, user, method, None, client, session_id)
            .await
    }

    /// [`start_session`](Self::start_session) for a session a passkey
    /// opened.
    pub(crate) async fn start_session_with(
        &self,
        ctx: &CommandContext,
        user: &User,
        method: AuthMethod,
        passkey: Option<security_core::PasskeyId>,
        client: &ClientInfo,
        session_id: SessionId,
    ) -> Result<StartedSession, AuthnError> {
        let user_id = user.id.ok_or(AuthnError::InvalidCredentials)?;
        let tenant = ctx.tenant_id;
        let seed = crate::refresh::Seed::generate()?;
        let sealed_seed = self
            .seal_for(tenant, user_id.as_uuid(), seed.as_bytes())
            .await?;
        let refresh_token = seed.token(tenant, session_id, 0);
        // A session that starts right after a revoke-all (a password
        // change, in the same clock tick) must start after it.
        let mut session_ctx = ctx.clone();
        if let Some(revoked_at) = user.last_session_revocation()
            && revoked_at >= session_ctx.now
        {
            session_ctx.now = revoked_at + chrono::Duration::microseconds(1);
        }
        let absolute_expires_at = session_ctx.now + self.session_max_lifetime();
        let refresh_expires_at = (session_ctx.now + self.refresh_ttl()).min(absolute_expires_at);
        let command = SessionCommand::Start {
            session_id,
            user_id,
            method,
            opened_by: opened_by(method),
            passkey,
            client: client.clone(),
            seed: sealed_seed,
            expires_at: refresh_expires_at,
            absolute_expires_at,
        };
        self.inner
            .repo
            .execute::<Session>(session_id, &command, &session_ctx)
            .await?;
        Ok(StartedSession {
            refresh_token,
            refresh_expires_at,
            user_id,
            now: session_ctx.now,
        })
    }

    pub(crate) fn refresh_ttl(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.inner.config.refresh_token_ttl)
            .unwrap_or(chrono::Duration::days(7))
    }

    pub(crate) fn session_max_lifetime(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.inner.config.session_max_lifetime)
            .unwrap_or(chrono::Duration::days(30))
    }

    /// The user's subject permissions: its policies in force plus its
    /// account's defaults.
    async fn permissions(
        &self,
        tenant: TenantId,
        user: &User,
        account: &Account,
        now: DateTime<Utc>,
    ) -> Result<Permissions, AuthnError> {
        let mut policies = Vec::with_capacity(user.policies.len());
        for policy_id in &user.policies {
            let policy = self
                .inner
                .repo
                .load::<Policy>(tenant, *policy_id)
                .await?
                .state;
            if policy.is_in_force(now) {
                policies.push(policy.permissions);
            }
        }
        Ok(union_permissions(
            std::iter::once(&account.default_permissions).chain(policies.iter()),
        ))
    }

    /// Issues a signed access token for a session.
    pub(crate) async fn access_token(
        &self,
        tenant: TenantId,
        user: &User,
        account: &Account,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<(SecretString, DateTime<Utc>), AuthnError> {
        let claims = self
            .access_claims(tenant, user, account, Some(session_id), now)
            .await?;
        let token = self.sign_jwt(tenant, ACCESS_TOKEN_TYP, &claims).await?;
        let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
        Ok((SecretString::from(token), expires_at))
    }

    /// The claims of an access token for a user (and session), not signed.
    pub(crate) async fn access_claims(
        &self,
        tenant: TenantId,
        user: &User,
        account: &Account,
        session_id: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, AuthnError> {
        let user_id = user.id.ok_or(AuthnError::InvalidCredentials)?;
        let config = &self.inner.config.jwt;
        // `iat` has one-second resolution and a revoke-all refuses every
        // token of its second: a token issued after it in the same second
        // carries the next second.
        let mut iat = now.timestamp();
        let cutoff = user.last_session_revocation().map(|r| r.timestamp()).max(
            self.inner
                .validator
                .revocations()
                .user_cutoff(tenant, user_id),
        );
        if let Some(cutoff) = cutoff
            && iat <= cutoff
        {
            iat = cutoff + 1;
        }
        let ttl = i64::try_from(config.access_token_ttl.as_secs()).unwrap_or(1800);
        Ok(AccessClaims {
            iss: config.issuer.clone(),
            sub: user_id.to_string(),
            aud: Audience::One(config.audience.clone()),
            exp: iat + ttl,
            nbf: None,
            iat,
            jti: self.new_id().to_string(),
            tenant_id: tenant,
            user_id,
            session_id,
            roles: user.roles.iter().cloned().collect(),
            permissions: self.permissions(tenant, user, account, now).await?,
        })
    }

    /// Signs a JWT of any claims with the tenant's token-signing key (or
    /// the HS256 secret), with `typ` in its header.
    pub(crate) async fn sign_jwt(
        &self,
        tenant: TenantId,
        typ: &str,
        claims: &(impl serde::Serialize + Sync),
    ) -> Result<String, AuthnError> {
        if let Some((kid, key)) = &self.inner.hs256 {
            let input =
                jwt::signing_input("HS256", kid, typ, claims).map_err(AuthnError::crypto)?;
            let signature =
                jsonwebtoken::crypto::sign(input.as_bytes(), key, jsonwebtoken::Algorithm::HS256)
                    .map_err(AuthnError::crypto)?;
            return Ok(format!("{input}.{signature}"));
        }
        let (info, input, signature) = self
            .inner
            .keys
            .sign_with(tenant, KeyPurpose::TokenSigning, |info| {
                jwt::signing_input("EdDSA", &info.key_id.to_string(), typ, claims)
                    .map_err(AuthnError::crypto)
            })
            .await?;
        let kid = info.key_id.to_string();
        if !self.inner.validator.has_key(&kid) {
            self.register_signing_key(&info)?;
        }
        Ok(jwt::finish(input, &signature))
    }

    /// Teaches the validator a token-signing key of the key store.
    fn register_signing_key(&self, info: &security_core::KeyInfo) -> Result<(), AuthnError> {
        let kid = info.key_id.to_string();
        if matches!(
            info.status,
            KeyStatus::Revoked { .. } | KeyStatus::Destroyed { .. }
        ) {
            self.inner.validator.revoke_kid(&kid);
            return Ok(());
        }
        let public = info.public_key.as_ref().ok_or(AuthnError::KeyStore(
            security_core::KeyStoreError::WrongPurpose(info.key_id),
        ))?;
        let key = security_crypto::Ed25519PublicKey::from_public_key(public)
            .map_err(AuthnError::crypto)?;
        self.inner
            .validator
            .add_ed25519_key(&kid, &key.to_bytes(), Some(info.owner.tenant_id))
            .map_err(AuthnError::crypto)
    }

    /// Validates an access token in-process. Like the
    /// [`validator`](Self::validator), plus: a token signed by a key this
    /// process has not seen yet (issued by another replica, or before a
    /// restart) is checked after looking the key up in the key store.
    #[tracing::instrument(
        level = "debug",
        name = "authn.validate_access_token",
        skip_all,
        fields(
            operation = "validate_access_token",
            tenant = tracing::field::Empty,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn validate_access_token(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let result = self
            .inner
            .validator
            .validate_fetching::<AccessClaims>(token)
            .await;
        let span = tracing::Span::current();
        match &result {
            Ok(claims) => {
                span.record("tenant", tracing::field::display(claims.tenant_id));
                span.record("user_id", tracing::field::display(claims.user_id));
                span.record("outcome", "valid");
            }
            Err(error) => {
                span.record("outcome", crate::observe::token_outcome(error));
            }
        }
        result
    }

    /// Creates a new token-signing key for the tenant; new tokens are
    /// signed with it, tokens signed by the old one stay valid until they
    /// expire (or the old key is revoked).
    #[tracing::instrument(
        name = "authn.rotate_signing_key",
        skip_all,
        fields(
            operation = "rotate_signing_key",
            tenant = %tenant,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn rotate_signing_key(
        &self,
        tenant: TenantId,
    ) -> Result<security_core::KeyId, AuthnError> {
        crate::observe::traced(
            "rotate_signing_key",
            async {
                let next = self
                    .inner
                    .keys
                    .rotate(tenant, KeyPurpose::TokenSigning)
                    .await?;
                self.register_signing_key(&next)?;
                Ok(next.key_id)
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Revokes a token-signing key of the tenant: every token it signed is
    /// refused from now on.
    #[tracing::instrument(
        name = "authn.revoke_signing_key",
        skip_all,
        fields(
            operation = "revoke_signing_key",
            tenant = %tenant,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn revoke_signing_key(
        &self,
        tenant: TenantId,
        key_id: security_core::KeyId,
    ) -> Result<(), AuthnError> {
        crate::observe::traced(
            "revoke_signing_key",
            async {
                let info = self.inner.keys.store().key(key_id).await?;
                if info.owner.tenant_id != tenant || info.purpose != KeyPurpose::TokenSigning {
                    return Err(AuthnError::KeyStore(
                        security_core::KeyStoreError::NotFound(key_id),
                    ));
                }
                self.inner.validator.revoke_kid(&key_id.to_string());
                self.inner.keys.store().revoke_key(key_id).await?;
                self.inner
                    .keys
                    .record_revoked(tenant, KeyPurpose::TokenSigning, key_id)
                    .await
            },
            crate::observe::outcome,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_tokens_round_trip_and_refuse_junk() {
        let tenant = TenantId::from_uuid(Uuid::from_u128(7));
        let id = Uuid::from_u128(9);
        let token = new_opaque_token(REFRESH_TOKEN_PREFIX, tenant, id).unwrap();
        assert!(token.expose_secret().starts_with("sec_rt_"));
        let parsed = parse_opaque_token(REFRESH_TOKEN_PREFIX, &token).unwrap();
        assert_eq!(parsed.tenant, tenant);
        assert_eq!(parsed.id, id);
        assert!(parse_opaque_token(API_KEY_PREFIX, &token).is_none());
        let cut = SecretString::from(token.expose_secret()[..60].to_owned());
        assert!(parse_opaque_token(REFRESH_TOKEN_PREFIX, &cut).is_none());
        let junk = SecretString::from(format!("sec_rt_{}", "!".repeat(86)));
        assert!(parse_opaque_token(REFRESH_TOKEN_PREFIX, &junk).is_none());
        let other = new_opaque_token(REFRESH_TOKEN_PREFIX, tenant, id).unwrap();
        assert_ne!(token.expose_secret(), other.expose_secret());
    }

    #[test]
    fn hs256_kid_is_a_fingerprint() {
        let a = hs256_kid(&SecretSlice::from(vec![1_u8; 32]));
        let b = hs256_kid(&SecretSlice::from(vec![2_u8; 32]));
        assert!(a.starts_with("hs256-") && a.len() == 22);
        assert_ne!(a, b);
    }
}
