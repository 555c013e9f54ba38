//! The JSON of NATS v2 JWTs, field for field as `nats-io/jwt` v2 writes it
//! (same names, same order, same omissions), so that a stock `nats-server`
//! reads what this crate writes and this crate reads what `nsc` writes.
//!
//! Two rules of the Go encoding matter for the server: a numeric limit that
//! is left out is **0** (no connections, no subscriptions, no payload), so
//! "no limit" is always written as [`NO_LIMIT`] (-1); and a permission list
//! that is left out allows **everything**, so the issuer writes an explicit
//! `deny: [">"]` where the domain means "nothing" (see
//! [`NatsPermissions::from_domain`]).

use std::collections::BTreeMap;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};

use security_core::{Permissions, ResponsePermission, SubjectPermissions};

/// The value NATS reads as "no limit".
pub const NO_LIMIT: i64 = -1;

/// The JWT version this crate writes and accepts.
pub const JWT_VERSION: u32 = 2;

/// The `kind` of a scoped account signing key.
pub const USER_SCOPE_KIND: &str = "user_scope";

/// The subject NATS reads as "every subject".
pub const ALL_SUBJECTS: &str = ">";

/// The revocation key that revokes every user of an account.
pub const ALL_USERS: &str = "*";

/// The `nats.type` of a JWT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ClaimType {
    /// An operator JWT (self-signed root of trust).
    Operator,
    /// An account JWT (signed by the operator).
    Account,
    /// A user JWT (signed by the account).
    User,
    /// Any other type (activation, authorization, generic): never accepted
    /// where one of the above is expected.
    #[default]
    #[serde(other)]
    Other,
}

impl ClaimType {
    /// The lowercase name NATS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Account => "account",
            Self::User => "user",
            Self::Other => "other",
        }
    }
}

/// The claims every NATS JWT carries, around its type-specific `nats` part.
///
/// `exp` and `nbf` are Unix seconds; Go writes 0 as "absent", and so does
/// this type (0 decodes to `None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NatsClaims<T> {
    /// Audience (unused by the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Expiry, Unix seconds.
    #[serde(
        default,
        deserialize_with = "zero_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<i64>,
    /// The token id: SHA-512/256 of the base claims, base32 (see
    /// [`nats_jti`](crate::nats_jti)).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// Issued at, Unix seconds.
    #[serde(default)]
    pub iat: i64,
    /// The signer's public nkey.
    #[serde(default)]
    pub iss: String,
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Not before, Unix seconds.
    #[serde(
        default,
        deserialize_with = "zero_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// The subject's public nkey.
    #[serde(default)]
    pub sub: String,
    /// The type-specific claims.
    pub nats: T,
}

/// Operator claims.
pub type OperatorClaims = NatsClaims<OperatorNats>;
/// Account claims.
pub type AccountJwtClaims = NatsClaims<AccountNats>;
/// User claims.
pub type UserClaims = NatsClaims<UserNats>;

fn zero_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<i64>::deserialize(d)?.filter(|v| *v != 0))
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_false(b: &bool) -> bool {
    !*b
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The `nats` part of an operator JWT.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorNats {
    /// Keys besides the identity that may sign account JWTs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    /// Where account JWTs are served (unused with a MEMORY resolver).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account_server_url: String,
    /// URLs of the operator's servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator_service_urls: Vec<String>,
    /// The system account's public key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    /// A minimum server version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub assert_server_version: String,
    /// Whether only `signing_keys` (not the identity) may sign accounts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict_signing_key_usage: bool,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Always [`ClaimType::Operator`].
    #[serde(rename = "type")]
    pub claim_type: ClaimType,
    /// Always [`JWT_VERSION`].
    #[serde(default)]
    pub version: u32,
}

/// Allow and deny lists of one direction, in NATS form (`"subject"` or,
/// for subscriptions, `"subject queue"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsPermission {
    /// Allowed subjects (absent: everything not denied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Denied subjects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl NatsPermission {
    /// Whether both lists are empty (NATS then allows everything).
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// The domain's default-deny list, in a form NATS enforces the same
    /// way: an empty allow list becomes `deny: [">"]`. Queue groups are
    /// kept for subscriptions and dropped for publications (NATS has none).
    ///
    /// In the domain a pattern without a queue group covers every queue,
    /// and one with a group covers that group only. nats-server reads a
    /// list differently: when a queue subscription's subject matches any
    /// queue-bound entry of a list, only the queue-bound entries count, so
    /// a plain `secret.>` deny is lost for `SUB secret.x workers` as soon
    /// as `secret.> auditors` is also denied. Wherever a list holds a
    /// queue-bound entry, each plain pattern `P` is therefore also written
    /// as `P >` (bound to every queue name, `>` matching any): a queue
    /// subscription matching `P` then finds a queue entry that covers its
    /// queue, in the allow list and in the deny list alike.
    fn from_domain(list: &SubjectPermissions, with_queues: bool) -> Self {
        if list.allow.is_empty() {
            return Self {
                allow: Vec::new(),
                deny: vec![ALL_SUBJECTS.to_owned()],
            };
        }
        Self {
            allow: render_list(&list.allow, with_queues),
            deny: render_list(&list.deny, with_queues),
        }
    }
}

