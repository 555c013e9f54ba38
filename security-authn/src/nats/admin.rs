//! The NATS side of the admin API: issuing the JWTs of stored aggregates,
//! and the life-cycle operations (key rotation and revocation, user
//! revocation, account suspension, policy changes), each of which records
//! its event first and then reissues the JWTs it changes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use security_core::{
    Account, AccountClaims, AccountCommand, AccountId, AdminError, AdminService, Credential,
    CredentialType, DomainError, KeyId, KeyOwner, KeyPurpose, KeySpec, KeyStatus, NewUser,
    Operator, OperatorId, Permissions, Policy, PolicyId, PublicKey, Request, ResourceLimits, User,
    UserCommand, UserId, UserScope,
};
use serde_json::Value;

use super::creds::UserCreds;
use super::error::NatsError;
use super::issue::{
    IssuedUserJwt, NatsIssuer, UserJwtOptions, UserSigner, user_nkey, user_revocations,
};
use super::server::NatsServerConfig;

/// A user JWT reissued after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReissuedUser {
    /// The user.
    pub user_id: UserId,
    /// Its new JWT.
    pub jwt: IssuedUserJwt,
}

/// What a change of an account reissued: its JWT (to hand to the
/// resolver) and the user JWTs whose content changed (to hand to the
/// users; their seeds do not change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reissued {
    /// The account's new JWT.
    pub account_jwt: String,
    /// Users' new JWTs.
    pub users: Vec<ReissuedUser>,
}

/// NATS decentralized auth over the [`AdminService`]: every change is a
/// command on an aggregate (so an event in its stream), and the JWTs are
/// always issued from the aggregates' current state.
///
/// JWTs are not stored: they are derived from the aggregates on demand,
/// and a change returns the JWTs it made stale, reissued. Delivering them
/// (the account JWTs to the server's resolver, the user JWTs to the users)
/// is the caller's part.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::Arc;
///
/// use secrecy::ExposeSecret;
/// use security_authn::{NatsAdmin, NatsTrust, UserJwtOptions, UserSigner};
/// use security_core::*;
/// use security_crypto::{MemoryKeyStore, SystemClock, UuidV7Ids};
/// use security_eventstore::MemoryEventStore;
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let ids = Arc::new(UuidV7Ids);
/// let repo = Repository::new(Arc::new(MemoryEventStore::new()), ids);
/// let admin = AdminService::new(repo, Arc::new(SystemClock), Arc::new(MemoryKeyStore::new()));
/// let nats = NatsAdmin::new(admin.clone());
/// let req = Request::default();
///
/// let operator = admin.create_operator(&req, "Operator").await?;
/// nats.create_system_account(&req, operator, "SYS").await?;
/// let account = admin.create_account(&req, operator, "Orders", AccountClaims::default()).await?;
/// let permissions = Permissions {
///     publish: SubjectPermissions::from_patterns(["orders.>"], ["orders.delete"])?,
///     ..Permissions::default()
/// };
/// let policy = admin
///     .create_policy(&req, account.tenant(), NewPolicy::new("orders").permissions(permissions))
///     .await?;
/// let (user, _) = nats.create_user(&req, account, "alice", BTreeMap::new()).await?;
/// admin.assign_policy(&req, account.tenant(), user, policy).await?;
///
/// // What a nats-server needs, and what the user needs.
/// let config = nats.server_config(operator, &[account]).await?.listen("127.0.0.1:4333");
/// let creds = nats.user_creds(account, user, UserSigner::Default, &UserJwtOptions::default()).await?;
/// assert!(config.render()?.contains("resolver: MEMORY"));
/// assert!(creds.to_file_text().expose_secret().starts_with("-----BEGIN NATS USER JWT-----"));
///
/// // The same checks the server makes.
/// let now = admin.clock().now();
/// let mut trust = NatsTrust::new(&nats.operator_jwt(operator).await?, now)?;
/// trust.add_account(&nats.account_jwt(account).await?)?;
/// let verified = trust.verify_user(creds.jwt(), now)?;
/// assert_eq!(verified.permissions.publish.deny, ["orders.delete"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct NatsAdmin {
    admin: AdminService,
    issuer: NatsIssuer,
}

