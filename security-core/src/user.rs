//! The User: belongs to exactly one account; holds credentials, policies,
//! roles, MFA state and its authentication history.
//!
//! Secrets arrive sealed ([`SealedSecret`]): the password hash, the TOTP
//! secret and the backup-code hashes are encrypted with the user's data key
//! before a command is built, so the aggregate and its events never hold
//! them in clear, and published events carry none of them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aggregate::{Aggregate, CommandContext};
use crate::error::{DomainError, validate_name};
use crate::ids::{AccountId, PolicyId, UserId};
use crate::impl_domain_event;
use crate::keys::PublicKey;
use crate::limits::{self, LimitExceeded};
use crate::passkey::{
    MAX_PASSKEYS_PER_USER, PasskeyId, PasskeyRefusal, RegisteredPasskey, check_passkey_name,
};
use crate::role::RoleName;
use crate::sealed::SealedSecret;
use crate::snapshot::SnapshotCodec;
use crate::username::validate_username;

/// How many past password hashes a user keeps (the password policy checks
/// the newest of them).
pub const PASSWORD_HISTORY_KEPT: usize = 24;

/// The longest user agent recorded, in bytes; longer ones are cut.
pub const MAX_USER_AGENT_LEN: usize = 512;

/// A credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credential {
    /// A password: its argon2id PHC string, sealed.
    Password {
        /// The sealed hash.
        hash: SealedSecret,
    },
    /// A public key that logs in by signing the login service's
    /// challenge (`AuthenticationService::complete_public_key_login`).
    PublicKey {
        /// The key (its algorithm is inside).
        key: PublicKey,
    },
    /// The user's NATS identity: the `U…` nkey its user JWTs name and its
    /// `.creds` seed belongs to. It authenticates to a NATS server, never to
    /// the login service: a NATS server the device connects to chooses the
    /// nonce the device signs, so a signature made for NATS must prove
    /// nothing anywhere else.
    NatsIdentity {
        /// The public nkey.
        key: PublicKey,
    },
    /// An API token, stored as a keyed hash (useless without the hashing
    /// key, and the token is 256 random bits).
    Token {
        /// Keyed hash of the token.
        token_hash: String,
        /// When it stops working (`None`: never).
        expires_at: Option<DateTime<Utc>>,
    },
}

/// The kind of a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialType {
    /// A password.
    Password,
    /// A public key.
    PublicKey,
    /// A NATS identity nkey.
    NatsIdentity,
    /// An API token.
    Token,
    /// A passkey (the user's passkeys are kept apart, in
    /// [`User::passkeys`]; a session revocation of this kind names the
    /// passkey).
    Passkey,
}

impl Credential {
    /// Its kind.
    pub fn credential_type(&self) -> CredentialType {
        match self {
            Self::Password { .. } => CredentialType::Password,
            Self::PublicKey { .. } => CredentialType::PublicKey,
            Self::NatsIdentity { .. } => CredentialType::NatsIdentity,
            Self::Token { .. } => CredentialType::Token,
        }
    }
}

/// The status of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum UserStatus {
    /// May authenticate.
    #[default]
    Active,
    /// May not authenticate (until `until`, if set).
    Locked {
        /// Why.
        reason: String,
        /// Since when.
        since: DateTime<Utc>,
        /// When the lock lifts by itself (`None`: only by an unlock).
        until: Option<DateTime<Utc>>,
    },
    /// May never authenticate again.
    Expired,
}

/// Where an authentication attempt came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The client's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The client's user agent (cut to [`MAX_USER_AGENT_LEN`] bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// A client with an IP and a user agent (cut to a safe length, control
    /// characters replaced).
    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent.map(|ua| {
            let mut cut: String = ua
                .chars()
                .map(|c| if c.is_control() { '\u{fffd}' } else { c })
                .collect();
            if cut.len() > MAX_USER_AGENT_LEN {
                let mut end = MAX_USER_AGENT_LEN;
                while !cut.is_char_boundary(end) {
                    end -= 1;
                }
                cut.truncate(end);
            }
            cut
        });
        Self { ip, user_agent }
    }
}

impl ClientInfo {
    /// Checks what [`ClientInfo::new`] ensures, for a value built by hand:
    /// a user agent of at most [`MAX_USER_AGENT_LEN`] bytes.
    fn check(&self) -> Result<(), LimitExceeded> {
        match &self.user_agent {
            Some(agent) => limits::check_bytes("user_agent", agent, MAX_USER_AGENT_LEN),
            None => Ok(()),
        }
    }
}

/// How a user proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthMethod {
    /// Password alone.
    Password,
    /// Password, then a TOTP code.
    PasswordTotp,
    /// Password, then a backup code.
    PasswordBackupCode,
    /// An API token.
    ApiToken,
    /// A signature over a server nonce by a public-key credential.
    PublicKey,
    /// A refresh token.
    RefreshToken,
    /// A passkey alone (passwordless: user verification on the
    /// authenticator is the second factor).
    Passkey,
    /// Password, then a passkey.
    PasswordPasskey,
}

/// Why an authentication attempt failed (recorded; never shown to the
/// client, which always sees the same error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureReason {
    /// The password did not match.
    BadPassword,
    /// The MFA code did not match, or was replayed.
    BadMfaCode,
    /// The API token did not match or expired.
    BadToken,
    /// The signature over the nonce did not verify.
    BadSignature,
    /// The user is locked.
    UserLocked,
    /// The user has expired.
    UserExpired,
    /// The account is suspended or expired.
    AccountInactive,
    /// Too many attempts: throttled.
    Throttled,
    /// A passkey assertion did not verify, or named no passkey of the user.
    BadPasskey,
    /// A passkey assertion verified but was refused: its signature counter
    /// went back (a cloned authenticator) or its flags changed.
    PasskeyRefused,
}

/// How a second factor was proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum MfaProof {
    /// A TOTP code of this time step.
    Totp {
        /// The RFC 6238 time step (Unix time / period) of the accepted code.
        step: u64,
    },
    /// The backup code at this index of the current set.
    BackupCode {
        /// Its index.
        index: u8,
    },
}

