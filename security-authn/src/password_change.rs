//! A user changing its own password with the current one: a password
//! check like a login's, under the same throttle, verification budget and
//! lockout.
//!
//! The current password is verified only under a lease of the user's
//! budget in the [`AttemptLedger`](security_core::AttemptLedger) (the one
//! a login takes), so simultaneous wrong guesses through this door on any
//! replicas cost at most the lockout limit of verifications, each failure
//! is recorded and counts towards the lock, and a locked user is answered
//! as a login answers it whatever the password.

use secrecy::SecretString;
use security_core::{
    Actor, AttemptOutcome, ClientInfo, CommandContext, FailureReason, TenantId, User, UserId,
    UserStatus, fold_username,
};

use crate::error::AuthnError;
use crate::guard::{Gate, lock_end, user_key};
use crate::login::username_rate_key;
use crate::service::AuthenticationService;

impl AuthenticationService {
    /// Changes a user's own password: needs the current one, and the new
    /// one must meet the policy and not be one of the last passwords.
    /// Every session of the user is revoked.
    ///
    /// The current password is checked exactly as a login checks it:
    /// throttled per client IP and per username (`AUTH_RATE_LIMIT`, the
    /// login's own counters), verified under a lease of the user's
    /// verification budget (simultaneous wrong guesses on any replicas
    /// cost at most the lockout limit of verifications), a wrong one
    /// recorded as a failed login that locks the user like one. A locked
    /// user gets [`AuthnError::UserLocked`] whatever the password, as a
    /// login does; a lock that lands while the password is verified is
    /// answered like a wrong password.
    #[tracing::instrument(
        name = "authn.change_password",
        skip_all,
        fields(
            operation = "change_password",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn change_password(
        &self,
        tenant: TenantId,
        user_id: UserId,
        current: &SecretString,
        new: &SecretString,
        client: &ClientInfo,
    ) -> Result<(), AuthnError> {
        crate::observe::traced(
            "change_password",
            self.change_password_gated(tenant, user_id, current, new, client),
            crate::observe::outcome,
        )
        .await
    }

    /// A password change through the throttle and the verification gate.
    async fn change_password_gated(
        &self,
        tenant: TenantId,
        user_id: UserId,
        current: &SecretString,
        new: &SecretString,
        client: &ClientInfo,
    ) -> Result<(), AuthnError> {
        let user = self.existing_user(tenant, user_id).await?;
        let now = self.now();
        let keys = [
            self.ip_key("login", client),
            Some(username_rate_key(tenant, &fold_username(&user.username))),
        ];
        if let Some((_, retry_after)) = self
            .throttle(&keys, self.inner.config.login_rate, now)
            .await?
        {
            return Err(AuthnError::Throttled { retry_after });
        }
        let ctx = self.context(tenant, Some(Actor::user(user_id)));
        if user.is_locked_at(now) {
            return self
                .refuse_locked(&ctx, user_id, lock_end(&user), current, client)
                .await
                .map(|_| ());
        }
        if user.status == UserStatus::Expired {
            return Err(AuthnError::UserExpired);
        }
        let key = user_key(tenant, user_id);
        let policy = self.attempt_policy(false);
        let (lease, waited) = match self.gate(&key, &policy, Some((tenant, user_id))).await? {
            Gate::Lease(lease, waited) => (lease, waited),
            Gate::Locked(until) => {
                return self
                    .refuse_locked(&ctx, user_id, until, current, client)
                    .await
                    .map(|_| ());
            }
        };
        // After a wait, verify against the user as the verifications in
        // flight left it.
        let user = if waited {
            match self.user(tenant, user_id).await {
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
            .change_password_leased(&ctx, &user, current, new, client)
            .await;
        if let Err(error) = self.settle(&key, lease, outcome, &policy).await {
            // The lease expires by itself; the change's own answer stands.
            tracing::warn!(%error, "could not settle a verification lease");
        }
        result
    }

    /// The part of a password change that runs under a verification lease;
    /// also says how the lease settles. A right password settles as
    /// released: the change does not reset the user's failure count (only
    /// a login does), so the ledger keeps counting with the stream.
    async fn change_password_leased(
        &self,
        ctx: &CommandContext,
        user: &User,
        current: &SecretString,
        new: &SecretString,
        client: &ClientInfo,
    ) -> (Result<(), AuthnError>, AttemptOutcome) {
        let Some(user_id) = user.id else {
            return (
                Err(AuthnError::InvalidCredentials),
                AttemptOutcome::Released,
            );
        };
        let verified = match self.verify_password(user.password_hash(), current).await {
            Ok(verified) => verified,
            Err(e) => return (Err(e), AttemptOutcome::Released),
        };
        if !verified {
            return match self
                .record_failure(ctx, user_id, FailureReason::BadPassword, true, client)
                .await
            {
                Ok(()) => (Err(AuthnError::InvalidCredentials), AttemptOutcome::Failure),
                Err(e) => (Err(e), AttemptOutcome::Released),
            };
        }
        // The password was right: a lock that landed meanwhile is answered
        // like a wrong password (the answer never tells it was right).
        match self.user(ctx.tenant_id, user_id).await {
            Ok(Some(now_user)) if !now_user.is_locked_at(ctx.now) => {}
            Ok(_) => {
                let recorded = self
                    .record_failure(ctx, user_id, FailureReason::UserLocked, false, client)
                    .await;
                return (
                    recorded.and(Err(AuthnError::InvalidCredentials)),
                    AttemptOutcome::Released,
                );
            }
            Err(e) => return (Err(e), AttemptOutcome::Released),
        }
        let changed = async {
            self.check_new_password(user, new).await?;
            self.set_password(ctx, user_id, new, false).await
        }
        .await;
        (changed.map(|_| ()), AttemptOutcome::Released)
    }
}