impl NatsAdmin {
    /// Over an admin service (its key store signs, its clock dates).
    pub fn new(admin: AdminService) -> Self {
        let issuer = NatsIssuer::new(admin.key_store().clone(), admin.clock().clone());
        Self { admin, issuer }
    }

    /// The admin service.
    pub fn admin(&self) -> &AdminService {
        &self.admin
    }

    /// The JWT issuer.
    pub fn issuer(&self) -> &NatsIssuer {
        &self.issuer
    }

    fn now(&self) -> DateTime<Utc> {
        self.admin.clock().now()
    }

    // ----- issuing ----------------------------------------------------------

    /// The operator JWT (self-signed, with its valid signing keys and its
    /// system account).
    pub async fn operator_jwt(&self, operator_id: OperatorId) -> Result<String, NatsError> {
        let operator = self.existing_operator(operator_id).await?;
        let system = match operator.system_account_id {
            Some(id) => Some(self.existing_account(id).await?),
            None => None,
        };
        self.issuer.operator_jwt(&operator, system.as_ref()).await
    }

    /// An account JWT, signed by its operator's active key, with the
    /// revocations of its users and the keys of the accounts it imports
    /// from.
    pub async fn account_jwt(&self, account_id: AccountId) -> Result<String, NatsError> {
        let account = self.existing_account(account_id).await?;
        let operator_id = account
            .operator_id
            .ok_or(DomainError::NotFound { kind: "operator" })?;
        let operator = self.existing_operator(operator_id).await?;
        let revocations = self.revocations(&account).await?;
        let mut imports = BTreeMap::new();
        for import in &account.limits.allowed_imports {
            let other = self.existing_account(import.account).await?;
            if let Some(key) = other.public_key {
                imports.insert(import.account, key.encoded);
            }
        }
        self.issuer
            .account_jwt(&operator, &account, &revocations, &imports)
            .await
    }

    /// The revocations of an account's users: each user's current nkey
    /// with the time up to which its JWTs are stale (sessions revoked, a
    /// policy removed or narrowed: see
    /// [`user_jwt_cutoff`](crate::user_jwt_cutoff)), and every earlier nkey
    /// of the user held by the key store, revoked when it was replaced.
    async fn revocations(
        &self,
        account: &Account,
    ) -> Result<BTreeMap<String, DateTime<Utc>>, NatsError> {
        let Some(account_id) = account.id else {
            return Ok(BTreeMap::new());
        };
        let tenant = account_id.tenant();
        let mut users = Vec::with_capacity(account.users.len());
        let mut policies: BTreeMap<PolicyId, Policy> = BTreeMap::new();
        for user_id in account.users.values() {
            let user = self.admin.user(tenant, *user_id).await?;
            for policy_id in &user.policies {
                if !policies.contains_key(policy_id) {
                    policies.insert(*policy_id, self.admin.policy(tenant, *policy_id).await?);
                }
            }
            let held: Vec<Policy> = user
                .policies
                .iter()
                .filter_map(|id| policies.get(id).cloned())
                .collect();
            users.push((user, held));
        }
        let mut revocations =
            user_revocations(users.iter().map(|(user, held)| (user, held.as_slice())));
        for (user, _) in &users {
            let Some(user_id) = user.id else { continue };
            let keys = self
                .admin
                .key_store()
                .list_keys(KeyOwner::new(tenant, user_id))
                .await?;
            for key in keys {
                let at = match key.status {
                    KeyStatus::Active => continue,
                    KeyStatus::Rotated { at, .. }
                    | KeyStatus::Revoked { at }
                    | KeyStatus::Destroyed { at } => at,
                };
                if key.purpose != KeyPurpose::UserIdentity {
                    continue;
                }
                if let Some(public) = key.public_key {
                    let slot = revocations.entry(public.encoded).or_insert(at);
                    *slot = (*slot).max(at);
                }
            }
        }
        Ok(revocations)
    }

    /// A user JWT, from the user's policies and its account's defaults.
    pub async fn user_jwt(
        &self,
        account_id: AccountId,
        user_id: UserId,
        signer: UserSigner,
        options: &UserJwtOptions,
    ) -> Result<IssuedUserJwt, NatsError> {
        let account = self.existing_account(account_id).await?;
        let user = self.admin.user(account_id.tenant(), user_id).await?;
        self.issue_user(&account, &user, signer, options).await
    }