/// When consecutive failures lock a user, and for how long.
///
/// Each lock caused by failures doubles the next one's length (the
/// escalation level), up to `max_lock_secs`. The escalation decays: a
/// successful login resets it, and so does a quiet period of
/// `escalation_reset_secs` after the previous lock ended. So a stranger who
/// fails against a victim's username round after round locks it for
/// `base_lock_secs`, then twice that, and so on, but the victim's next
/// successful login starts the count again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock the user.
    pub max_failures: u32,
    /// The first lock's length, in seconds; each later lock doubles it.
    pub base_lock_secs: u64,
    /// The longest lock, in seconds.
    pub max_lock_secs: u64,
    /// The escalation restarts at the first length once the previous lock
    /// ended this many seconds ago.
    #[serde(default = "default_escalation_reset_secs")]
    pub escalation_reset_secs: u64,
}

/// The reason recorded with a lock caused by failures.
pub const FAILURE_LOCK_REASON: &str = "too many failed attempts";

/// One day: the default quiet period after which lock escalation restarts.
pub const DEFAULT_ESCALATION_RESET_SECS: u64 = 86_400;

fn default_escalation_reset_secs() -> u64 {
    DEFAULT_ESCALATION_RESET_SECS
}

impl LockoutPolicy {
    /// The escalation level a new lock starts at, given the level reached
    /// so far and when the previous lock ended: `level`, or 0 once the
    /// previous lock ended `escalation_reset_secs` before `now`.
    pub fn level_at(
        &self,
        level: u32,
        previous_lock_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> u32 {
        let reset =
            Duration::seconds(i64::try_from(self.escalation_reset_secs).unwrap_or(i64::MAX / 1000));
        match previous_lock_until {
            Some(until) if now >= until + reset => 0,
            _ => level,
        }
    }

    /// The lock length after `previous_lockouts` earlier lockouts.
    pub fn lock_duration(&self, previous_lockouts: u32) -> Duration {
        let factor = 1_u64
            .checked_shl(previous_lockouts.min(32))
            .unwrap_or(u64::MAX);
        let secs = self
            .base_lock_secs
            .saturating_mul(factor)
            .min(self.max_lock_secs);
        Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

/// The MFA state of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaState {
    /// Whether MFA is enabled (enrolment confirmed).
    pub enabled: bool,
    /// The TOTP secret of an enrolment started but not yet confirmed.
    pub pending_secret: Option<SealedSecret>,
    /// The confirmed TOTP secret.
    pub secret: Option<SealedSecret>,
    /// The newest TOTP time step accepted: codes of this step or older are
    /// refused (each code works once).
    pub last_step: Option<u64>,
    /// The sealed hashes of the current backup codes.
    pub backup_codes: Option<SealedSecret>,
    /// How many backup codes the current set has.
    pub backup_code_count: u8,
    /// Indexes of the current set already used.
    pub backup_codes_used: BTreeSet<u8>,
}

impl MfaState {
    /// How many backup codes are left.
    pub fn backup_codes_remaining(&self) -> u8 {
        let used = u8::try_from(self.backup_codes_used.len()).unwrap_or(u8::MAX);
        self.backup_code_count.saturating_sub(used)
    }
}

/// Commands of a user.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// Creates the user. The account must have taken it into its roster
    /// first (`AccountCommand::AddUser`), which enforces status, limits and
    /// unique usernames.
    CreateUser {
        /// The new user's id.
        user_id: UserId,
        /// Its account.
        account_id: AccountId,
        /// Its username.
        username: String,
        /// Its first credential.
        credentials: Credential,
        /// Free-form metadata.
        metadata: BTreeMap<String, Value>,
        /// Whether the password must be changed at the next login.
        must_change_password: bool,
    },
    /// Gives the user a policy (which must exist in the tenant: the caller checks).
    AssignPolicy {
        /// The policy.
        policy_id: PolicyId,
    },
    /// Takes a policy away.
    RemovePolicy {
        /// The policy.
        policy_id: PolicyId,
    },
    /// Replaces the credential of the same type (a password change keeps
    /// the old hash in the history and revokes every session).
    UpdateCredentials {
        /// The new credential.
        new_credentials: Credential,
        /// Whether it must be changed at the next login (temporary password).
        must_change: bool,
    },
    /// Locks the user and revokes its sessions.
    LockUser {
        /// Why.
        reason: String,
        /// When the lock lifts by itself (`None`: only by an unlock).
        until: Option<DateTime<Utc>>,
    },
    /// Lifts a lock.
    UnlockUser,
    /// Expires the user for good.
    ExpireUser,
    /// Gives the user a role (a custom one must be defined: the caller checks).
    AssignRole {
        /// The role.
        role: RoleName,
    },
    /// Takes a role away.
    RemoveRole {
        /// The role.
        role: RoleName,
    },
    /// Starts TOTP enrolment with a new sealed secret.
    StartMfaEnrollment {
        /// The sealed TOTP secret.
        secret: SealedSecret,
    },
    /// Confirms enrolment after a first valid code of `step`.
    ConfirmMfaEnrollment {
        /// The time step of the code that proved the enrolment.
        step: u64,
    },
    /// Disables MFA.
    DisableMfa,
    /// Replaces the backup codes.
    RegenerateBackupCodes {
        /// The sealed list of code hashes.
        codes: SealedSecret,
        /// How many codes it holds.
        count: u8,
    },
    /// Records a second factor proved (refuses a replayed TOTP step or a
    /// used backup code).
    RecordMfaSuccess {
        /// What was proved.
        proof: MfaProof,
        /// Where from.
        client: ClientInfo,
    },
    /// Records a wrong second factor.
    RecordMfaFailure {
        /// Where from.
        client: ClientInfo,
        /// Locks the user when failures reach the policy's limit.
        lockout: Option<LockoutPolicy>,
    },
    /// Records a successful authentication (resets the failure count).
    RecordAuthentication {
        /// How.
        method: AuthMethod,
        /// Where from.
        client: ClientInfo,
    },
    /// Records a failed authentication; may lock the user.
    RecordAuthenticationFailure {
        /// Why.
        reason: FailureReason,
        /// Where from.
        client: ClientInfo,
        /// Locks the user when failures reach the policy's limit.
        lockout: Option<LockoutPolicy>,
    },
    /// Marks the password expired: it must be changed at the next login.
    ExpirePassword,
    /// Revokes every session and refresh-token family of the user.
    RevokeSessions {
        /// Why.
        reason: String,
    },
    /// Replaces the password hash with a hash of the same password made
    /// with stronger parameters (after a successful login): not a password
    /// change, so no history entry and no session revocation.
    RehashPassword {
        /// The new sealed hash.
        new_hash: SealedSecret,
    },
    /// Registers a passkey (at most [`MAX_PASSKEYS_PER_USER`]; its id must
    /// be new to the user).
    RegisterPasskey {
        /// The verified credential.
        passkey: RegisteredPasskey,
    },
    /// Renames a passkey.
    RenamePasskey {
        /// Which.
        id: PasskeyId,
        /// The new name.
        name: String,
    },
    /// Removes a passkey and revokes the sessions it opened.
    RemovePasskey {
        /// Which.
        id: PasskeyId,
    },
    /// Records a verified passkey assertion: its counter must have grown
    /// (unless the authenticator keeps none).
    RecordPasskeyUse {
        /// Which passkey.
        id: PasskeyId,
        /// The counter presented.
        sign_count: u32,
        /// The backup state presented.
        backup_state: bool,
        /// Where from.
        client: ClientInfo,
    },
    /// Records a passkey assertion that verified but was refused (a
    /// cloned-credential signal).
    RecordPasskeyRefusal {
        /// Which passkey.
        id: PasskeyId,
        /// Why.
        reason: PasskeyRefusal,
        /// Where from.
        client: ClientInfo,
    },
}

/// Events of a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names, reason = "the domain names these events")]
pub enum UserEvent {
    /// The user was created.
    UserCreated {
        /// Its id.
        user_id: UserId,
        /// Its account.
        account_id: AccountId,
        /// Its username.
        username: String,
        /// The kind of its first credential.
        credential_type: CredentialType,
        /// The credential (secret parts sealed).
        credential: Credential,
        /// Free-form metadata.
        #[serde(default)]
        metadata: BTreeMap<String, Value>,
        /// Whether the password must be changed at the next login.
        #[serde(default)]
        must_change_password: bool,
        /// When.
        created_at: DateTime<Utc>,
    },
    /// A policy was assigned.
    PolicyAssigned {
        /// The user.
        user_id: UserId,
        /// The policy.
        policy_id: PolicyId,
        /// When.
        assigned_at: DateTime<Utc>,
    },
    /// A policy was removed.
    PolicyRemoved {
        /// The user.
        user_id: UserId,
        /// The policy.
        policy_id: PolicyId,
        /// When.
        removed_at: DateTime<Utc>,
    },
    /// A credential was replaced.
    CredentialsUpdated {
        /// The user.
        user_id: UserId,
        /// Its kind.
        credential_type: CredentialType,
        /// The credential (secret parts sealed).
        credential: Credential,
        /// Whether it must be changed at the next login.
        #[serde(default)]
        must_change: bool,
        /// When.
        updated_at: DateTime<Utc>,
    },
    /// The user was locked.
    UserLocked {
        /// The user.
        user_id: UserId,
        /// Why.
        reason: String,
        /// When.
        locked_at: DateTime<Utc>,
        /// When the lock lifts by itself.
        #[serde(default)]
        until: Option<DateTime<Utc>>,
        /// For a lock caused by failures: its escalation level (0 for the
        /// first length; see [`LockoutPolicy`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        escalation: Option<u32>,
    },
    /// The user was unlocked.
    UserUnlocked {
        /// The user.
        user_id: UserId,
        /// When.
        unlocked_at: DateTime<Utc>,
    },
    /// The user expired.
    UserExpired {
        /// The user.
        user_id: UserId,
        /// When.
        expired_at: DateTime<Utc>,
    },
    /// A role was assigned.
    RoleAssigned {
        /// The user.
        user_id: UserId,
        /// The role.
        role: RoleName,
        /// When.
        assigned_at: DateTime<Utc>,
    },
    /// A role was removed.
    RoleRemoved {
        /// The user.
        user_id: UserId,
        /// The role.
        role: RoleName,
        /// When.
        removed_at: DateTime<Utc>,
    },
    /// TOTP enrolment started.
    MfaEnrollmentStarted {
        /// The user.
        user_id: UserId,
        /// The sealed secret.
        secret: SealedSecret,
        /// When.
        started_at: DateTime<Utc>,
    },
    /// TOTP enrolment confirmed: MFA is on.
    MfaEnrollmentConfirmed {
        /// The user.
        user_id: UserId,
        /// The time step of the confirming code (used up).
        step: u64,
        /// When.
        confirmed_at: DateTime<Utc>,
    },
    /// MFA was disabled.
    MfaDisabled {
        /// The user.
        user_id: UserId,
        /// When.
        disabled_at: DateTime<Utc>,
    },
    /// A new set of backup codes replaced the old one.
    BackupCodesGenerated {
        /// The user.
        user_id: UserId,
        /// The sealed code hashes.
        codes: SealedSecret,
        /// How many.
        count: u8,
        /// When.
        generated_at: DateTime<Utc>,
    },
    /// A second factor was proved.
    MfaVerified {
        /// The user.
        user_id: UserId,
        /// What was proved.
        proof: MfaProof,
        /// Where from.
        client: ClientInfo,
        /// When.
        verified_at: DateTime<Utc>,
    },
    /// A backup code was used up.
    BackupCodeUsed {
        /// The user.
        user_id: UserId,
        /// Its index.
        index: u8,
        /// How many are left.
        remaining: u8,
        /// When.
        used_at: DateTime<Utc>,
    },
    /// A wrong second factor was given.
    MfaFailed {
        /// The user.
        user_id: UserId,
        /// Where from.
        client: ClientInfo,
        /// Failures in a row, this one included.
        consecutive_failures: u32,
        /// When.
        failed_at: DateTime<Utc>,
    },
    /// The user authenticated.
    UserAuthenticated {
        /// The user.
        user_id: UserId,
        /// How.
        method: AuthMethod,
        /// Where from.
        client: ClientInfo,
        /// When.
        authenticated_at: DateTime<Utc>,
    },
    /// An authentication attempt failed.
    AuthenticationFailed {
        /// The user.
        user_id: UserId,
        /// Why.
        reason: FailureReason,
        /// Where from.
        client: ClientInfo,
        /// Failures in a row, this one included.
        consecutive_failures: u32,
        /// When.
        failed_at: DateTime<Utc>,
    },
    /// The password expired.
    PasswordExpired {
        /// The user.
        user_id: UserId,
        /// When.
        expired_at: DateTime<Utc>,
    },
    /// Every session and refresh-token family issued up to now was revoked
    /// (only those opened with one kind of credential when `credential` is
    /// set: that credential was replaced or revoked).
    SessionsRevoked {
        /// The user.
        user_id: UserId,
        /// Why.
        reason: String,
        /// When.
        revoked_at: DateTime<Utc>,
        /// The kind of credential whose sessions were revoked (`None`:
        /// every session). A consumer that does not look at it revokes too
        /// much, never too little.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<CredentialType>,
        /// With `credential` [`CredentialType::Passkey`]: the one passkey
        /// whose sessions were revoked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        passkey: Option<PasskeyId>,
    },
    /// The password hash was remade with stronger parameters (same password).
    PasswordRehashed {
        /// The user.
        user_id: UserId,
        /// The new sealed hash.
        hash: SealedSecret,
        /// When.
        rehashed_at: DateTime<Utc>,
    },
    /// A passkey was registered (its `registered_at` is when).
    PasskeyRegistered {
        /// The user.
        user_id: UserId,
        /// The passkey.
        passkey: RegisteredPasskey,
    },
    /// A passkey was renamed.
    PasskeyRenamed {
        /// The user.
        user_id: UserId,
        /// Which.
        passkey_id: PasskeyId,
        /// The new name.
        name: String,
        /// When.
        renamed_at: DateTime<Utc>,
    },
    /// A passkey was removed (a `SessionsRevoked` naming it follows).
    PasskeyRemoved {
        /// The user.
        user_id: UserId,
        /// Which.
        passkey_id: PasskeyId,
        /// When.
        removed_at: DateTime<Utc>,
    },
    /// A passkey assertion verified and was accepted.
    PasskeyUsed {
        /// The user.
        user_id: UserId,
        /// Which.
        passkey_id: PasskeyId,
        /// Its new signature counter.
        sign_count: u32,
        /// Its backup state as presented.
        backup_state: bool,
        /// Where from.
        client: ClientInfo,
        /// When.
        used_at: DateTime<Utc>,
    },
    /// A passkey assertion verified but was refused: the counter went
    /// back or the flags changed (a cloned-credential signal).
    PasskeyRefused {
        /// The user.
        user_id: UserId,
        /// Which.
        passkey_id: PasskeyId,
        /// Why.
        reason: PasskeyRefusal,
        /// Where from.
        client: ClientInfo,
        /// When.
        refused_at: DateTime<Utc>,
    },
}

impl_domain_event!(
    UserEvent,
    version = 1,
    types = [
        UserCreated,
        PolicyAssigned,
        PolicyRemoved,
        CredentialsUpdated,
        UserLocked,
        UserUnlocked,
        UserExpired,
        RoleAssigned,
        RoleRemoved,
        MfaEnrollmentStarted,
        MfaEnrollmentConfirmed,
        MfaDisabled,
        BackupCodesGenerated,
        MfaVerified,
        BackupCodeUsed,
        MfaFailed,
        UserAuthenticated,
        AuthenticationFailed,
        PasswordExpired,
        SessionsRevoked,
        PasswordRehashed,
        PasskeyRegistered,
        PasskeyRenamed,
        PasskeyRemoved,
        PasskeyUsed,
        PasskeyRefused,
    ]
);

/// The user's state.
///
/// Serialisable for snapshots: every secret in it is a [`SealedSecret`],
/// so a snapshot holds ciphertext only, as the events do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Its id (`None` before creation).
    pub id: Option<UserId>,
    /// Its account.
    pub account_id: Option<AccountId>,
    /// Its username.
    pub username: String,
    /// Its credentials, at most one of each type.
    pub credentials: Vec<Credential>,
    /// Its policies, in assignment order.
    pub policies: Vec<PolicyId>,
    /// Its roles.
    pub roles: BTreeSet<RoleName>,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, Value>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last authenticated.
    pub last_active: Option<DateTime<Utc>>,
    /// Active, locked or expired.
    pub status: UserStatus,
    /// MFA enrolment, secret, replay guard and backup codes.
    pub mfa: MfaState,
    /// Past password hashes, newest first (at most [`PASSWORD_HISTORY_KEPT`]).
    pub password_history: Vec<SealedSecret>,
    /// When the password was last set.
    pub password_changed_at: Option<DateTime<Utc>>,
    /// Whether the password must be changed at the next login.
    pub password_must_change: bool,
    /// Failed attempts in a row (password or MFA).
    pub consecutive_failures: u32,
    /// The escalation level of locks caused by failures: how many such
    /// locks in a row (grows the next lock; reset by a successful login and
    /// by a quiet period, see [`LockoutPolicy`]).
    pub lockouts: u32,
    /// When the latest lock caused by failures ends (or ended).
    pub last_lock_until: Option<DateTime<Utc>>,
    /// Sessions and tokens issued at or before this instant are revoked.
    pub sessions_revoked_at: Option<DateTime<Utc>>,
    /// Sessions opened with a credential of this kind at or before this
    /// instant are revoked (the credential was replaced or revoked).
    pub credential_sessions_revoked_at: BTreeMap<CredentialType, DateTime<Utc>>,
    /// When a policy was last taken from the user: credentials that carry
    /// permissions (NATS user JWTs) issued before then grant too much.
    pub policies_removed_at: Option<DateTime<Utc>>,
    /// Its passkeys, in registration order.
    #[serde(default)]
    pub passkeys: Vec<RegisteredPasskey>,
}