/// One list in NATS form (see [`NatsPermission::from_domain`]).
fn render_list(patterns: &[security_core::SubjectPattern], with_queues: bool) -> Vec<String> {
    if !with_queues {
        return dedup(patterns.iter().map(|p| p.pattern().to_owned()));
    }
    let queue_bound = patterns.iter().any(|p| p.queue_group().is_some());
    let every_queue = patterns
        .iter()
        .filter(|p| queue_bound && p.queue_group().is_none())
        .map(|p| format!("{} {ALL_SUBJECTS}", p.pattern()));
    dedup(
        patterns
            .iter()
            .map(security_core::SubjectPattern::to_nats_string)
            .chain(every_queue),
    )
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// How a client may answer requests: `max` replies within `ttl`
/// nanoseconds (0: the server's defaults; negative: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsResponsePermission {
    /// Replies per request.
    pub max: i64,
    /// Time window, nanoseconds.
    pub ttl: i64,
}

impl From<ResponsePermission> for NatsResponsePermission {
    fn from(r: ResponsePermission) -> Self {
        Self {
            max: r.max_messages,
            ttl: r.ttl_ms.saturating_mul(1_000_000),
        }
    }
}

/// Publish and subscribe permissions, and the right to answer requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsPermissions {
    /// Publish lists.
    #[serde(default, rename = "pub")]
    pub publish: NatsPermission,
    /// Subscribe lists.
    #[serde(default, rename = "sub")]
    pub subscribe: NatsPermission,
    /// Reply rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<NatsResponsePermission>,
}

impl NatsPermissions {
    /// The domain's permissions (default deny: an empty allow list allows
    /// nothing) in a form a NATS server enforces identically (where an
    /// absent list allows everything): each direction with an empty allow
    /// list is written as `deny: [">"]`.
    pub fn from_domain(p: &Permissions) -> Self {
        Self {
            publish: NatsPermission::from_domain(&p.publish, false),
            subscribe: NatsPermission::from_domain(&p.subscribe, true),
            resp: p.allow_responses.map(NatsResponsePermission::from),
        }
    }

    /// Whether nothing is set (NATS then allows everything).
    pub fn is_empty(&self) -> bool {
        self.publish.is_empty() && self.subscribe.is_empty() && self.resp.is_none()
    }
}

/// A time-of-day window in which a user may connect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsTimeRange {
    /// Start, `HH:MM:SS`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start: String,
    /// End, `HH:MM:SS`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end: String,
}

/// Permissions and limits of a user, or of the template of a scoped
/// signing key (Go `UserPermissionLimits`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsUserPermissionLimits {
    /// Publish lists.
    #[serde(default, rename = "pub")]
    pub publish: NatsPermission,
    /// Subscribe lists.
    #[serde(default, rename = "sub")]
    pub subscribe: NatsPermission,
    /// Reply rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<NatsResponsePermission>,
    /// Allowed source networks (CIDR).
    #[serde(
        default,
        deserialize_with = "cidr_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub src: Vec<String>,
    /// Allowed connection times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<NatsTimeRange>,
    /// The time zone of `times`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub times_location: String,
    /// Most subscriptions (-1: no limit; 0, or absent: none at all).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subs: i64,
    /// Most data (-1: no limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data: i64,
    /// Largest payload (-1: no limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub payload: i64,
    /// Whether the JWT alone authenticates (no nonce signature).
    #[serde(default, skip_serializing_if = "is_false")]
    pub bearer_token: bool,
    /// Connection types allowed (`STANDARD`, `WEBSOCKET`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
}