    async fn issue_user(
        &self,
        account: &Account,
        user: &User,
        signer: UserSigner,
        options: &UserJwtOptions,
    ) -> Result<IssuedUserJwt, NatsError> {
        let account_id = account
            .id
            .ok_or(DomainError::NotFound { kind: "account" })?;
        if user.id.is_none() {
            return Err(DomainError::NotFound { kind: "user" }.into());
        }
        let mut policies: Vec<Policy> = Vec::with_capacity(user.policies.len());
        for policy_id in &user.policies {
            policies.push(self.admin.policy(account_id.tenant(), *policy_id).await?);
        }
        let signer = self.issuer.account_signer(account, signer).await?;
        self.issuer
            .user_jwt(account, user, &policies, &signer, options)
            .await
    }

    /// A user's `.creds` file: a new user JWT and the user's seed, exported
    /// from the key store (the user's nkey must have been made there,
    /// exportable: see [`provision_user_nkey`](Self::provision_user_nkey)).
    pub async fn user_creds(
        &self,
        account_id: AccountId,
        user_id: UserId,
        signer: UserSigner,
        options: &UserJwtOptions,
    ) -> Result<UserCreds, NatsError> {
        let issued = self.user_jwt(account_id, user_id, signer, options).await?;
        let key_id = self
            .user_key_id(account_id, user_id, &issued.user_key)
            .await?
            .ok_or(NatsError::MissingKey("user seed in the key store"))?;
        let seed = self.admin.key_store().export_private_key(key_id).await?;
        UserCreds::new(issued.jwt, seed)
    }

    async fn user_key_id(
        &self,
        account_id: AccountId,
        user_id: UserId,
        public: &str,
    ) -> Result<Option<KeyId>, NatsError> {
        let keys = self
            .admin
            .key_store()
            .list_keys(KeyOwner::new(account_id.tenant(), user_id))
            .await?;
        Ok(keys
            .into_iter()
            .find(|k| {
                k.purpose == KeyPurpose::UserIdentity
                    && matches!(k.status, KeyStatus::Active)
                    && k.public_key.as_ref().is_some_and(|p| p.encoded == public)
            })
            .map(|k| k.key_id))
    }

    /// A server configuration trusting the operator, with the JWTs of its
    /// system account and of `accounts` preloaded.
    pub async fn server_config(
        &self,
        operator_id: OperatorId,
        accounts: &[AccountId],
    ) -> Result<NatsServerConfig, NatsError> {
        let operator = self.existing_operator(operator_id).await?;
        let system = operator
            .system_account_id
            .ok_or(NatsError::MissingSystemAccount)?;
        let operator_jwt = self.operator_jwt(operator_id).await?;
        let mut jwts = vec![self.account_jwt(system).await?];
        for account_id in accounts.iter().filter(|a| **a != system) {
            jwts.push(self.account_jwt(*account_id).await?);
        }
        NatsServerConfig::new(&operator_jwt, jwts.iter().map(String::as_str))
    }

    // ----- setting up -------------------------------------------------------

    /// Creates the operator's system account (no limits) and names it.
    pub async fn create_system_account(
        &self,
        request: &Request,
        operator_id: OperatorId,
        name: &str,
    ) -> Result<AccountId, NatsError> {
        let account_id = self
            .admin
            .create_account(request, operator_id, name, AccountClaims::default())
            .await?;
        self.admin
            .set_system_account(request, operator_id, account_id)
            .await?;
        Ok(account_id)
    }