impl User {
    /// The credential of a type.
    pub fn credential(&self, kind: CredentialType) -> Option<&Credential> {
        self.credentials
            .iter()
            .find(|c| c.credential_type() == kind)
    }

    /// The sealed password hash.
    pub fn password_hash(&self) -> Option<&SealedSecret> {
        match self.credential(CredentialType::Password) {
            Some(Credential::Password { hash }) => Some(hash),
            _ => None,
        }
    }

    /// Whether the user is locked at `now` (a timed lock lifts by itself).
    pub fn is_locked_at(&self, now: DateTime<Utc>) -> bool {
        matches!(&self.status, UserStatus::Locked { until, .. } if until.is_none_or(|u| now < u))
    }

    /// Whether the user may authenticate at `now`.
    pub fn check_can_authenticate(&self, now: DateTime<Utc>) -> Result<(), DomainError> {
        if self.id.is_none() {
            return Err(DomainError::NotFound { kind: "user" });
        }
        match self.status {
            UserStatus::Expired => Err(DomainError::UserExpired),
            _ if self.is_locked_at(now) => Err(DomainError::UserLocked),
            _ => Ok(()),
        }
    }

    /// Whether a session or token issued at `issued_at` was revoked since.
    pub fn is_session_revoked(&self, issued_at: DateTime<Utc>) -> bool {
        self.sessions_revoked_at.is_some_and(|r| issued_at <= r)
    }

