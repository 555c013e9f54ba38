//! Managing credentials: passwords (create, change, reset), TOTP
//! enrolment, backup codes, API keys, public keys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use security_core::{
    AccountId, Actor, CommandContext, Credential, NewUser, PublicKey, Request, TenantId, User,
    UserCommand, UserId,
};

use crate::backup::{self, BackupCodes, SealedCodes};
use crate::error::AuthnError;
use crate::new_user::NewPasswordUser;
use crate::policy::{PasswordRule, PolicyViolation};
use crate::service::{API_KEY_PREFIX, AuthenticationService, blocking, new_opaque_token};
use crate::totp::{TotpEnrollment, TotpSecret};

/// Characters of generated temporary passwords, by class (no look-alikes).
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
const SPECIAL: &[u8] = b"!#%+-=?@^_";

/// A uniformly random index below `n` (rejection sampling, no modulo bias).
fn random_below(n: usize) -> Result<usize, AuthnError> {
    let n = u8::try_from(n).map_err(|_| AuthnError::crypto(std::fmt::Error))?;
    let limit = u8::MAX - (u8::MAX % n);
    loop {
        let byte = security_crypto::random_bytes::<1>().map_err(AuthnError::crypto)?[0];
        if byte < limit {
            return Ok(usize::from(byte % n));
        }
    }
}

/// A random password that meets any policy with a minimum length up to 24
/// (every character class present).
pub(crate) fn temporary_password(min_length: usize) -> Result<SecretString, AuthnError> {
    let length = min_length.max(20);
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SPECIAL].concat();
    let mut chars = zeroize::Zeroizing::new(Vec::with_capacity(length));
    for class in [UPPER, LOWER, DIGITS, SPECIAL] {
        chars.push(class[random_below(class.len())?]);
    }
    while chars.len() < length {
        chars.push(all[random_below(all.len())?]);
    }
    // Fisher-Yates, so the guaranteed characters are not always first.
    for i in (1..chars.len()).rev() {
        let j = random_below(i + 1)?;
        chars.swap(i, j);
    }
    let text = String::from_utf8(chars.to_vec()).map_err(AuthnError::crypto)?;
    Ok(SecretString::from(text))
}

impl AuthenticationService {
    /// Every rule of the password policy `new` breaks for this user,
    /// including the history (the current password and the ones before it).
    pub(crate) async fn check_new_password(
        &self,
        user: &User,
        new: &SecretString,
    ) -> Result<(), AuthnError> {
        let policy = &self.inner.config.password_policy;
        let mut rules = policy.violations(new);
        if policy.history > 0 && new.expose_secret().len() <= policy.max_bytes {
            let recent = user
                .password_hash()
                .into_iter()
                .chain(user.password_history.iter())
                .take(policy.history);
            for sealed in recent {
                let phc = self.unseal_text(sealed).await?;
                let hasher = std::sync::Arc::clone(&self.inner.hasher);
                let candidate = new.clone();
                if blocking(move || hasher.verify(&candidate, &phc))
                    .await?
                    .unwrap_or(false)
                {
                    rules.push(PasswordRule::RecentlyUsed {
                        history: policy.history,
                    });
                    break;
                }
            }
        }
        if rules.is_empty() {
            Ok(())
        } else {
            Err(PolicyViolation { rules }.into())
        }
    }

    /// Hashes, seals and stores a new password (every session is revoked).
    pub(crate) async fn set_password(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        password: &SecretString,
        must_change: bool,
    ) -> Result<crate::service::UserOutcome, AuthnError> {
        let hash = self.seal_password(ctx.tenant_id, user_id, password).await?;
        self.user_command(
            ctx,
            user_id,
            UserCommand::UpdateCredentials {
                new_credentials: Credential::Password { hash },
                must_change,
            },
        )
        .await
    }

    pub(crate) async fn existing_user(
        &self,
        tenant: TenantId,
        user_id: UserId,
    ) -> Result<User, AuthnError> {
        self.user(tenant, user_id)
            .await?
            .ok_or(AuthnError::Rejected(security_core::DomainError::NotFound {
                kind: "user",
            }))
    }