    /// Creates a user whose first credential is a NATS identity: a new
    /// exportable `U…` nkey in the key store, owned by the user (its seed
    /// goes into the user's `.creds` file). The nkey authenticates to NATS
    /// only: it is not a public-key login credential (a NATS server picks
    /// the nonce a client signs, so it could replay that signature). The account takes the user into
    /// its roster first (`UserAdded`: status, `max_users` and username
    /// checks), then the user's stream starts (`UserCreated`). Repeating a
    /// request with the same idempotency key returns the same user.
    pub async fn create_user(
        &self,
        request: &Request,
        account_id: AccountId,
        username: &str,
        metadata: BTreeMap<String, Value>,
    ) -> Result<(UserId, PublicKey), NatsError> {
        let tenant = account_id.tenant();
        let user_id = UserId::from_uuid(self.admin.new_id(
            request,
            account_id.as_uuid(),
            "nats-user",
        ));
        let existing = self.admin.user(tenant, user_id).await?;
        if existing.id.is_some() {
            let key = match existing.credential(CredentialType::NatsIdentity) {
                Some(Credential::NatsIdentity { key }) => key.clone(),
                _ => return Err(NatsError::MissingKey("user")),
            };
            return Ok((user_id, key));
        }
        let spec = KeySpec {
            exportable: true,
            ..KeySpec::new(KeyOwner::new(tenant, user_id), KeyPurpose::UserIdentity)
        };
        let info = self.admin.key_store().create_key(spec).await?;
        let key = info
            .public_key
            .filter(|k| k.encoded.starts_with('U'))
            .ok_or(NatsError::InvalidKey("user key from the key store"))?;
        let created = self
            .create_user_streams(
                request,
                account_id,
                user_id,
                username,
                key.clone(),
                metadata,
            )
            .await;
        if let Err(e) = created {
            // The user does not exist: its key must not stay usable.
            let _ = self.admin.key_store().revoke_key(info.key_id).await;
            return Err(e);
        }
        Ok((user_id, key))
    }

    async fn create_user_streams(
        &self,
        request: &Request,
        account_id: AccountId,
        user_id: UserId,
        username: &str,
        key: PublicKey,
        metadata: BTreeMap<String, Value>,
    ) -> Result<(), NatsError> {
        let new_user = NewUser {
            username: username.to_owned(),
            credential: Credential::NatsIdentity { key },
            metadata,
            must_change_password: false,
        };
        self.admin
            .create_user_with_id(request, account_id, user_id, new_user)
            .await?;
        Ok(())
    }

    /// Gives a user a NATS identity: a new exportable `U…` nkey in the key
    /// store (its seed goes into the user's `.creds` file) recorded as the
    /// user's NATS identity credential (`CredentialsUpdated`), which never
    /// logs in to the login service. A previous nkey
    /// of the user held by the key store is revoked there, and its JWTs
    /// are refused once the account JWT is reissued.
    pub async fn provision_user_nkey(
        &self,
        request: &Request,
        account_id: AccountId,
        user_id: UserId,
    ) -> Result<PublicKey, NatsError> {
        let tenant = account_id.tenant();
        let user = self.admin.user(tenant, user_id).await?;
        if user.id.is_none() || user.account_id != Some(account_id) {
            return Err(DomainError::NotFound { kind: "user" }.into());
        }
        let previous = match user_nkey(&user) {
            Some(old) => self.user_key_id(account_id, user_id, old).await?,
            None => None,
        };
        let spec = KeySpec {
            exportable: true,
            ..KeySpec::new(KeyOwner::new(tenant, user_id), KeyPurpose::UserIdentity)
        };
        let info = self.admin.key_store().create_key(spec).await?;
        let key = info
            .public_key
            .filter(|k| k.encoded.starts_with('U'))
            .ok_or(NatsError::InvalidKey("user key from the key store"))?;
        self.admin
            .user_command(
                request,
                tenant,
                user_id,
                UserCommand::UpdateCredentials {
                    new_credentials: Credential::NatsIdentity { key: key.clone() },
                    must_change: false,
                },
            )
            .await?;
        if let Some(old) = previous {
            self.admin.key_store().revoke_key(old).await?;
        }
        Ok(key)
    }

    // ----- life cycle -------------------------------------------------------

    /// Rotates the operator's signing key (`SigningKeyRotated`): a new key
    /// signs accounts from now on; the old one stays in the operator JWT,
    /// so the account JWTs it signed stay valid until it is revoked.
    /// Returns the new key and the new operator JWT.
    pub async fn rotate_operator_key(
        &self,
        request: &Request,
        operator_id: OperatorId,
    ) -> Result<(KeyId, String), NatsError> {
        let key_id = self.admin.rotate_operator_key(request, operator_id).await?;
        Ok((key_id, self.operator_jwt(operator_id).await?))
    }

