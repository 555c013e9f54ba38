//! Issuing NATS JWTs from the aggregates: the operator JWT, account JWTs
//! and user JWTs, each signed by a key held in the [`KeyStore`].

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use security_core::{
    Account, AccountId, AccountStatus, Clock, Credential, CredentialType, DomainError, ExportKind,
    KeyId, KeyOwner, KeyPurpose, KeyStatus, KeyStore, Operator, Permissions, Policy, User,
};

use super::claims::{
    ALL_USERS, AccountNats, ClaimType, JWT_VERSION, NO_LIMIT, NatsAccountLimits, NatsClaims,
    NatsExport, NatsImport, NatsPermissions, NatsSigningKey, NatsUserPermissionLimits,
    NatsUserScope, OperatorNats, USER_SCOPE_KIND, UserNats, is_public_key,
};
use super::error::NatsError;
use super::jwt::encode;

/// How long a user JWT lives unless told otherwise: 24 hours. Short-lived
/// credentials limit what a leaked `.creds` file is worth; revocation
/// (through the account JWT) covers the time until then.
pub const DEFAULT_USER_JWT_LIFETIME: Duration = Duration::hours(24);

/// Which account key signs a user JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserSigner {
    /// The newest unscoped signing key that is not revoked; the account's
    /// identity key if it has none.
    #[default]
    Default,
    /// The account's identity key.
    Identity,
    /// A given signing key of the account (scoped or not).
    SigningKey(KeyId),
}

/// A resolved account signer: the key-store key that signs, and what the
/// JWT must say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSigner {
    account_id: AccountId,
    key_id: KeyId,
    public_key: String,
    identity: bool,
    scoped: bool,
}

impl AccountSigner {
    /// The key-store key.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Its public nkey.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Whether it is the account's identity key (no `issuer_account`).
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// Whether it is a scoped key (users it signs carry no permissions).
    pub fn is_scoped(&self) -> bool {
        self.scoped
    }
}

/// Options of a user JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserJwtOptions {
    /// How long it lives from now (`None`: until a policy or the account
    /// expires, or forever). Defaults to [`DEFAULT_USER_JWT_LIFETIME`].
    pub lifetime: Option<Duration>,
    /// When it starts being valid (`None`: at once).
    pub not_before: Option<DateTime<Utc>>,
}

impl Default for UserJwtOptions {
    fn default() -> Self {
        Self {
            lifetime: Some(DEFAULT_USER_JWT_LIFETIME),
            not_before: None,
        }
    }
}

/// A user JWT just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedUserJwt {
    /// The JWT.
    pub jwt: String,
    /// The user's public nkey (`sub`).
    pub user_key: String,
    /// The account's public nkey.
    pub account_key: String,
    /// The key that signed it.
    pub signer_key: String,
    /// `iat` (the next second after the user's revocation cutoff when that
    /// is now or later: see [`user_jwt_cutoff`]).
    pub issued_at: DateTime<Utc>,
    /// `exp`.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a user gets: its subject permissions (the union of the account's
/// defaults and its policies in force) and the tightest limits of those
/// policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EffectiveUserPermissions {
    /// Publish and subscribe permissions, reply rights.
    pub permissions: Permissions,
    /// Most subscriptions (`None`: no limit).
    pub max_subscriptions: Option<u32>,
    /// Largest payload (`None`: no limit).
    pub max_payload_size: Option<u64>,
    /// When the first of its policies stops granting (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Issues NATS JWTs, signing through the key store. Reads the time from
/// the injected clock.
#[derive(Debug, Clone)]
pub struct NatsIssuer {
    keys: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
}

impl NatsIssuer {
    /// An issuer over a key store and a clock.
    pub fn new(keys: Arc<dyn KeyStore>, clock: Arc<dyn Clock>) -> Self {
        Self { keys, clock }
    }