    /// Whether a session opened at `started_at` with a credential of kind
    /// `opened_by` was revoked since: all sessions, or that credential's
    /// (replaced or revoked after the session started).
    pub fn is_session_revoked_for(
        &self,
        started_at: DateTime<Utc>,
        opened_by: Option<CredentialType>,
    ) -> bool {
        self.is_session_revoked(started_at)
            || opened_by
                .and_then(|kind| self.credential_sessions_revoked_at.get(&kind))
                .is_some_and(|r| started_at <= *r)
    }

    /// The passkey with this id.
    pub fn passkey(&self, id: &PasskeyId) -> Option<&RegisteredPasskey> {
        self.passkeys.iter().find(|p| p.id == *id)
    }

    /// Whether a password login needs a second factor: TOTP is enabled or
    /// a passkey is registered.
    pub fn needs_second_factor(&self) -> bool {
        self.mfa.enabled || !self.passkeys.is_empty()
    }

    /// Whether a session opened at `started_at` with passkey `id` was
    /// revoked since: all sessions were, or the passkey is no longer the
    /// user's (removed), or was registered again after the session began.
    pub fn is_passkey_session_revoked(&self, started_at: DateTime<Utc>, id: &PasskeyId) -> bool {
        self.is_session_revoked(started_at)
            || self
                .passkey(id)
                .is_none_or(|passkey| passkey.registered_at > started_at)
    }

