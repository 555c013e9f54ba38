//! Logging in with a passkey: passwordless (a discoverable credential
//! names its user) and as the second factor after a password.

use secrecy::SecretString;
use security_core::{
    Actor, AuthMethod, ChallengePurpose, ClientInfo, CommandContext, FailureReason, PasskeyId,
    TenantId, User, UserCommand, UserId,
};
use webauthn_rs::prelude::{DiscoverableAuthentication, PublicKeyCredential, Webauthn};

use super::verify::{AssertionCheck, AssertionFailure, verify_assertion};
use super::{MAX_RESPONSE_BYTES, PasskeyCeremony};
use crate::audit::ThrottleScope;
use crate::error::AuthnError;
use crate::login::{Attempt, LoginOutcome};
use crate::service::{AuthenticationService, TokenPair};
use crate::tickets::Lookup;

/// Prefix of passwordless passkey login challenges.
pub(crate) const LOGIN_PREFIX: &str = "sec_pkl_";

fn login_purpose() -> ChallengePurpose {
    ChallengePurpose::other("passkey_login").unwrap_or_else(ChallengePurpose::public_key)
}

/// A new assertion ceremony: the options for the browser and the state to
/// keep. The options leave `mediation` to the page (add
/// `"mediation": "conditional"` for the autofill UI) and list `allow`
/// (a known user's passkeys) when given.
pub(crate) fn assertion_ceremony(
    webauthn: &Webauthn,
    allow: Option<&User>,
) -> Result<(serde_json::Value, serde_json::Value), AuthnError> {
    let (options, state) = webauthn
        .start_discoverable_authentication()
        .map_err(|_| AuthnError::PasskeysNotConfigured)?;
    let mut options = serde_json::to_value(&options).map_err(AuthnError::crypto)?;
    if let Some(object) = options.as_object_mut() {
        object.remove("mediation");
    }
    if let (Some(user), Some(public_key)) = (
        allow,
        options
            .get_mut("publicKey")
            .and_then(serde_json::Value::as_object_mut),
    ) {
        let allowed: Vec<serde_json::Value> = user
            .passkeys
            .iter()
            .map(|p| {
                let mut entry = serde_json::json!({ "type": "public-key", "id": p.id.as_str() });
                if !p.transports.is_empty() {
                    entry["transports"] = serde_json::json!(p.transports);
                }
                entry
            })
            .collect();
        public_key.insert("allowCredentials".into(), allowed.into());
    }
    let state = serde_json::to_value(&state).map_err(AuthnError::crypto)?;
    Ok((options, state))
}

/// The assertion a client sent, if it is one (its size is checked first).
fn parse_assertion(response: &str) -> Option<PublicKeyCredential> {
    if response.len() > MAX_RESPONSE_BYTES {
        return None;
    }
    serde_json::from_str(response).ok()
}