    /// Revokes an operator key (`SigningKeyRevoked`, and in the key
    /// store): the new operator JWT no longer lists it, so the server
    /// refuses the account JWTs it signed; reissue those accounts (with
    /// [`account_jwt`](Self::account_jwt)) for their users to connect.
    /// The identity key cannot be revoked this way without ending the
    /// operator.
    pub async fn revoke_operator_key(
        &self,
        request: &Request,
        operator_id: OperatorId,
        key_id: KeyId,
        reason: &str,
    ) -> Result<String, NatsError> {
        let operator = self.existing_operator(operator_id).await?;
        if operator.identity_key_id == Some(key_id) {
            return Err(NatsError::OperatorIdentityRevoked);
        }
        self.admin
            .revoke_operator_key(request, operator_id, key_id, reason)
            .await?;
        self.operator_jwt(operator_id).await
    }

    /// Adds a signing key to an account (`AccountSigningKeyAdded`),
    /// optionally scoped with a template. Unscoped, it becomes the default
    /// signer of user JWTs: this is how an account key is rotated, and the
    /// older keys stay valid until revoked. Returns the key and the new
    /// account JWT.
    pub async fn add_account_signing_key(
        &self,
        request: &Request,
        account_id: AccountId,
        scope: Option<UserScope>,
    ) -> Result<(KeyId, String), NatsError> {
        let tenant = account_id.tenant();
        let info = self
            .admin
            .key_store()
            .create_key(KeySpec::new(
                KeyOwner::new(tenant, account_id),
                KeyPurpose::AccountSigning,
            ))
            .await?;
        let public_key = info
            .public_key
            .filter(|k| k.encoded.starts_with('A'))
            .ok_or(NatsError::InvalidKey("account key from the key store"))?;
        let ctx = self.admin.context(tenant, request, "");
        self.admin
            .repository()
            .execute::<Account>(
                account_id,
                &AccountCommand::AddSigningKey {
                    key_id: info.key_id,
                    public_key,
                    scope,
                },
                &ctx,
            )
            .await
            .map_err(AdminError::from)?;
        Ok((info.key_id, self.account_jwt(account_id).await?))
    }

    /// Rotates an account's signing key: adds a new unscoped one, which
    /// signs users from now on. Users signed by the older keys keep
    /// connecting until those keys are revoked.
    pub async fn rotate_account_signing_key(
        &self,
        request: &Request,
        account_id: AccountId,
    ) -> Result<(KeyId, String), NatsError> {
        self.add_account_signing_key(request, account_id, None)
            .await
    }

    /// Revokes an account signing key (`AccountSigningKeyRevoked`, and in
    /// the key store): the new account JWT no longer lists it, so the
    /// server refuses every user JWT it signed. Returns the account JWT.
    pub async fn revoke_account_signing_key(
        &self,
        request: &Request,
        account_id: AccountId,
        key_id: KeyId,
    ) -> Result<String, NatsError> {
        let ctx = self.admin.context(account_id.tenant(), request, "");
        self.admin
            .repository()
            .execute::<Account>(
                account_id,
                &AccountCommand::RevokeSigningKey { key_id },
                &ctx,
            )
            .await
            .map_err(AdminError::from)?;
        match self.admin.key_store().revoke_key(key_id).await {
            Ok(_)
            | Err(
                security_core::KeyStoreError::Revoked(_)
                | security_core::KeyStoreError::Destroyed(_),
            ) => {}
            Err(e) => return Err(e.into()),
        }
        self.account_jwt(account_id).await
    }

    /// Revokes every JWT issued to a user so far (`SessionsRevoked`): the
    /// new account JWT lists the user's nkey in `revocations`, and the
    /// server refuses JWTs issued at or before now. A JWT issued later is
    /// accepted again (its `iat` is the next second). Returns the account
    /// JWT.
    pub async fn revoke_user(
        &self,
        request: &Request,
        account_id: AccountId,
        user_id: UserId,
        reason: &str,
    ) -> Result<String, NatsError> {
        self.admin
            .user_command(
                request,
                account_id.tenant(),
                user_id,
                UserCommand::RevokeSessions {
                    reason: reason.to_owned(),
                },
            )
            .await?;
        self.account_jwt(account_id).await
    }