    fn known_passkey(&self, id: &PasskeyId) -> Result<&RegisteredPasskey, DomainError> {
        self.passkey(id)
            .ok_or(DomainError::NotFound { kind: "passkey" })
    }

    /// The last instant at which any of the user's sessions were revoked
    /// (all of them, or those of one credential): access tokens issued at
    /// or before it may be refused, so later ones must be dated after it.
    pub fn last_session_revocation(&self) -> Option<DateTime<Utc>> {
        self.credential_sessions_revoked_at
            .values()
            .copied()
            .chain(self.sessions_revoked_at)
            .max()
    }

    fn revoke(user_id: UserId, reason: &str, ctx: &CommandContext) -> UserEvent {
        UserEvent::SessionsRevoked {
            user_id,
            reason: reason.to_owned(),
            revoked_at: ctx.now,
            credential: None,
            passkey: None,
        }
    }

    /// The lock that failures cause once they reach the policy's limit.
    /// It does not revoke sessions: a stranger who types wrong passwords
    /// must not be able to log the user out (an admin lock does).
    fn failure_lock(
        &self,
        user_id: UserId,
        failures: u32,
        lockout: Option<&LockoutPolicy>,
        ctx: &CommandContext,
    ) -> Vec<UserEvent> {
        match lockout {
            // An expired user stays expired: a lock would replace that status.
            Some(policy)
                if failures >= policy.max_failures
                    && !self.is_locked_at(ctx.now)
                    && self.status != UserStatus::Expired =>
            {
                let level = policy.level_at(self.lockouts, self.last_lock_until, ctx.now);
                let until = ctx.now + policy.lock_duration(level);
                vec![UserEvent::UserLocked {
                    user_id,
                    reason: FAILURE_LOCK_REASON.to_owned(),
                    locked_at: ctx.now,
                    until: Some(until),
                    escalation: Some(level),
                }]
            }
            _ => Vec::new(),
        }
    }