impl NatsUserPermissionLimits {
    /// Whether nothing at all is set: what a user signed by a scoped key
    /// must carry (the server refuses it otherwise).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The permissions part.
    pub fn permissions(&self) -> NatsPermissions {
        NatsPermissions {
            publish: self.publish.clone(),
            subscribe: self.subscribe.clone(),
            resp: self.resp,
        }
    }
}

/// Go writes `src` as an array; older versions wrote a comma-separated
/// string. Both are read.
fn cidr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        None => Vec::new(),
        Some(Either::List(list)) => list,
        Some(Either::Text(text)) => text
            .split(',')
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect(),
    })
}

/// The `nats` part of a user JWT.
///
/// The fields of [`NatsUserPermissionLimits`] are repeated here rather than
/// flattened: `serde(flatten)` buffers every field before deserializing
/// it, on the path every connect takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserNats {
    /// Publish lists.
    #[serde(default, rename = "pub")]
    pub publish: NatsPermission,
    /// Subscribe lists.
    #[serde(default, rename = "sub")]
    pub subscribe: NatsPermission,
    /// Reply rights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<NatsResponsePermission>,
    /// Allowed source networks (CIDR).
    #[serde(
        default,
        deserialize_with = "cidr_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub src: Vec<String>,
    /// Allowed connection times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<NatsTimeRange>,
    /// The time zone of `times`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub times_location: String,
    /// Most subscriptions (-1: no limit; 0, or absent: none at all).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subs: i64,
    /// Most data (-1: no limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data: i64,
    /// Largest payload (-1: no limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub payload: i64,
    /// Whether the JWT alone authenticates (no nonce signature).
    #[serde(default, skip_serializing_if = "is_false")]
    pub bearer_token: bool,
    /// Connection types allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
    /// The account, when the JWT is signed by one of its signing keys.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Always [`ClaimType::User`].
    #[serde(rename = "type")]
    pub claim_type: ClaimType,
    /// Always [`JWT_VERSION`].
    #[serde(default)]
    pub version: u32,
}

impl UserNats {
    /// The permissions and limits part.
    pub fn permission_limits(&self) -> NatsUserPermissionLimits {
        NatsUserPermissionLimits {
            publish: self.publish.clone(),
            subscribe: self.subscribe.clone(),
            resp: self.resp,
            src: self.src.clone(),
            times: self.times.clone(),
            times_location: self.times_location.clone(),
            subs: self.subs,
            data: self.data,
            payload: self.payload,
            bearer_token: self.bearer_token,
            allowed_connection_types: self.allowed_connection_types.clone(),
        }
    }

    /// Whether no permission and no limit is set (required of users signed
    /// by a scoped key).
    pub fn has_no_permissions_or_limits(&self) -> bool {
        self.publish.is_empty()
            && self.subscribe.is_empty()
            && self.resp.is_none()
            && self.src.is_empty()
            && self.times.is_empty()
            && self.times_location.is_empty()
            && self.subs == 0
            && self.data == 0
            && self.payload == 0
            && !self.bearer_token
            && self.allowed_connection_types.is_empty()
    }
}

/// A scoped signing key: users it signs get `template`, whatever their JWT
/// says (and their JWT must say nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsUserScope {
    /// Always [`USER_SCOPE_KIND`].
    pub kind: String,
    /// The signing key.
    pub key: String,
    /// A role name.
    #[serde(default)]
    pub role: String,
    /// What every user signed by the key gets.
    #[serde(default)]
    pub template: NatsUserPermissionLimits,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// An account signing key: a plain `A…` key or a scoped one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NatsSigningKey {
    /// A key that signs users with whatever permissions they carry.
    Key(String),
    /// A key that imposes a template.
    Scoped(Box<NatsUserScope>),
}

impl NatsSigningKey {
    /// The public key.
    pub fn key(&self) -> &str {
        match self {
            Self::Key(k) => k,
            Self::Scoped(s) => &s.key,
        }
    }

    /// The scope, if any.
    pub fn scope(&self) -> Option<&NatsUserScope> {
        match self {
            Self::Key(_) => None,
            Self::Scoped(s) => Some(s.as_ref()),
        }
    }
}