    /// Creates a user with a password (checked against the policy, hashed
    /// with argon2id, sealed with the new user's data key) through the
    /// admin API. With an idempotency key in the request, the user's id
    /// derives from it, so repeating the request creates nothing twice.
    #[tracing::instrument(
        name = "authn.create_user_with_password",
        skip_all,
        fields(
            operation = "create_user_with_password",
            tenant = %account_id.tenant(),
            user_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn create_user_with_password(
        &self,
        request: &Request,
        account_id: AccountId,
        user: NewPasswordUser,
    ) -> Result<UserId, AuthnError> {
        let NewPasswordUser {
            username,
            password,
            metadata,
            must_change_password,
        } = user;
        crate::observe::traced(
            "create_user_with_password",
            async {
                self.inner.config.password_policy.check(&password)?;
                let admin = &self.inner.admin;
                let user_id = admin.user_id_for(request, account_id);
                crate::observe::record_user(user_id);
                let hash = self
                    .seal_password(account_id.tenant(), user_id, &password)
                    .await?;
                let new_user = NewUser {
                    username,
                    credential: Credential::Password { hash },
                    metadata,
                    must_change_password,
                };
                Ok(admin
                    .create_user_with_id(request, account_id, user_id, new_user)
                    .await?)
            },
            crate::observe::outcome,
        )
        .await
    }

    /// An admin resets a user's password to a random temporary one, which
    /// must be changed at the next login. Returns it, to hand to the user
    /// over a secure channel. Every session of the user is revoked.
    #[tracing::instrument(
        name = "authn.reset_password",
        skip_all,
        fields(
            operation = "reset_password",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn reset_password(
        &self,
        request: &Request,
        tenant: TenantId,
        user_id: UserId,
    ) -> Result<SecretString, AuthnError> {
        crate::observe::traced(
            "reset_password",
            async {
                self.existing_user(tenant, user_id).await?;
                let temporary = temporary_password(self.inner.config.password_policy.min_length)?;
                let hash = self.seal_password(tenant, user_id, &temporary).await?;
                let outcome = self
                    .inner
                    .admin
                    .user_command(
                        request,
                        tenant,
                        user_id,
                        UserCommand::UpdateCredentials {
                            new_credentials: Credential::Password { hash },
                            must_change: true,
                        },
                    )
                    .await?;
                if let Some(revoked_at) = outcome.state.sessions_revoked_at {
                    self.inner.validator.revocations().revoke_user(
                        tenant,
                        user_id,
                        revoked_at,
                        self.now(),
                    );
                }
                Ok(temporary)
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Starts TOTP enrolment: a new secret, sealed in the user's stream, and
    /// what the user needs to add it to an authenticator app. MFA is
    /// enabled only by [`confirm_totp_enrollment`](Self::confirm_totp_enrollment)
    /// with a first valid code. Disable MFA first to enrol again.
    #[tracing::instrument(
        name = "authn.start_totp_enrollment",
        skip_all,
        fields(
            operation = "start_totp_enrollment",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn start_totp_enrollment(
        &self,
        tenant: TenantId,
        user_id: UserId,
    ) -> Result<TotpEnrollment, AuthnError> {
        crate::observe::traced(
            "start_totp_enrollment",
            async {
                let user = self.existing_user(tenant, user_id).await?;
                let secret = TotpSecret::generate()?;
                let enrollment = self.inner.config.totp.enrollment(&secret, &user.username)?;
                let sealed = self
                    .seal_for(tenant, user_id.as_uuid(), secret.expose_secret())
                    .await?;
                let ctx = self.context(tenant, Some(Actor::user(user_id)));
                self.user_command(
                    &ctx,
                    user_id,
                    UserCommand::StartMfaEnrollment { secret: sealed },
                )
                .await?;
                Ok(enrollment)
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Confirms TOTP enrolment with a first valid code (its time step is
    /// used up), enables MFA and returns the first set of backup codes,
    /// shown once. Throttled like MFA logins.
    #[tracing::instrument(
        name = "authn.confirm_totp_enrollment",
        skip_all,
        fields(
            operation = "confirm_totp_enrollment",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn confirm_totp_enrollment(
        &self,
        tenant: TenantId,
        user_id: UserId,
        code: &SecretString,
    ) -> Result<BackupCodes, AuthnError> {
        crate::observe::traced(
            "confirm_totp_enrollment",
            async {
                let user = self.existing_user(tenant, user_id).await?;
                let now = self.now();
                let key = format!("mfa:enroll:{tenant}:{user_id}");
                if let Some((_, retry_after)) = self
                    .throttle(&[Some(key)], self.inner.config.mfa_rate, now)
                    .await?
                {
                    return Err(AuthnError::Throttled { retry_after });
                }
                let Some(sealed) = &user.mfa.pending_secret else {
                    return Err(AuthnError::Rejected(
                        security_core::DomainError::InvalidState("no MFA enrolment was started"),
                    ));
                };
                let secret = TotpSecret::from_bytes(self.unseal(sealed).await?.expose_secret());
                let step = self
                    .inner
                    .config
                    .totp
                    .verify(&secret, code.expose_secret(), now)
                    .ok_or(AuthnError::InvalidMfaCode)?;
                let ctx = self.context(tenant, Some(Actor::user(user_id)));
                self.user_command(&ctx, user_id, UserCommand::ConfirmMfaEnrollment { step })
                    .await?;
                self.new_backup_codes(&ctx, user_id).await
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Turns MFA off (the secret and backup codes are forgotten).
    #[tracing::instrument(
        name = "authn.disable_mfa",
        skip_all,
        fields(
            operation = "disable_mfa",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn disable_mfa(&self, tenant: TenantId, user_id: UserId) -> Result<(), AuthnError> {
        crate::observe::traced(
            "disable_mfa",
            async {
                let ctx = self.context(tenant, Some(Actor::user(user_id)));
                self.user_command(&ctx, user_id, UserCommand::DisableMfa)
                    .await
                    .map(|_| ())
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Replaces the user's backup codes with a new set, shown once.
    #[tracing::instrument(
        name = "authn.regenerate_backup_codes",
        skip_all,
        fields(
            operation = "regenerate_backup_codes",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn regenerate_backup_codes(
        &self,
        tenant: TenantId,
        user_id: UserId,
    ) -> Result<BackupCodes, AuthnError> {
        crate::observe::traced(
            "regenerate_backup_codes",
            async {
                let user = self.existing_user(tenant, user_id).await?;
                if !user.mfa.enabled {
                    return Err(AuthnError::Rejected(
                        security_core::DomainError::InvalidState("MFA is not enabled"),
                    ));
                }
                let ctx = self.context(tenant, Some(Actor::user(user_id)));
                self.new_backup_codes(&ctx, user_id).await
            },
            crate::observe::outcome,
        )
        .await
    }

    /// How many unused backup codes the user has.
    #[tracing::instrument(
        name = "authn.backup_codes_remaining",
        skip_all,
        fields(
            operation = "backup_codes_remaining",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn backup_codes_remaining(
        &self,
        tenant: TenantId,
        user_id: UserId,
    ) -> Result<u8, AuthnError> {
        crate::observe::traced(
            "backup_codes_remaining",
            async {
                Ok(self
                    .existing_user(tenant, user_id)
                    .await?
                    .mfa
                    .backup_codes_remaining())
            },
            crate::observe::outcome,
        )
        .await
    }

    async fn new_backup_codes(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
    ) -> Result<BackupCodes, AuthnError> {
        let count = self.inner.config.backup_code_count.max(1);
        let codes = backup::generate(count)?;
        let mut hashes = Vec::with_capacity(codes.len());
        let mut kid = None;
        for code in codes.codes() {
            let normalized = backup::normalize(code.expose_secret())
                .ok_or_else(|| AuthnError::crypto(std::fmt::Error))?;
            let message = backup::hash_input(user_id, &normalized);
            let (key_id, tag) = self.inner.keys.lookup_hash(ctx.tenant_id, &message).await?;
            if kid.is_some_and(|k| k != key_id) {
                // The key rotated mid-way: start over with the new one.
                return Box::pin(self.new_backup_codes(ctx, user_id)).await;
            }
            kid = Some(key_id);
            hashes.push(URL_SAFE_NO_PAD.encode(tag));
        }
        let kid = kid.ok_or_else(|| AuthnError::crypto(std::fmt::Error))?;
        let plaintext =
            serde_json::to_vec(&SealedCodes { kid, hashes }).map_err(AuthnError::crypto)?;
        let sealed = self
            .seal_for(ctx.tenant_id, user_id.as_uuid(), &plaintext)
            .await?;
        self.user_command(
            ctx,
            user_id,
            UserCommand::RegenerateBackupCodes {
                codes: sealed,
                count,
            },
        )
        .await?;
        Ok(codes)
    }

    /// Issues an API key for a user (replacing any previous one): shown
    /// once; only its keyed hash is stored. It authenticates alone
    /// ([`authenticate_api_key`](Self::authenticate_api_key)) until
    /// `expires_at`.
    #[tracing::instrument(
        name = "authn.issue_api_key",
        skip_all,
        fields(
            operation = "issue_api_key",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn issue_api_key(
        &self,
        tenant: TenantId,
        user_id: UserId,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<SecretString, AuthnError> {
        crate::observe::traced(
            "issue_api_key",
            async {
                self.existing_user(tenant, user_id).await?;
                let key = new_opaque_token(API_KEY_PREFIX, tenant, user_id.as_uuid())?;
                let (kid, tag) = self
                    .inner
                    .keys
                    .lookup_hash(tenant, key.expose_secret().as_bytes())
                    .await?;
                let ctx = self.context(tenant, None);
                self.user_command(
                    &ctx,
                    user_id,
                    UserCommand::UpdateCredentials {
                        new_credentials: Credential::Token {
                            token_hash: format!("{kid}.{}", URL_SAFE_NO_PAD.encode(tag)),
                            expires_at,
                        },
                        must_change: false,
                    },
                )
                .await?;
                Ok(key)
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Makes the user's API key stop working.
    #[tracing::instrument(
        name = "authn.revoke_api_key",
        skip_all,
        fields(
            operation = "revoke_api_key",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn revoke_api_key(
        &self,
        tenant: TenantId,
        user_id: UserId,
    ) -> Result<(), AuthnError> {
        crate::observe::traced(
            "revoke_api_key",
            async {
                self.existing_user(tenant, user_id).await?;
                let ctx = self.context(tenant, None);
                self.user_command(
                    &ctx,
                    user_id,
                    UserCommand::UpdateCredentials {
                        new_credentials: Credential::Token {
                            token_hash: "revoked".to_owned(),
                            expires_at: Some(ctx.now),
                        },
                        must_change: false,
                    },
                )
                .await
                .map(|_| ())
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Registers the user's public key (an Ed25519 key as an nkey `U…` or
    /// base64url) for public-key logins.
    ///
    /// A NATS identity key of the user (the current one, or any the key
    /// store holds for it) is refused: a NATS server chooses the nonce a
    /// NATS client signs, so a key that signs for NATS must never also log
    /// in here.
    #[tracing::instrument(
        name = "authn.set_public_key",
        skip_all,
        fields(
            operation = "set_public_key",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn set_public_key(
        &self,
        tenant: TenantId,
        user_id: UserId,
        key: PublicKey,
    ) -> Result<(), AuthnError> {
        crate::observe::traced(
            "set_public_key",
            async {
                let raw = security_crypto::Ed25519PublicKey::from_public_key(&key)
                    .map_err(AuthnError::crypto)?
                    .to_bytes();
                let user = self.existing_user(tenant, user_id).await?;
                let nats_keys = self
                    .inner
                    .keys
                    .store()
                    .list_keys(security_core::KeyOwner::new(tenant, user_id))
                    .await?
                    .into_iter()
                    .filter(|k| k.purpose == security_core::KeyPurpose::UserIdentity)
                    .filter_map(|k| k.public_key);
                let current = match user.credential(security_core::CredentialType::NatsIdentity) {
                    Some(Credential::NatsIdentity { key }) => Some(key.clone()),
                    _ => None,
                };
                let is_nats_key = current.into_iter().chain(nats_keys).any(|nats| {
                    security_crypto::Ed25519PublicKey::from_public_key(&nats)
                        .is_ok_and(|nats| nats.to_bytes() == raw)
                });
                if is_nats_key {
                    return Err(AuthnError::Rejected(security_core::DomainError::Invalid {
                        field: "public key",
                        reason: "is a NATS identity key, which may not log in",
                    }));
                }
                let ctx = self.context(tenant, None);
                self.user_command(
                    &ctx,
                    user_id,
                    UserCommand::UpdateCredentials {
                        new_credentials: Credential::PublicKey { key },
                        must_change: false,
                    },
                )
                .await
                .map(|_| ())
            },
            crate::observe::outcome,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PasswordPolicy;

    #[test]
    fn temporary_passwords_meet_the_policy_and_differ() {
        let policy = PasswordPolicy::default();
        let a = temporary_password(12).unwrap();
        let b = temporary_password(12).unwrap();
        assert_eq!(policy.check(&a), Ok(()));
        assert_eq!(a.expose_secret().len(), 20);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(temporary_password(30).unwrap().expose_secret().len(), 30);
    }
}