    #[allow(
        clippy::too_many_lines,
        reason = "one arm per command reads best as one match"
    )]
    fn handle_existing(
        &self,
        user_id: UserId,
        command: &UserCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<UserEvent>, DomainError> {
        let now = ctx.now;
        let events = match command {
            UserCommand::CreateUser { .. } => {
                return Err(DomainError::AlreadyExists { kind: "user" });
            }
            UserCommand::AssignPolicy { policy_id } => {
                if self.policies.contains(policy_id) {
                    return Err(DomainError::PolicyAlreadyAssigned(*policy_id));
                }
                vec![UserEvent::PolicyAssigned {
                    user_id,
                    policy_id: *policy_id,
                    assigned_at: now,
                }]
            }
            UserCommand::RemovePolicy { policy_id } => {
                if !self.policies.contains(policy_id) {
                    return Err(DomainError::PolicyNotAssigned(*policy_id));
                }
                vec![UserEvent::PolicyRemoved {
                    user_id,
                    policy_id: *policy_id,
                    removed_at: now,
                }]
            }
            UserCommand::UpdateCredentials {
                new_credentials,
                must_change,
            } => {
                limits::check_secret("new_credentials", new_credentials)?;
                if self.status == UserStatus::Expired {
                    return Err(DomainError::UserExpired);
                }
                let kind = new_credentials.credential_type();
                let mut events = vec![UserEvent::CredentialsUpdated {
                    user_id,
                    credential_type: kind,
                    credential: new_credentials.clone(),
                    must_change: *must_change,
                    updated_at: now,
                }];
                match kind {
                    CredentialType::Password => {
                        events.push(Self::revoke(user_id, "password changed", ctx));
                    }
                    // An API key or login key replaced or revoked: the
                    // sessions it opened end with it.
                    CredentialType::Token | CredentialType::PublicKey
                        if self.credential(kind).is_some() =>
                    {
                        events.push(UserEvent::SessionsRevoked {
                            user_id,
                            reason: "credential replaced".to_owned(),
                            revoked_at: now,
                            credential: Some(kind),
                            passkey: None,
                        });
                    }
                    _ => {}
                }
                events
            }
            UserCommand::LockUser { reason, until } => {
                validate_name("reason", reason)?;
                if until.is_some_and(|u| u <= now) {
                    return Err(DomainError::invalid("until", "must be in the future"));
                }
                if self.status == UserStatus::Expired {
                    return Err(DomainError::UserExpired);
                }
                if self.is_locked_at(now) {
                    return Err(DomainError::UserLocked);
                }
                vec![
                    UserEvent::UserLocked {
                        user_id,
                        reason: reason.clone(),
                        locked_at: now,
                        until: *until,
                        escalation: None,
                    },
                    Self::revoke(user_id, "user locked", ctx),
                ]
            }
            UserCommand::UnlockUser => {
                if !matches!(self.status, UserStatus::Locked { .. }) {
                    return Err(DomainError::UserNotLocked);
                }
                vec![UserEvent::UserUnlocked {
                    user_id,
                    unlocked_at: now,
                }]
            }
            UserCommand::ExpireUser => {
                if self.status == UserStatus::Expired {
                    return Ok(Vec::new());
                }
                vec![
                    UserEvent::UserExpired {
                        user_id,
                        expired_at: now,
                    },
                    Self::revoke(user_id, "user expired", ctx),
                ]
            }
            UserCommand::AssignRole { role } => {
                if self.roles.contains(role) {
                    return Err(DomainError::RoleAlreadyAssigned(role.to_string()));
                }
                vec![
                    UserEvent::RoleAssigned {
                        user_id,
                        role: role.clone(),
                        assigned_at: now,
                    },
                    Self::revoke(user_id, "roles changed", ctx),
                ]
            }
            UserCommand::RemoveRole { role } => {
                if !self.roles.contains(role) {
                    return Err(DomainError::RoleNotAssigned(role.to_string()));
                }
                vec![
                    UserEvent::RoleRemoved {
                        user_id,
                        role: role.clone(),
                        removed_at: now,
                    },
                    Self::revoke(user_id, "roles changed", ctx),
                ]
            }
            UserCommand::StartMfaEnrollment { secret } => {
                limits::check_secret("secret", secret)?;
                if self.mfa.enabled {
                    return Err(DomainError::InvalidState(
                        "MFA is already enabled; disable it to enrol again",
                    ));
                }
                vec![UserEvent::MfaEnrollmentStarted {
                    user_id,
                    secret: secret.clone(),
                    started_at: now,
                }]
            }
            UserCommand::ConfirmMfaEnrollment { step } => {
                if self.mfa.enabled {
                    return Err(DomainError::InvalidState("MFA is already enabled"));
                }
                if self.mfa.pending_secret.is_none() {
                    return Err(DomainError::InvalidState("no MFA enrolment was started"));
                }
                vec![UserEvent::MfaEnrollmentConfirmed {
                    user_id,
                    step: *step,
                    confirmed_at: now,
                }]
            }
            UserCommand::DisableMfa => {
                if !self.mfa.enabled && self.mfa.pending_secret.is_none() {
                    return Err(DomainError::InvalidState("MFA is not enabled"));
                }
                vec![UserEvent::MfaDisabled {
                    user_id,
                    disabled_at: now,
                }]
            }
            UserCommand::RegenerateBackupCodes { codes, count } => {
                limits::check_secret("codes", codes)?;
                if *count == 0 {
                    return Err(DomainError::invalid("count", "must be at least 1"));
                }
                vec![UserEvent::BackupCodesGenerated {
                    user_id,
                    codes: codes.clone(),
                    count: *count,
                    generated_at: now,
                }]
            }
            UserCommand::RecordMfaSuccess { proof, client } => {
                client.check()?;
                self.check_can_authenticate(now)?;
                if !self.mfa.enabled {
                    return Err(DomainError::InvalidState("MFA is not enabled"));
                }
                let mut events = vec![UserEvent::MfaVerified {
                    user_id,
                    proof: *proof,
                    client: client.clone(),
                    verified_at: now,
                }];
                match proof {
                    MfaProof::Totp { step } => {
                        if self.mfa.last_step.is_some_and(|last| *step <= last) {
                            return Err(DomainError::InvalidState(
                                "this TOTP code was already used",
                            ));
                        }
                    }
                    MfaProof::BackupCode { index } => {
                        if self.mfa.backup_codes.is_none() || *index >= self.mfa.backup_code_count {
                            return Err(DomainError::invalid("index", "no such backup code"));
                        }
                        if self.mfa.backup_codes_used.contains(index) {
                            return Err(DomainError::InvalidState(
                                "this backup code was already used",
                            ));
                        }
                        events.push(UserEvent::BackupCodeUsed {
                            user_id,
                            index: *index,
                            remaining: self.mfa.backup_codes_remaining().saturating_sub(1),
                            used_at: now,
                        });
                    }
                }
                events
            }
            UserCommand::RecordMfaFailure { client, lockout } => {
                client.check()?;
                let failures = self.consecutive_failures.saturating_add(1);
                let mut events = vec![UserEvent::MfaFailed {
                    user_id,
                    client: client.clone(),
                    consecutive_failures: failures,
                    failed_at: now,
                }];
                events.extend(self.failure_lock(user_id, failures, lockout.as_ref(), ctx));
                events
            }
            UserCommand::RecordAuthentication { method, client } => {
                client.check()?;
                self.check_can_authenticate(now)?;
                vec![UserEvent::UserAuthenticated {
                    user_id,
                    method: *method,
                    client: client.clone(),
                    authenticated_at: now,
                }]
            }
            UserCommand::RecordAuthenticationFailure {
                reason,
                client,
                lockout,
            } => {
                client.check()?;
                // An attempt refused because of a lock is recorded but
                // does not count: it verified nothing.
                let failures = if self.is_locked_at(now) {
                    self.consecutive_failures
                } else {
                    self.consecutive_failures.saturating_add(1)
                };
                let mut events = vec![UserEvent::AuthenticationFailed {
                    user_id,
                    reason: *reason,
                    client: client.clone(),
                    consecutive_failures: failures,
                    failed_at: now,
                }];
                events.extend(self.failure_lock(user_id, failures, lockout.as_ref(), ctx));
                events
            }
            UserCommand::ExpirePassword => {
                if self.password_hash().is_none() {
                    return Err(DomainError::InvalidState("user has no password"));
                }
                if self.password_must_change {
                    return Ok(Vec::new());
                }
                vec![UserEvent::PasswordExpired {
                    user_id,
                    expired_at: now,
                }]
            }
            UserCommand::RevokeSessions { reason } => {
                validate_name("reason", reason)?;
                vec![Self::revoke(user_id, reason, ctx)]
            }
            UserCommand::RehashPassword { new_hash } => {
                limits::check_secret("new_hash", new_hash)?;
                if self.status == UserStatus::Expired {
                    return Err(DomainError::UserExpired);
                }
                if self.password_hash().is_none() {
                    return Err(DomainError::InvalidState("user has no password"));
                }
                vec![UserEvent::PasswordRehashed {
                    user_id,
                    hash: new_hash.clone(),
                    rehashed_at: now,
                }]
            }
            UserCommand::RegisterPasskey { passkey } => {
                passkey.check()?;
                if self.status == UserStatus::Expired {
                    return Err(DomainError::UserExpired);
                }
                if self.passkey(&passkey.id).is_some() {
                    return Err(DomainError::AlreadyExists { kind: "passkey" });
                }
                if self.passkeys.len() >= MAX_PASSKEYS_PER_USER {
                    return Err(LimitExceeded::new(
                        "passkeys",
                        limits::Limit::Entries(MAX_PASSKEYS_PER_USER),
                    )
                    .into());
                }
                let mut passkey = passkey.clone();
                passkey.registered_at = now;
                passkey.last_used_at = None;
                vec![UserEvent::PasskeyRegistered { user_id, passkey }]
            }
            UserCommand::RenamePasskey { id, name } => {
                check_passkey_name(name)?;
                if self.known_passkey(id)?.name == *name {
                    return Ok(Vec::new());
                }
                vec![UserEvent::PasskeyRenamed {
                    user_id,
                    passkey_id: id.clone(),
                    name: name.clone(),
                    renamed_at: now,
                }]
            }
            UserCommand::RemovePasskey { id } => {
                self.known_passkey(id)?;
                vec![
                    UserEvent::PasskeyRemoved {
                        user_id,
                        passkey_id: id.clone(),
                        removed_at: now,
                    },
                    UserEvent::SessionsRevoked {
                        user_id,
                        reason: "passkey removed".to_owned(),
                        revoked_at: now,
                        credential: Some(CredentialType::Passkey),
                        passkey: Some(id.clone()),
                    },
                ]
            }
            UserCommand::RecordPasskeyUse {
                id,
                sign_count,
                backup_state,
                client,
            } => {
                client.check()?;
                self.check_can_authenticate(now)?;
                let passkey = self.known_passkey(id)?;
                if (*sign_count > 0 || passkey.sign_count > 0) && *sign_count <= passkey.sign_count
                {
                    return Err(DomainError::InvalidState(
                        "the passkey's signature counter did not grow",
                    ));
                }
                vec![UserEvent::PasskeyUsed {
                    user_id,
                    passkey_id: id.clone(),
                    sign_count: *sign_count,
                    backup_state: *backup_state,
                    client: client.clone(),
                    used_at: now,
                }]
            }
            UserCommand::RecordPasskeyRefusal { id, reason, client } => {
                client.check()?;
                self.known_passkey(id)?;
                vec![UserEvent::PasskeyRefused {
                    user_id,
                    passkey_id: id.clone(),
                    reason: *reason,
                    client: client.clone(),
                    refused_at: now,
                }]
            }
        };
        Ok(events)
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = DomainError;
    // A user's stream grows with every login. Version 3: credential-scoped
    // session revocations, policy removals and passkeys are part of the
    // state.
    const SNAPSHOT: Option<SnapshotCodec<Self>> = Some(SnapshotCodec::json(3));

    fn handle(
        &self,
        command: &UserCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<UserEvent>, DomainError> {
        if let Some(user_id) = self.id {
            return self.handle_existing(user_id, command, ctx);
        }
        let UserCommand::CreateUser {
            user_id,
            account_id,
            username,
            credentials,
            metadata,
            must_change_password,
        } = command
        else {
            return Err(DomainError::NotFound { kind: "user" });
        };
        validate_username(username)?;
        limits::check_metadata("metadata", metadata)?;
        limits::check_secret("credentials", credentials)?;
        if ctx.tenant_id != account_id.tenant() {
            return Err(DomainError::WrongAccount);
        }
        Ok(vec![UserEvent::UserCreated {
            user_id: *user_id,
            account_id: *account_id,
            username: username.clone(),
            credential_type: credentials.credential_type(),
            credential: credentials.clone(),
            metadata: metadata.clone(),
            must_change_password: *must_change_password,
            created_at: ctx.now,
        }])
    }

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::UserCreated {
                user_id,
                account_id,
                username,
                credential,
                metadata,
                must_change_password,
                created_at,
                ..
            } => {
                self.id = Some(*user_id);
                self.account_id = Some(*account_id);
                self.username.clone_from(username);
                self.credentials = vec![credential.clone()];
                self.metadata = metadata.clone();
                self.created_at = Some(*created_at);
                self.status = UserStatus::Active;
                if credential.credential_type() == CredentialType::Password {
                    self.password_changed_at = Some(*created_at);
                    self.password_must_change = *must_change_password;
                }
            }
            UserEvent::PolicyAssigned { policy_id, .. } => {
                if !self.policies.contains(policy_id) {
                    self.policies.push(*policy_id);
                }
            }
            UserEvent::PolicyRemoved {
                policy_id,
                removed_at,
                ..
            } => {
                self.policies.retain(|p| p != policy_id);
                self.policies_removed_at = Some(*removed_at);
            }
            UserEvent::CredentialsUpdated {
                credential_type,
                credential,
                must_change,
                updated_at,
                ..
            } => {
                if *credential_type == CredentialType::Password {
                    if let Some(old) = self.password_hash().cloned() {
                        self.password_history.insert(0, old);
                        self.password_history.truncate(PASSWORD_HISTORY_KEPT);
                    }
                    self.password_changed_at = Some(*updated_at);
                    self.password_must_change = *must_change;
                }
                self.credentials
                    .retain(|c| c.credential_type() != *credential_type);
                self.credentials.push(credential.clone());
            }
            UserEvent::UserLocked {
                reason,
                locked_at,
                until,
                escalation,
                ..
            } => {
                self.status = UserStatus::Locked {
                    reason: reason.clone(),
                    since: *locked_at,
                    until: *until,
                };
                match escalation {
                    Some(level) => {
                        self.lockouts = level.saturating_add(1);
                        self.last_lock_until = *until;
                    }
                    // A failure lock written before escalation levels
                    // were recorded.
                    None if until.is_some() && reason == FAILURE_LOCK_REASON => {
                        self.lockouts = self.lockouts.saturating_add(1);
                        self.last_lock_until = *until;
                    }
                    None => {}
                }
                self.consecutive_failures = 0;
            }
            UserEvent::UserUnlocked { .. } => {
                self.status = UserStatus::Active;
                self.consecutive_failures = 0;
            }
            UserEvent::UserExpired { .. } => self.status = UserStatus::Expired,
            UserEvent::RoleAssigned { role, .. } => {
                self.roles.insert(role.clone());
            }
            UserEvent::RoleRemoved { role, .. } => {
                self.roles.remove(role);
            }
            UserEvent::MfaEnrollmentStarted { secret, .. } => {
                self.mfa.pending_secret = Some(secret.clone());
            }
            UserEvent::MfaEnrollmentConfirmed { step, .. } => {
                self.mfa.secret = self.mfa.pending_secret.take();
                self.mfa.enabled = self.mfa.secret.is_some();
                self.mfa.last_step = Some(*step);
            }
            UserEvent::MfaDisabled { .. } => {
                self.mfa = MfaState::default();
            }
            UserEvent::BackupCodesGenerated { codes, count, .. } => {
                self.mfa.backup_codes = Some(codes.clone());
                self.mfa.backup_code_count = *count;
                self.mfa.backup_codes_used.clear();
            }
            UserEvent::MfaVerified { proof, .. } => {
                if let MfaProof::Totp { step } = proof {
                    self.mfa.last_step =
                        Some(self.mfa.last_step.map_or(*step, |last| last.max(*step)));
                }
            }
            UserEvent::BackupCodeUsed { index, .. } => {
                self.mfa.backup_codes_used.insert(*index);
            }
            UserEvent::MfaFailed {
                consecutive_failures,
                ..
            }
            | UserEvent::AuthenticationFailed {
                consecutive_failures,
                ..
            } => {
                self.consecutive_failures = *consecutive_failures;
            }
            UserEvent::UserAuthenticated {
                authenticated_at, ..
            } => {
                self.last_active = Some(*authenticated_at);
                self.consecutive_failures = 0;
                self.lockouts = 0;
                if matches!(self.status, UserStatus::Locked { until: Some(u), .. } if *authenticated_at >= u)
                {
                    self.status = UserStatus::Active;
                }
            }
            UserEvent::PasswordExpired { .. } => self.password_must_change = true,
            UserEvent::SessionsRevoked {
                revoked_at,
                credential: None,
                ..
            } => {
                self.sessions_revoked_at = Some(*revoked_at);
            }
            UserEvent::SessionsRevoked {
                revoked_at,
                credential: Some(kind),
                passkey: None,
                ..
            } => {
                self.credential_sessions_revoked_at
                    .insert(*kind, *revoked_at);
            }
            UserEvent::PasswordRehashed { hash, .. } => {
                for credential in &mut self.credentials {
                    if let Credential::Password { hash: current } = credential {
                        current.clone_from(hash);
                    }
                }
            }
            UserEvent::PasskeyRegistered { passkey, .. } => {
                self.passkeys.retain(|p| p.id != passkey.id);
                self.passkeys.push(passkey.clone());
            }
            UserEvent::PasskeyRenamed {
                passkey_id, name, ..
            } => {
                if let Some(passkey) = self.passkeys.iter_mut().find(|p| p.id == *passkey_id) {
                    passkey.name.clone_from(name);
                }
            }
            UserEvent::PasskeyRemoved { passkey_id, .. } => {
                self.passkeys.retain(|p| p.id != *passkey_id);
            }
            UserEvent::PasskeyUsed {
                passkey_id,
                sign_count,
                backup_state,
                used_at,
                ..
            } => {
                if let Some(passkey) = self.passkeys.iter_mut().find(|p| p.id == *passkey_id) {
                    passkey.sign_count = passkey.sign_count.max(*sign_count);
                    passkey.backup_state = *backup_state;
                    passkey.last_used_at = Some(*used_at);
                }
            }
            // One passkey's sessions: the passkey is gone from the state,
            // which is what its sessions are checked against. A refusal
            // changes nothing (it is the record).
            UserEvent::SessionsRevoked {
                passkey: Some(_), ..
            }
            | UserEvent::PasskeyRefused { .. } => {}
        }
    }
}