    /// Suspends an account (`AccountSuspended`): its new JWT admits no
    /// connection and revokes every user issued until now. Returns it.
    pub async fn suspend_account(
        &self,
        request: &Request,
        account_id: AccountId,
        reason: &str,
    ) -> Result<String, NatsError> {
        self.admin
            .suspend_account(request, account_id, reason)
            .await?;
        self.account_jwt(account_id).await
    }

    /// Lifts a suspension (`AccountReactivated`): the new account JWT
    /// admits the users again (those revoked one by one stay revoked).
    pub async fn reactivate_account(
        &self,
        request: &Request,
        account_id: AccountId,
    ) -> Result<String, NatsError> {
        self.admin.reactivate_account(request, account_id).await?;
        self.account_jwt(account_id).await
    }

    /// Replaces a policy's permissions (`PermissionsUpdated`) and reissues
    /// the JWT of every user of the account holding the policy. When the
    /// change takes anything away (it is not a plain widening: see
    /// [`Permissions::covers`]), the JWTs issued before it are revoked by the
    /// account JWT: hand the new account JWT (from
    /// [`account_jwt`](Self::account_jwt)) to the server's resolver.
    pub async fn update_policy_permissions(
        &self,
        request: &Request,
        account_id: AccountId,
        policy_id: PolicyId,
        permissions: Permissions,
    ) -> Result<Vec<ReissuedUser>, NatsError> {
        self.admin
            .update_policy_permissions(request, account_id.tenant(), policy_id, permissions)
            .await?;
        self.reissue_users(account_id, Some(policy_id)).await
    }

    /// Replaces a policy's limits (`LimitsUpdated`) and reissues the JWT of
    /// every user of the account holding the policy.
    pub async fn update_policy_limits(
        &self,
        request: &Request,
        account_id: AccountId,
        policy_id: PolicyId,
        limits: ResourceLimits,
    ) -> Result<Vec<ReissuedUser>, NatsError> {
        self.admin
            .update_policy_limits(request, account_id.tenant(), policy_id, limits)
            .await?;
        self.reissue_users(account_id, Some(policy_id)).await
    }

    /// Replaces the permissions every user of the account inherits
    /// (`DefaultPermissionsUpdated`): reissues the account JWT and every
    /// user's JWT.
    pub async fn update_default_permissions(
        &self,
        request: &Request,
        account_id: AccountId,
        permissions: Permissions,
    ) -> Result<Reissued, NatsError> {
        self.admin
            .update_default_permissions(request, account_id, permissions)
            .await?;
        Ok(Reissued {
            account_jwt: self.account_jwt(account_id).await?,
            users: self.reissue_users(account_id, None).await?,
        })
    }

    /// Reissues the JWTs of the account's users (holding `policy`, if
    /// given) with the default signer and options. Users who may not have
    /// one (locked, expired, without nkey) are left out.
    pub async fn reissue_users(
        &self,
        account_id: AccountId,
        policy: Option<PolicyId>,
    ) -> Result<Vec<ReissuedUser>, NatsError> {
        let account = self.existing_account(account_id).await?;
        let now = self.now();
        let mut out = Vec::new();
        for user_id in account.users.values() {
            let user = self.admin.user(account_id.tenant(), *user_id).await?;
            if policy.is_some_and(|p| !user.policies.contains(&p))
                || user_nkey(&user).is_none()
                || user.check_can_authenticate(now).is_err()
            {
                continue;
            }
            let jwt = self
                .issue_user(
                    &account,
                    &user,
                    UserSigner::Default,
                    &UserJwtOptions::default(),
                )
                .await?;
            out.push(ReissuedUser {
                user_id: *user_id,
                jwt,
            });
        }
        Ok(out)
    }

    async fn existing_operator(&self, operator_id: OperatorId) -> Result<Operator, NatsError> {
        let operator = self.admin.operator(operator_id).await?;
        if operator.id.is_none() {
            return Err(DomainError::NotFound { kind: "operator" }.into());
        }
        Ok(operator)
    }

    async fn existing_account(&self, account_id: AccountId) -> Result<Account, NatsError> {
        let account = self.admin.account(account_id).await?;
        if account.id.is_none() {
            return Err(DomainError::NotFound { kind: "account" }.into());
        }
        Ok(account)
    }
}