impl AuthenticationService {
    /// Starts a passwordless login: no username is asked for, the
    /// authenticator offers the user's discoverable passkeys for the
    /// tenant's relying party. Throttled per client IP (`AUTH_RATE_LIMIT`).
    /// The ceremony is stored in the shared challenge store (bounded by
    /// the tenant's quota) and completes on any replica, once.
    #[tracing::instrument(
        name = "authn.start_passkey_login",
        skip_all,
        fields(
            operation = "start_passkey_login",
            tenant = %tenant,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn start_passkey_login(
        &self,
        tenant: TenantId,
        client: &ClientInfo,
    ) -> Result<PasskeyCeremony, AuthnError> {
        crate::observe::traced(
            "start_passkey_login",
            async {
                let webauthn = self.webauthn(tenant)?;
                let ctx = self.context(tenant, None);
                let now = ctx.now;
                let keys = [self.ip_key("login", client)];
                if let Some((_, retry_after)) = self
                    .throttle(&keys, self.inner.config.login_rate, now)
                    .await?
                {
                    let attempt = Attempt {
                        user_id: None,
                        username: None,
                        method: AuthMethod::Passkey,
                        reason: FailureReason::Throttled,
                        throttled: Some((ThrottleScope::Ip, retry_after)),
                    };
                    if self.account(tenant).await?.id.is_some() {
                        self.audit_attempt(&ctx, attempt, client).await?;
                    }
                    return Err(AuthnError::Throttled { retry_after });
                }
                let account = self
                    .active_account(&ctx, None, None, AuthMethod::Passkey, client)
                    .await?;
                let (options, state) = assertion_ceremony(webauthn, None)?;
                let purpose = login_purpose();
                let (challenge, expires_at) = if account.is_some() {
                    // Nobody is known yet: the ceremony is stored under an
                    // id of its own (the tenant's quota bounds them).
                    let ceremony = UserId::from_uuid(self.new_id());
                    self.issue_challenge(
                        LOGIN_PREFIX,
                        tenant,
                        ceremony,
                        purpose,
                        serde_json::json!({ "passkey": state }),
                        now,
                    )
                    .await?
                } else {
                    self.phantom_challenge(LOGIN_PREFIX, tenant, &purpose, now)
                        .await?
                };
                Ok(PasskeyCeremony {
                    challenge,
                    options,
                    expires_at,
                })
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Finishes a passwordless login with the browser's assertion (the
    /// JSON of the `PublicKeyCredential`). The assertion's user handle
    /// names the user, who is loaded in the ceremony's tenant only; its
    /// credential must be one of that user's passkeys; the signature,
    /// challenge, origin, RP id and user verification must verify; the
    /// signature counter must grow (a counter that goes back is a
    /// cloned-credential signal: refused and recorded as
    /// `PasskeyRefused`). A locked or expired user is refused as at any
    /// login. Every failure answers [`AuthnError::InvalidCredentials`]
    /// and is recorded.
    #[tracing::instrument(
        name = "authn.finish_passkey_login",
        skip_all,
        fields(
            operation = "finish_passkey_login",
            tenant = tracing::field::Empty,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn finish_passkey_login(
        &self,
        challenge: &SecretString,
        response: &str,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthnError> {
        crate::observe::traced_login(
            "passkey",
            "finish_passkey_login",
            Box::pin(async {
                let now = self.now();
                let pending = match self
                    .take_challenge(LOGIN_PREFIX, challenge, &login_purpose(), now)
                    .await?
                {
                    Lookup::Found(pending) => pending,
                    Lookup::Missing {
                        live_tenant: Some(tenant),
                    } => {
                        self.audit_passkey_attempt(tenant, None, client).await?;
                        return Err(AuthnError::InvalidCredentials);
                    }
                    Lookup::Missing { live_tenant: None } => {
                        return Err(AuthnError::InvalidChallenge);
                    }
                };
                let tenant = pending.tenant_id;
                crate::observe::record_tenant(tenant);
                let webauthn = self.webauthn(tenant)?;
                let ctx = self.context(tenant, None);
                let state = ceremony_state(&pending.payload)?;
                let Some(response) = parse_assertion(response) else {
                    self.audit_passkey_attempt(tenant, None, client).await?;
                    return Err(AuthnError::InvalidCredentials);
                };
                let Some(user_id) = response
                    .get_user_unique_id()
                    .and_then(|b| uuid::Uuid::from_slice(b).ok())
                    .map(UserId::from_uuid)
                else {
                    self.audit_passkey_attempt(tenant, None, client).await?;
                    return Err(AuthnError::InvalidCredentials);
                };
                let Some(user) = self.user(tenant, user_id).await? else {
                    self.audit_passkey_attempt(tenant, None, client).await?;
                    return Err(AuthnError::InvalidCredentials);
                };
                let (id, check) = match self
                    .check_assertion(&ctx, webauthn, &user, &response, state, client)
                    .await?
                {
                    Ok(verified) => verified,
                    Err(reason) => {
                        self.record_failure(&ctx, user_id, reason, false, client)
                            .await?;
                        return Err(AuthnError::InvalidCredentials);
                    }
                };
                self.refuse_unusable(&ctx, &user, user_id, now, client)
                    .await?;
                let Some(account) = self
                    .active_account(&ctx, Some(user_id), None, AuthMethod::Passkey, client)
                    .await?
                else {
                    return Err(AuthnError::InvalidCredentials);
                };
                let ctx = ctx.with_actor(Actor::user(user_id));
                if !self
                    .record_passkey_use(&ctx, user_id, &id, check, client)
                    .await?
                {
                    self.record_failure(
                        &ctx,
                        user_id,
                        FailureReason::PasskeyRefused,
                        false,
                        client,
                    )
                    .await?;
                    return Err(AuthnError::InvalidCredentials);
                }
                let outcome = self
                    .record_user_fact(
                        &ctx,
                        user_id,
                        UserCommand::RecordAuthentication {
                            method: AuthMethod::Passkey,
                            client: client.clone(),
                        },
                    )
                    .await?;
                self.open_session_with(
                    &ctx,
                    &outcome.state,
                    &account,
                    AuthMethod::Passkey,
                    Some(id),
                    client,
                )
                .await
            }),
            crate::observe::outcome,
        )
        .await
    }

    /// Completes a password login's second factor with a passkey: the
    /// assertion answers [`MfaChallenge::passkey_options`](crate::MfaChallenge::passkey_options)
    /// of the same MFA challenge a TOTP code would. Throttled and counted
    /// towards the lockout like a wrong code (`MFA_RATE_LIMIT`); a
    /// challenge allows `challenge_max_attempts` wrong answers; a
    /// cloned-credential signal is refused and recorded.
    #[tracing::instrument(
        name = "authn.verify_mfa_passkey",
        skip_all,
        fields(
            operation = "verify_mfa_passkey",
            tenant = tracing::field::Empty,
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn verify_mfa_passkey(
        &self,
        challenge: &SecretString,
        response: &str,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, AuthnError> {
        crate::observe::traced_mfa(Box::pin(async {
            let now = self.now();
            let response = parse_assertion(response);
            let Lookup::Found(mut pending) = self
                .take_challenge(
                    crate::login::MFA_CHALLENGE_PREFIX,
                    challenge,
                    &ChallengePurpose::mfa(),
                    now,
                )
                .await?
            else {
                return Err(AuthnError::InvalidChallenge);
            };
            let user_id = pending.user_id;
            let tenant = pending.tenant_id;
            crate::observe::record_tenant(tenant);
            let (ctx, user, account) = self
                .begin_mfa_step(&pending, AuthMethod::PasswordPasskey, client, now)
                .await?;
            let then_change_password = pending.payload["then_change_password"]
                .as_bool()
                .unwrap_or(false);
            let verified = match (
                response,
                self.webauthn(tenant),
                pending.payload.get("passkey"),
            ) {
                (Some(response), Ok(webauthn), Some(_)) => {
                    // A user handle, when the authenticator gives one, must
                    // be this user's.
                    let own = response
                        .get_user_unique_id()
                        .is_none_or(|b| b == user_id.as_uuid().as_bytes());
                    let state = ceremony_state(&pending.payload)?;
                    if own {
                        self.check_assertion(&ctx, webauthn, &user, &response, state, client)
                            .await?
                            .ok()
                    } else {
                        None
                    }
                }
                _ => None,
            };
            let accepted = match verified {
                Some((id, check)) => {
                    if self
                        .record_passkey_use(&ctx, user_id, &id, check, client)
                        .await?
                    {
                        Some(id)
                    } else {
                        None
                    }
                }
                None => None,
            };
            let Some(id) = accepted else {
                let command = UserCommand::RecordMfaFailure {
                    client: client.clone(),
                    lockout: Some(self.inner.config.lockout),
                };
                let system = ctx.clone().with_actor(Actor::system());
                self.record_user_fact(&system, user_id, command).await?;
                pending.failures += 1;
                if pending.failures < self.inner.config.challenge_max_attempts {
                    self.put_back_challenge(pending, now).await?;
                }
                return Err(AuthnError::InvalidMfaCode);
            };
            if then_change_password {
                return self
                    .issue_password_ticket(&ctx, user_id, AuthMethod::PasswordPasskey, client)
                    .await;
            }
            let outcome = self
                .record_user_fact(
                    &ctx,
                    user_id,
                    UserCommand::RecordAuthentication {
                        method: AuthMethod::PasswordPasskey,
                        client: client.clone(),
                    },
                )
                .await?;
            self.open_session_with(
                &ctx,
                &outcome.state,
                &account,
                AuthMethod::PasswordPasskey,
                Some(id),
                client,
            )
            .await
            .map(LoginOutcome::Authenticated)
        }))
        .await
    }

    /// Checks an assertion against the user's passkey it names. A
    /// cloned-credential signal is recorded (`PasskeyRefused`) here; the
    /// caller records the failure as its login method does.
    async fn check_assertion(
        &self,
        ctx: &CommandContext,
        webauthn: &Webauthn,
        user: &User,
        response: &PublicKeyCredential,
        state: DiscoverableAuthentication,
        client: &ClientInfo,
    ) -> Result<Result<(PasskeyId, AssertionCheck), FailureReason>, AuthnError> {
        let Some(user_id) = user.id else {
            return Ok(Err(FailureReason::BadPasskey));
        };
        let Ok(id) = PasskeyId::from_bytes(response.get_credential_id()) else {
            return Ok(Err(FailureReason::BadPasskey));
        };
        let Some(stored) = user.passkey(&id) else {
            return Ok(Err(FailureReason::BadPasskey));
        };
        match verify_assertion(webauthn, stored, response, state) {
            Ok(check) => Ok(Ok((id, check))),
            Err(AssertionFailure::Invalid) => Ok(Err(FailureReason::BadPasskey)),
            Err(AssertionFailure::Refused(reason)) => {
                let system = ctx.clone().with_actor(Actor::system());
                let command = UserCommand::RecordPasskeyRefusal {
                    id,
                    reason,
                    client: client.clone(),
                };
                self.record_user_fact(&system, user_id, command).await?;
                Ok(Err(FailureReason::PasskeyRefused))
            }
        }
    }

    /// Records the accepted use of a passkey (its new counter). `false`:
    /// the stream refused it (a concurrent login presented the same or a
    /// higher counter first: the cloned-credential signal again).
    async fn record_passkey_use(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        id: &PasskeyId,
        check: AssertionCheck,
        client: &ClientInfo,
    ) -> Result<bool, AuthnError> {
        let command = UserCommand::RecordPasskeyUse {
            id: id.clone(),
            sign_count: check.sign_count,
            backup_state: check.backup_state,
            client: client.clone(),
        };
        match self.record_user_fact(ctx, user_id, command).await {
            Ok(_) => Ok(true),
            Err(AuthnError::Rejected(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records a passwordless attempt that named no user of the tenant
    /// (where a tenant exists to record it).
    async fn audit_passkey_attempt(
        &self,
        tenant: TenantId,
        user_id: Option<UserId>,
        client: &ClientInfo,
    ) -> Result<(), AuthnError> {
        if self.account(tenant).await?.id.is_none() {
            return Ok(());
        }
        let ctx = self.context(tenant, None);
        let attempt = Attempt {
            user_id,
            username: None,
            method: AuthMethod::Passkey,
            reason: FailureReason::BadPasskey,
            throttled: None,
        };
        self.audit_attempt(&ctx, attempt, client).await
    }
}

/// The ceremony state kept in a challenge's payload.
fn ceremony_state(payload: &serde_json::Value) -> Result<DiscoverableAuthentication, AuthnError> {
    payload
        .get("passkey")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .ok_or(AuthnError::InvalidChallenge)
}