    /// The key store.
    pub fn key_store(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The operator JWT: self-signed by the identity (first) key, listing
    /// every other key still valid as a signing key, and the system
    /// account. `system_account` must be the account the operator names
    /// (or `None` if it names none).
    pub async fn operator_jwt(
        &self,
        operator: &Operator,
        system_account: Option<&Account>,
    ) -> Result<String, NatsError> {
        let now = self.clock.now();
        let identity_id = operator
            .identity_key_id
            .ok_or(NatsError::MissingKey("operator"))?;
        let identity = operator
            .signing_key(identity_id)
            .ok_or(NatsError::MissingKey("operator"))?;
        if !identity.is_valid_at(now) {
            return Err(NatsError::OperatorIdentityRevoked);
        }
        let sub = identity.public_key.encoded.clone();
        if !is_public_key(&sub, 'O') {
            return Err(NatsError::InvalidKey("operator identity key"));
        }
        let mut signing_keys = Vec::new();
        for key in &operator.signing_keys {
            if key.key_id != identity_id && key.is_valid_at(now) {
                if !is_public_key(&key.public_key.encoded, 'O') {
                    return Err(NatsError::InvalidKey("operator signing key"));
                }
                signing_keys.push(key.public_key.encoded.clone());
            }
        }
        let system_account = match (operator.system_account_id, system_account) {
            (None, None) => String::new(),
            (Some(id), Some(account)) if account.id == Some(id) => account_key(account)?.to_owned(),
            _ => return Err(NatsError::MissingSystemAccount),
        };
        let mut claims = NatsClaims {
            aud: None,
            exp: None,
            jti: String::new(),
            iat: now.timestamp(),
            iss: String::new(),
            name: non_empty(&operator.name),
            nbf: None,
            sub: sub.clone(),
            nats: OperatorNats {
                signing_keys,
                system_account,
                claim_type: ClaimType::Operator,
                version: JWT_VERSION,
                ..OperatorNats::default()
            },
        };
        encode(self.keys.as_ref(), identity_id, &sub, &mut claims).await
    }

    /// An account JWT, signed by the operator's active key.
    ///
    /// Limits come from the account, with -1 for every limit it does not
    /// set (NATS reads an absent limit as 0: no connections at all). A
    /// suspended or expired account is written with `conn: 0` and a
    /// revocation of every user issued up to its suspension (or now), so
    /// its users are refused at connect; once its default permissions have
    /// lost something, every user JWT issued before then is revoked too. `revocations` maps user nkeys to
    /// the time up to which their JWTs are revoked (see
    /// [`user_revocations`]); `import_accounts` gives the public key of
    /// each account the account imports from.
    pub async fn account_jwt(
        &self,
        operator: &Operator,
        account: &Account,
        revocations: &BTreeMap<String, DateTime<Utc>>,
        import_accounts: &BTreeMap<AccountId, String>,
    ) -> Result<String, NatsError> {
        let now = self.clock.now();
        if account.operator_id.is_none() || account.operator_id != operator.id {
            return Err(NatsError::WrongOperator);
        }
        let signer = operator
            .active_key()
            .ok_or(NatsError::MissingKey("operator"))?;
        if !signer.is_valid_at(now) {
            return Err(NatsError::SigningKey(signer.key_id));
        }
        let sub = account_key(account)?.to_owned();
        let nats = account_nats(account, revocations, import_accounts, now)?;
        let mut claims = NatsClaims {
            aud: None,
            exp: account.expires_at.map(|e| e.timestamp()),
            jti: String::new(),
            iat: now.timestamp(),
            iss: String::new(),
            name: non_empty(&account.name),
            nbf: None,
            sub,
            nats,
        };
        encode(
            self.keys.as_ref(),
            signer.key_id,
            &signer.public_key.encoded,
            &mut claims,
        )
        .await
    }

    /// Resolves which key signs a user JWT of `account`. The identity key
    /// is found in the key store (the account records only its public half).
    pub async fn account_signer(
        &self,
        account: &Account,
        choice: UserSigner,
    ) -> Result<AccountSigner, NatsError> {
        let now = self.clock.now();
        let account_id = account
            .id
            .ok_or(DomainError::NotFound { kind: "account" })?;
        let valid = |k: &&security_core::AccountSigningKey| k.revoked_at.is_none_or(|r| now < r);
        let signing = match choice {
            UserSigner::Default => account
                .signing_keys
                .iter()
                .filter(valid)
                .filter(|k| k.scope.is_none())
                .max_by_key(|k| k.added_at),
            UserSigner::SigningKey(key_id) => Some(
                account
                    .signing_keys
                    .iter()
                    .filter(valid)
                    .find(|k| k.key_id == key_id)
                    .ok_or(NatsError::SigningKey(key_id))?,
            ),
            UserSigner::Identity => None,
        };
        if let Some(key) = signing {
            return Ok(AccountSigner {
                account_id,
                key_id: key.key_id,
                public_key: key.public_key.encoded.clone(),
                identity: false,
                scoped: key.scope.is_some(),
            });
        }
        let identity = account_key(account)?;
        let owner = KeyOwner::new(account_id.tenant(), account_id);
        let info = self
            .keys
            .list_keys(owner)
            .await?
            .into_iter()
            .find(|k| {
                k.purpose == KeyPurpose::AccountSigning
                    && k.public_key.as_ref().is_some_and(|p| p.encoded == identity)
            })
            .ok_or(NatsError::MissingKey(
                "account identity key in the key store",
            ))?;
        if !matches!(info.status, KeyStatus::Active) {
            return Err(NatsError::SigningKey(info.key_id));
        }
        Ok(AccountSigner {
            account_id,
            key_id: info.key_id,
            public_key: identity.to_owned(),
            identity: true,
            scoped: false,
        })
    }

    /// A user JWT.
    ///
    /// Refused for a user who may not authenticate (locked, expired), of
    /// an account that is suspended or expired, or without a `U…` NATS
    /// identity credential. `policies` must be exactly the user's policies. The
    /// permissions are those of [`effective_user_permissions`], encoded so
    /// that the server denies what the domain denies (an empty allow list
    /// becomes `deny: [">"]`); limits not set are -1. The JWT expires at the
    /// earliest of its lifetime, the policies' and the account's expiry.
    /// Signed by a signing key it names the account in `issuer_account`;
    /// signed by a scoped key it carries no permissions or limits at all
    /// (the scope's template applies, and the policies do not).
    pub async fn user_jwt(
        &self,
        account: &Account,
        user: &User,
        policies: &[Policy],
        signer: &AccountSigner,
        options: &UserJwtOptions,
    ) -> Result<IssuedUserJwt, NatsError> {
        let now = self.clock.now();
        account.check_active(now)?;
        user.check_can_authenticate(now)?;
        if user.account_id.is_none() || user.account_id != account.id {
            return Err(DomainError::WrongAccount.into());
        }
        let account_key = account_key(account)?.to_owned();
        check_signer(account, signer, &account_key, now)?;
        let user_key = user_nkey(user).ok_or(NatsError::MissingKey("user"))?;
        check_policies(user, policies)?;
        let effective = effective_user_permissions(account, policies, now);
        let mut expires_at = options.lifetime.map(|l| now + l);
        for cap in [effective.expires_at, account.expires_at]
            .into_iter()
            .flatten()
        {
            expires_at = Some(expires_at.map_or(cap, |e| e.min(cap)));
        }
        let mut nats = if signer.scoped {
            UserNats::default()
        } else {
            let limits = permission_limits(&effective);
            UserNats {
                publish: limits.publish,
                subscribe: limits.subscribe,
                resp: limits.resp,
                subs: limits.subs,
                data: limits.data,
                payload: limits.payload,
                ..UserNats::default()
            }
        };
        nats.claim_type = ClaimType::User;
        nats.version = JWT_VERSION;
        if !signer.identity {
            nats.issuer_account.clone_from(&account_key);
        }
        // `iat` has one-second resolution and the account JWT revokes every
        // JWT of the user issued at or before its cutoff second: one issued
        // after the cutoff, in that same second, carries the next second.
        let mut iat = now.timestamp();
        if let Some(cutoff) = user_jwt_cutoff(account, user, policies) {
            iat = iat.max(cutoff.timestamp().saturating_add(1));
        }
        let mut claims = NatsClaims {
            aud: None,
            exp: expires_at.map(|e| e.timestamp()),
            jti: String::new(),
            iat,
            iss: String::new(),
            name: non_empty(&user.username),
            nbf: options.not_before.map(|n| n.timestamp()),
            sub: user_key.to_owned(),
            nats,
        };
        let jwt = encode(
            self.keys.as_ref(),
            signer.key_id,
            &signer.public_key,
            &mut claims,
        )
        .await?;
        Ok(IssuedUserJwt {
            jwt,
            user_key: user_key.to_owned(),
            account_key,
            signer_key: signer.public_key.clone(),
            issued_at: DateTime::from_timestamp(iat, 0).unwrap_or(now),
            expires_at: claims.exp.and_then(|e| DateTime::from_timestamp(e, 0)),
        })
    }
}

fn account_nats(
    account: &Account,
    revocations: &BTreeMap<String, DateTime<Utc>>,
    import_accounts: &BTreeMap<AccountId, String>,
    now: DateTime<Utc>,
) -> Result<AccountNats, NatsError> {
    let limits = &account.limits;
    let mut nats_limits = NatsAccountLimits {
        subs: limits.max_subscriptions.map_or(NO_LIMIT, i64::from),
        // NATS has no data-rate limit for accounts; the in-process
        // limits of security-authz enforce `max_data_rate`.
        data: NO_LIMIT,
        payload: limits.max_payload_size.map_or(NO_LIMIT, saturating_i64),
        imports: NO_LIMIT,
        exports: NO_LIMIT,
        wildcards: true,
        conn: limits.max_connections.map_or(NO_LIMIT, i64::from),
        leaf: NO_LIMIT,
        ..NatsAccountLimits::default()
    };
    let mut revoked = BTreeMap::new();
    for (user_key, at) in revocations {
        if !is_public_key(user_key, 'U') {
            return Err(NatsError::InvalidKey("revoked user key"));
        }
        revoked.insert(user_key.clone(), at.timestamp());
    }
    let inactive_since = match &account.status {
        AccountStatus::Suspended { since, .. } => Some(*since),
        AccountStatus::Expired => Some(now),
        AccountStatus::Active => None,
    };
    if inactive_since.is_some() {
        nats_limits.conn = 0;
        nats_limits.leaf = 0;
    }
    // Every user's JWT issued before the account was suspended, or before
    // its default permissions lost something, is revoked.
    if let Some(all) = inactive_since.max(account.defaults_narrowed_at) {
        revoked.insert(ALL_USERS.to_owned(), all.timestamp());
    }
    let mut signing_keys = Vec::new();
    for key in &account.signing_keys {
        if key.revoked_at.is_some_and(|r| r <= now) {
            continue;
        }
        let public = &key.public_key.encoded;
        if !is_public_key(public, 'A') {
            return Err(NatsError::InvalidKey("account signing key"));
        }
        signing_keys.push(match &key.scope {
            None => NatsSigningKey::Key(public.clone()),
            Some(scope) => NatsSigningKey::Scoped(Box::new(NatsUserScope {
                kind: USER_SCOPE_KIND.to_owned(),
                key: public.clone(),
                role: scope.role.clone(),
                template: permission_limits(&EffectiveUserPermissions {
                    permissions: scope.permissions.clone(),
                    max_subscriptions: scope.limits.max_subscriptions,
                    max_payload_size: scope.limits.max_payload_size,
                    expires_at: None,
                }),
                description: scope.description.clone(),
            })),
        });
    }
    let exports = limits
        .allowed_exports
        .iter()
        .map(|e| NatsExport {
            name: e.subject.pattern().to_owned(),
            subject: e.subject.pattern().to_owned(),
            export_type: kind_name(e.kind).to_owned(),
            token_req: false,
        })
        .collect();
    let imports = limits
        .allowed_imports
        .iter()
        .map(|i| {
            let account = import_accounts
                .get(&i.account)
                .filter(|k| is_public_key(k, 'A'))
                .ok_or(NatsError::UnknownImportAccount)?;
            Ok(NatsImport {
                name: i.subject.pattern().to_owned(),
                subject: i.subject.pattern().to_owned(),
                account: account.clone(),
                import_type: kind_name(i.kind).to_owned(),
                ..NatsImport::default()
            })
        })
        .collect::<Result<_, NatsError>>()?;
    Ok(AccountNats {
        imports,
        exports,
        limits: nats_limits,
        signing_keys,
        revocations: revoked,
        default_permissions: NatsPermissions::from_domain(&account.default_permissions),
        claim_type: ClaimType::Account,
        version: JWT_VERSION,
        ..AccountNats::default()
    })
}

fn check_signer(
    account: &Account,
    signer: &AccountSigner,
    account_key: &str,
    now: DateTime<Utc>,
) -> Result<(), NatsError> {
    if account.id != Some(signer.account_id) {
        return Err(NatsError::SigningKey(signer.key_id));
    }
    if signer.identity {
        return if signer.public_key == account_key {
            Ok(())
        } else {
            Err(NatsError::SigningKey(signer.key_id))
        };
    }
    let still_valid = account.signing_keys.iter().any(|k| {
        k.key_id == signer.key_id
            && k.public_key.encoded == signer.public_key
            && k.scope.is_some() == signer.scoped
            && k.revoked_at.is_none_or(|r| now < r)
    });
    if still_valid {
        Ok(())
    } else {
        Err(NatsError::SigningKey(signer.key_id))
    }
}

/// The union of the account's default permissions and those of the
/// policies in force at `now` (allow lists and deny lists each joined, so
/// a deny of any of them wins; the most generous reply rights), with the
/// tightest limits of those policies: what security-authz enforces
/// in-process for the same user.
pub fn effective_user_permissions(
    account: &Account,
    policies: &[Policy],
    now: DateTime<Utc>,
) -> EffectiveUserPermissions {
    let mut out = EffectiveUserPermissions {
        permissions: account.default_permissions.clone(),
        ..EffectiveUserPermissions::default()
    };
    for policy in policies.iter().filter(|p| p.is_in_force(now)) {
        let p = &policy.permissions;
        let all = &mut out.permissions;
        all.publish.allow.extend(p.publish.allow.iter().cloned());
        all.publish.deny.extend(p.publish.deny.iter().cloned());
        all.subscribe
            .allow
            .extend(p.subscribe.allow.iter().cloned());
        all.subscribe.deny.extend(p.subscribe.deny.iter().cloned());
        all.allow_responses = more_generous(all.allow_responses, p.allow_responses);
        let l = &policy.limits;
        out.max_subscriptions = tighter(out.max_subscriptions, l.max_subscriptions);
        out.max_payload_size = tighter(out.max_payload_size, l.max_payload_size);
        out.expires_at = tighter(out.expires_at, l.expires_at);
    }
    out
}

fn tighter<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn more_generous(
    a: Option<security_core::ResponsePermission>,
    b: Option<security_core::ResponsePermission>,
) -> Option<security_core::ResponsePermission> {
    fn more(x: i64, y: i64) -> i64 {
        if x < 0 || y < 0 { -1 } else { x.max(y) }
    }
    match (a, b) {
        (Some(a), Some(b)) => Some(security_core::ResponsePermission {
            max_messages: more(a.max_messages, b.max_messages),
            ttl_ms: more(a.ttl_ms, b.ttl_ms),
        }),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Permissions and limits in NATS form: default-deny permissions, -1 for
/// every limit not set (`data` is always -1: NATS has no data-rate limit
/// for users; security-authz enforces data rates in-process).
fn permission_limits(effective: &EffectiveUserPermissions) -> NatsUserPermissionLimits {
    let permissions = NatsPermissions::from_domain(&effective.permissions);
    NatsUserPermissionLimits {
        publish: permissions.publish,
        subscribe: permissions.subscribe,
        resp: permissions.resp,
        subs: effective.max_subscriptions.map_or(NO_LIMIT, i64::from),
        data: NO_LIMIT,
        payload: effective.max_payload_size.map_or(NO_LIMIT, saturating_i64),
        ..NatsUserPermissionLimits::default()
    }
}

fn check_policies(user: &User, policies: &[Policy]) -> Result<(), NatsError> {
    for policy in policies {
        match policy.id {
            Some(id) if user.policies.contains(&id) => {}
            Some(id) => return Err(NatsError::PolicyMismatch(id)),
            None => return Err(DomainError::NotFound { kind: "policy" }.into()),
        }
    }
    for id in &user.policies {
        if !policies.iter().any(|p| p.id == Some(*id)) {
            return Err(NatsError::PolicyMismatch(*id));
        }
    }
    Ok(())
}

/// The user's NATS nkey: its NATS identity credential, if it is a `U…` key.
/// (A public key registered for logins is never a NATS identity.)
pub fn user_nkey(user: &User) -> Option<&str> {
    match user.credential(CredentialType::NatsIdentity) {
        Some(Credential::NatsIdentity { key }) if is_public_key(&key.encoded, 'U') => {
            Some(&key.encoded)
        }
        _ => None,
    }
}

/// The instant up to which a user's JWTs are stale: the last of its
/// session revocation (`SessionsRevoked`: revocation, lock, expiry,
/// password or role change), the last removal of one of its policies, the
/// last narrowing of a policy it holds (`policies` must be its policies)
/// and the last narrowing of its account's default permissions. A JWT
/// issued at or before that second may grant what the user no longer has.
pub fn user_jwt_cutoff(
    account: &Account,
    user: &User,
    policies: &[Policy],
) -> Option<DateTime<Utc>> {
    user_cutoff(user, policies).max(account.defaults_narrowed_at)
}

/// [`user_jwt_cutoff`] without the account-wide part (which the account
/// JWT carries as a revocation of every user).
fn user_cutoff(user: &User, policies: &[Policy]) -> Option<DateTime<Utc>> {
    policies
        .iter()
        .filter(|p| p.id.is_some_and(|id| user.policies.contains(&id)))
        .filter_map(|p| p.narrowed_at)
        .chain(user.sessions_revoked_at)
        .chain(user.policies_removed_at)
        .max()
}

/// The revocations of an account's users, each given with its policies:
/// each user's nkey with the second up to which its JWTs are stale (see
/// [`user_jwt_cutoff`]; the account-wide narrowing of the default
/// permissions is written by [`NatsIssuer::account_jwt`] as a revocation of
/// every user). A user JWT issued at or before that second is refused by
/// the server.
pub fn user_revocations<'a>(
    users: impl IntoIterator<Item = (&'a User, &'a [Policy])>,
) -> BTreeMap<String, DateTime<Utc>> {
    users
        .into_iter()
        .filter_map(|(u, policies)| Some((user_nkey(u)?.to_owned(), user_cutoff(u, policies)?)))
        .collect()
}

fn account_key(account: &Account) -> Result<&str, NatsError> {
    let key = account
        .public_key
        .as_ref()
        .ok_or(NatsError::MissingKey("account"))?;
    if is_public_key(&key.encoded, 'A') {
        Ok(&key.encoded)
    } else {
        Err(NatsError::InvalidKey("account identity key"))
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn kind_name(kind: ExportKind) -> &'static str {
    match kind {
        ExportKind::Stream => "stream",
        ExportKind::Service => "service",
    }
}