/// Limits of an account (Go `OperatorLimits`: NATS, account and JetStream
/// limits). 0 or absent means **none allowed**; write [`NO_LIMIT`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsAccountLimits {
    /// Most subscriptions.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subs: i64,
    /// Most data.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data: i64,
    /// Largest payload.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub payload: i64,
    /// Most imports.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub imports: i64,
    /// Most exports.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exports: i64,
    /// Whether exports may hold wildcards.
    #[serde(default, skip_serializing_if = "is_false")]
    pub wildcards: bool,
    /// Whether bearer user JWTs are refused.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disallow_bearer: bool,
    /// Most client connections.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conn: i64,
    /// Most leaf-node connections.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub leaf: i64,
    /// JetStream memory storage (0: JetStream off).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mem_storage: i64,
    /// JetStream disk storage (0: JetStream off).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disk_storage: i64,
    /// JetStream streams.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub streams: i64,
    /// JetStream consumers.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consumer: i64,
}

/// Subjects an account offers to others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsExport {
    /// A name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The subjects.
    #[serde(default)]
    pub subject: String,
    /// `stream` or `service`.
    #[serde(default, rename = "type")]
    pub export_type: String,
    /// Whether importers need an activation token.
    #[serde(default, skip_serializing_if = "is_false")]
    pub token_req: bool,
}

/// Subjects an account takes from another's exports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatsImport {
    /// A name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The subjects.
    #[serde(default)]
    pub subject: String,
    /// The exporting account's public key.
    #[serde(default)]
    pub account: String,
    /// An activation token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// Where the subjects appear locally.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local_subject: String,
    /// `stream` or `service`.
    #[serde(default, rename = "type")]
    pub import_type: String,
}

/// The `nats` part of an account JWT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountNats {
    /// Imports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<NatsImport>,
    /// Exports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<NatsExport>,
    /// Limits (0 or absent: none allowed).
    #[serde(default)]
    pub limits: NatsAccountLimits,
    /// Keys besides the identity that may sign users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<NatsSigningKey>,
    /// Revoked users (`U…` or [`ALL_USERS`]) and the time up to which
    /// (inclusive, Unix seconds) their JWTs are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    /// Permissions of users whose JWT carries none.
    #[serde(default)]
    pub default_permissions: NatsPermissions,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Always [`ClaimType::Account`].
    #[serde(rename = "type")]
    pub claim_type: ClaimType,
    /// Always [`JWT_VERSION`].
    #[serde(default)]
    pub version: u32,
}

impl AccountNats {
    /// Whether a user JWT for `user_key` issued at `iat` is revoked: a
    /// revocation at or after `iat`, for this user or for all.
    pub fn is_revoked(&self, user_key: &str, iat: i64) -> bool {
        let hit = |k: &str| self.revocations.get(k).is_some_and(|at| *at >= iat);
        hit(user_key) || hit(ALL_USERS)
    }

    /// The signing key entry for `key`, if the account lists it.
    pub fn signing_key(&self, key: &str) -> Option<&NatsSigningKey> {
        self.signing_keys.iter().find(|k| k.key() == key)
    }
}

/// What the type-specific part of a JWT must tell the codec.
pub trait NatsClaimKind:
    Serialize + serde::de::DeserializeOwned + Clone + PartialEq + std::fmt::Debug + sealed::Sealed
{
    /// The `nats.type` of this kind.
    const CLAIM_TYPE: ClaimType;
    /// The nkey type letter of the subject.
    const SUBJECT_PREFIX: char;
    /// The nkey type letter of the issuer.
    const ISSUER_PREFIX: char;
    /// The `nats.type` found.
    fn claim_type(&self) -> ClaimType;
    /// The `nats.version` found.
    fn version(&self) -> u32;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::OperatorNats {}
    impl Sealed for super::AccountNats {}
    impl Sealed for super::UserNats {}
}

macro_rules! claim_kind {
    ($ty:ty, $kind:expr, $sub:literal, $iss:literal) => {
        impl NatsClaimKind for $ty {
            const CLAIM_TYPE: ClaimType = $kind;
            const SUBJECT_PREFIX: char = $sub;
            const ISSUER_PREFIX: char = $iss;
            fn claim_type(&self) -> ClaimType {
                self.claim_type
            }
            fn version(&self) -> u32 {
                self.version
            }
        }
    };
}

claim_kind!(OperatorNats, ClaimType::Operator, 'O', 'O');
claim_kind!(AccountNats, ClaimType::Account, 'A', 'O');
claim_kind!(UserNats, ClaimType::User, 'U', 'A');

/// Checks that `text` is a well-formed public nkey whose type letter is
/// `prefix` (checksum included).
pub(crate) fn is_public_key(text: &str, prefix: char) -> bool {
    text.starts_with(prefix) && nkeys::from_public_key(text).is_ok()
}
