//! Access tokens (RFC 7519 JWTs): the in-process [`JwtValidator`] and the
//! hand-built signing input the issuer signs through the key store.
//!
//! `jsonwebtoken` 11 verifies signatures and knows the algorithms, but by
//! itself it ignores `crit`, `kid` and `typ`, has no size cap, accepts
//! `exp == now` with zero leeway, accepts an `iss` array, reads the system
//! clock, and builds its verifier from the key on every call. The validator
//! closes those gaps: it pins each key to one algorithm, refuses unknown and
//! revoked key ids before any cryptography, caps the size, refuses
//! duplicate JSON members, any `crit`, a wrong `typ`, and checks the times
//! against the injected [`Clock`] (`now >= exp + leeway` is expired). The
//! signature itself is checked by `jsonwebtoken::crypto::verify` with a
//! `DecodingKey` built once per key.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey};
use security_core::{
    AccessClaims, Clock, KeyId, KeyPurpose, KeyStatus, KeyStore, SessionId, TenantId, TokenError,
    TokenValidator, UserId,
};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::config::MIN_HS256_KEY_BYTES;
use crate::strict_json::has_unique_members;

/// The largest token accepted, in bytes (checked before anything else).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The `typ` of the access tokens this crate issues (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// A verification key could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An HMAC key shorter than the hash output (RFC 7518 §3.2): refused.
    #[error("HMAC key is too short: at least {min} bytes are required")]
    WeakHmacKey {
        /// The minimum length in bytes.
        min: usize,
    },
    /// Not a valid Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// The key id is empty or longer than 256 bytes.
    #[error("key id must be 1 to 256 bytes")]
    InvalidKeyId,
}

struct VerificationKey {
    algorithm: Algorithm,
    key: DecodingKey,
    /// Tokens verified by a tenant's own key must name that tenant.
    tenant: Option<TenantId>,
}

/// Revoked token ids, sessions and per-user cutoffs, shared by the
/// service (which fills it as it revokes) and every validator.
///
/// Entries only need to outlive the access tokens they revoke, so they are
/// dropped `retention` after they were added (the access-token lifetime
/// plus the leeway is enough).
pub struct RevocationList {
    state: RwLock<RevocationState>,
    retention: chrono::Duration,
}

/// Every entry is keyed by tenant too: ids are not secret (a user id is
/// the `sub` of its tokens), and one tenant's revocation must never touch
/// another tenant's user that happens to share an id.
#[derive(Default)]
struct RevocationState {
    /// (tenant, jti) → the token's expiry (Unix seconds).
    jtis: HashMap<(TenantId, String), i64>,
    /// (tenant, session) → when it was revoked.
    sessions: HashMap<(TenantId, SessionId), DateTime<Utc>>,
    /// (tenant, user) → tokens issued at or before this whole second are
    /// revoked.
    users: HashMap<(TenantId, UserId), (i64, DateTime<Utc>)>,
    inserts: u64,
}

impl fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("RevocationList")
            .field("jtis", &state.jtis.len())
            .field("sessions", &state.sessions.len())
            .field("users", &state.users.len())
            .finish()
    }
}

impl RevocationList {
    /// An empty list whose entries are kept for `retention`.
    pub fn new(retention: Duration) -> Self {
        Self {
            state: RwLock::new(RevocationState::default()),
            retention: chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RevocationState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self, now: DateTime<Utc>) -> std::sync::RwLockWriteGuard<'_, RevocationState> {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.inserts = state.inserts.wrapping_add(1);
        if state.inserts.is_multiple_of(256) {
            let cutoff = now - self.retention;
            let now_secs = now.timestamp();
            state.jtis.retain(|_, exp| *exp > now_secs);
            state.sessions.retain(|_, at| *at > cutoff);
            state.users.retain(|_, (_, at)| *at > cutoff);
        }
        state
    }

    /// Revokes one access token of a tenant until it expires.
    pub fn revoke_jti(&self, tenant: TenantId, jti: &str, exp: i64, now: DateTime<Utc>) {
        self.write(now).jtis.insert((tenant, jti.to_owned()), exp);
    }

    /// Revokes every access token of a session.
    pub fn revoke_session(&self, tenant: TenantId, session_id: SessionId, now: DateTime<Utc>) {
        self.write(now).sessions.insert((tenant, session_id), now);
    }

    /// Revokes every access token of a user issued at or before `at`.
    ///
    /// `iat` has one-second resolution, so every token whose `iat` is the
    /// second of `at` or earlier is refused; the issuer gives tokens it
    /// issues later in that same second the next second as `iat`.
    pub fn revoke_user(
        &self,
        tenant: TenantId,
        user_id: UserId,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let mut state = self.write(now);
        let entry = state
            .users
            .entry((tenant, user_id))
            .or_insert((at.timestamp(), now));
        if at.timestamp() >= entry.0 {
            *entry = (at.timestamp(), now);
        }
    }

    /// The whole second at or before which a user's tokens are revoked.
    pub fn user_cutoff(&self, tenant: TenantId, user_id: UserId) -> Option<i64> {
        self.read()
            .users
            .get(&(tenant, user_id))
            .map(|(secs, _)| *secs)
    }

    fn check(&self, claims: &Registered<'_>) -> Result<(), TokenError> {
        // Tokens without a tenant are not this family's access tokens;
        // their entries live under the nil tenant.
        let tenant = claims.tenant_id.unwrap_or(TenantId::SYSTEM);
        let state = self.read();
        if claims
            .jti
            .as_deref()
            .is_some_and(|j| state.jtis.contains_key(&(tenant, j.to_owned())))
            || claims
                .session_id
                .is_some_and(|s| state.sessions.contains_key(&(tenant, s)))
        {
            return Err(TokenError::Revoked);
        }
        if let Some(user) = claims.user_id
            && let Some((cutoff, _)) = state.users.get(&(tenant, user))
            && claims.iat.is_none_or(|iat| iat <= *cutoff)
        {
            return Err(TokenError::Revoked);
        }
        Ok(())
    }
}

/// Validates JWTs in-process against a fixed set of keys, each pinned to
/// one algorithm.
///
/// Checks, in order (each failure is a distinct [`TokenError`]): size cap;
/// exactly three base64url segments (no padding, no whitespace); a header
/// that is a JSON object without duplicate members; `alg` a string in the
/// allow-list; no `crit`; `typ` as configured; `kid` present, not revoked
/// (before any cryptography), known, and bound to the header's `alg`; the
/// signature; a payload that is a JSON object without duplicate members
/// at any depth (custom claims included);
/// `exp` required (`now >= exp + leeway` is expired, so `exp == now` is
/// refused with zero leeway); `nbf` (`now < nbf - leeway`); `iat` not in
/// the future beyond the leeway; `iss` a single string among the accepted
/// ones; `aud` present and accepted when audiences are configured, absent
/// otherwise; a tenant key's tokens name its tenant; revoked `jti`,
/// session and user cutoffs.
pub struct JwtValidator {
    keys: RwLock<HashMap<String, Arc<VerificationKey>>>,
    revoked_kids: RwLock<HashSet<String>>,
    algorithms: Vec<Algorithm>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    typ: Option<String>,
    leeway: i64,
    max_bytes: usize,
    clock: Arc<dyn Clock>,
    revocations: Arc<RevocationList>,
    key_store: Option<Arc<dyn KeyStore>>,
    /// Key ids the key store did not know, and until when not to ask again.
    unknown: RwLock<HashMap<String, DateTime<Utc>>>,
}

/// How long a key id the key store did not know is not asked for again.
const UNKNOWN_KID_SECS: i64 = 30;
/// The most unknown key ids remembered.
const MAX_UNKNOWN_KIDS: usize = 10_000;

impl fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtValidator")
            .field("keys", &self.keys.read().map_or(0, |k| k.len()))
            .field("algorithms", &self.algorithms)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("typ", &self.typ)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// Builds a [`JwtValidator`].
pub struct JwtValidatorBuilder {
    algorithms: Vec<Algorithm>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    typ: Option<String>,
    leeway: Duration,
    max_bytes: usize,
    revocations: Option<Arc<RevocationList>>,
    revoked_kids: Vec<String>,
    clock: Arc<dyn Clock>,
    key_store: Option<Arc<dyn KeyStore>>,
}

impl fmt::Debug for JwtValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtValidatorBuilder")
            .finish_non_exhaustive()
    }
}

impl JwtValidatorBuilder {
    /// Accepts only these algorithms (default: `EdDSA` and `HS256`).
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// Accepts tokens from this issuer (may be called several times). With
    /// none, `iss` is not checked.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens for this audience (may be called several times).
    /// With none, a token that names an audience is refused.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Requires this `typ` header (compared case-insensitively, with or
    /// without the `application/` prefix). Default: not checked.
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The largest token accepted (default [`DEFAULT_MAX_TOKEN_BYTES`]).
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Shares a revocation list (default: a new one keeping entries 1 h).
    pub fn revocations(mut self, revocations: Arc<RevocationList>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Refuses tokens whose `kid` is this one, before any cryptography.
    pub fn revoked_kid(mut self, kid: impl Into<String>) -> Self {
        self.revoked_kids.push(kid.into());
        self
    }

    /// Looks a token-signing key the validator does not hold up in this
    /// key store (in [`validate_async`](TokenValidator::validate_async)),
    /// so that tokens signed by any replica sharing the key store validate
    /// at once, and a key the store reports revoked is refused from then
    /// on. Only key ids that are key-store ids are looked up, and one the
    /// store does not know is not asked for again for 30 seconds.
    pub fn key_store(mut self, key_store: Arc<dyn KeyStore>) -> Self {
        self.key_store = Some(key_store);
        self
    }

    /// The validator.
    pub fn build(self) -> JwtValidator {
        JwtValidator {
            keys: RwLock::new(HashMap::new()),
            revoked_kids: RwLock::new(self.revoked_kids.into_iter().collect()),
            algorithms: self.algorithms,
            issuers: self.issuers,
            audiences: self.audiences,
            typ: self.typ,
            leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            max_bytes: self.max_bytes,
            clock: self.clock,
            revocations: self
                .revocations
                .unwrap_or_else(|| Arc::new(RevocationList::new(Duration::from_secs(3600)))),
            key_store: self.key_store,
            unknown: RwLock::new(HashMap::new()),
        }
    }
}

/// The header members the validator reads. Unknown members are ignored
/// (RFC 7515 §4); a duplicate of any member, known or not, is refused
/// before this is read (also when the name is escaped, as in `"\u0061lg"`).
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    typ: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    crit: Present,
}

/// Whether a member was there at all (whatever its value, `null` included).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer)?;
        Ok(Self(true))
    }
}

/// The registered claims, typed strictly: `iss` one string, times whole
/// numbers that fit an `i64`.
#[derive(Deserialize)]
struct Registered<'a> {
    #[serde(default, borrow)]
    iss: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    aud: Option<AudienceClaim>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default, borrow)]
    jti: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    tenant_id: Option<TenantId>,
    #[serde(default)]
    user_id: Option<UserId>,
    #[serde(default)]
    session_id: Option<SessionId>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AudienceClaim {
    One(String),
    Many(Vec<String>),
}

impl AudienceClaim {
    fn any_in(&self, accepted: &[String]) -> bool {
        match self {
            Self::One(a) => accepted.contains(a),
            Self::Many(list) => list.iter().any(|a| accepted.contains(a)),
        }
    }
}

fn algorithm_named(name: &str) -> Option<Algorithm> {
    // Case-sensitive, allow-list: only the two algorithms this family uses.
    match name {
        "EdDSA" => Some(Algorithm::EdDSA),
        "HS256" => Some(Algorithm::HS256),
        _ => None,
    }
}

fn is_json_object(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

fn typ_matches(expected: &str, actual: &str) -> bool {
    let strip = |t: &str| {
        let lower = t.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map_or_else(|| lower.clone(), str::to_owned)
    };
    strip(expected) == strip(actual)
}

impl JwtValidator {
    /// A builder; times are read from `clock`.
    pub fn builder(clock: Arc<dyn Clock>) -> JwtValidatorBuilder {
        JwtValidatorBuilder {
            algorithms: vec![Algorithm::EdDSA, Algorithm::HS256],
            issuers: Vec::new(),
            audiences: Vec::new(),
            typ: None,
            leeway: Duration::from_secs(60),
            max_bytes: DEFAULT_MAX_TOKEN_BYTES,
            revocations: None,
            revoked_kids: Vec::new(),
            clock,
            key_store: None,
        }
    }

    /// The shared revocation list.
    pub fn revocations(&self) -> &Arc<RevocationList> {
        &self.revocations
    }

    fn insert(&self, kid: &str, key: VerificationKey) -> Result<(), KeyError> {
        if kid.is_empty() || kid.len() > 256 {
            return Err(KeyError::InvalidKeyId);
        }
        self.keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(kid.to_owned(), Arc::new(key));
        Ok(())
    }

    /// Adds an HS256 key (at least 32 bytes).
    pub fn add_hs256_key(&self, kid: &str, secret: &[u8]) -> Result<(), KeyError> {
        if secret.len() < MIN_HS256_KEY_BYTES {
            return Err(KeyError::WeakHmacKey {
                min: MIN_HS256_KEY_BYTES,
            });
        }
        self.insert(
            kid,
            VerificationKey {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
                tenant: None,
            },
        )
    }

    /// Adds an Ed25519 public key (32 raw bytes). With a tenant, tokens
    /// verified by it must carry that `tenant_id`.
    pub fn add_ed25519_key(
        &self,
        kid: &str,
        public_key: &[u8],
        tenant: Option<TenantId>,
    ) -> Result<(), KeyError> {
        let bytes: &[u8; 32] = public_key
            .try_into()
            .map_err(|_| KeyError::InvalidPublicKey)?;
        // Refuse keys that are not points of the curve now, not at the first token.
        security_crypto::Ed25519PublicKey::from_bytes(bytes)
            .map_err(|_| KeyError::InvalidPublicKey)?;
        self.insert(
            kid,
            VerificationKey {
                algorithm: Algorithm::EdDSA,
                key: DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(bytes))
                    .map_err(|_| KeyError::InvalidPublicKey)?,
                tenant,
            },
        )
    }

    /// Whether a key id is known (and not revoked).
    pub fn has_key(&self, kid: &str) -> bool {
        !self.is_revoked_kid(kid)
            && self
                .keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains_key(kid)
    }

    /// Refuses every token signed by this key from now on.
    pub fn revoke_kid(&self, kid: &str) {
        self.revoked_kids
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(kid.to_owned());
    }

    fn is_revoked_kid(&self, kid: &str) -> bool {
        let revoked = self
            .revoked_kids
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        !revoked.is_empty() && revoked.contains(kid)
    }

    /// Validates `token` and returns its claims as `T` (any type that
    /// deserializes from the payload; [`AccessClaims`] for this family's
    /// access tokens).
    ///
    /// Every call counts in
    /// [`TOKEN_VALIDATIONS`](crate::observe::TOKEN_VALIDATIONS) by outcome.
    pub fn validate_as<T: DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        let result = self.check_token(token);
        crate::observe::token_validation(&result);
        result
    }

    fn check_token<T: DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        if token.len() > self.max_bytes {
            return Err(TokenError::TooLarge);
        }
        // At most four parts: a longer split is never needed to refuse.
        let mut parts = token.splitn(4, '.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_bytes = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| TokenError::Malformed)?;
        if !is_json_object(&header_bytes) || !has_unique_members(&header_bytes) {
            return Err(TokenError::Malformed);
        }
        let header: Header<'_> =
            serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed)?;
        let algorithm = algorithm_named(&header.alg)
            .filter(|a| self.algorithms.contains(a))
            .ok_or(TokenError::Algorithm)?;
        if header.crit.0 {
            // No extension is understood, so any `crit` is refused (RFC 7515 §4.1.11).
            return Err(TokenError::Header);
        }
        if let Some(expected) = &self.typ
            && !header
                .typ
                .as_deref()
                .is_some_and(|t| typ_matches(expected, t))
        {
            return Err(TokenError::Header);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        if self.is_revoked_kid(kid) {
            return Err(TokenError::RevokedKey);
        }
        let key = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(kid)
            .cloned()
            .ok_or(TokenError::UnknownKey)?;
        if key.algorithm != algorithm {
            return Err(TokenError::Algorithm);
        }
        let signing_input_len = header_b64.len() + 1 + payload_b64.len();
        let signing_input = token
            .as_bytes()
            .get(..signing_input_len)
            .ok_or(TokenError::Malformed)?;
        match jsonwebtoken::crypto::verify(signature_b64, signing_input, &key.key, algorithm) {
            Ok(true) => {}
            Ok(false) => return Err(TokenError::Signature),
            Err(_) => return Err(TokenError::Malformed),
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Malformed)?;
        if !is_json_object(&payload) || !has_unique_members(&payload) {
            return Err(TokenError::Malformed);
        }
        let registered: Registered<'_> =
            serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        self.check_registered(&registered, key.tenant)?;
        serde_json::from_slice(&payload).map_err(|_| TokenError::MissingClaim)
    }

    fn check_registered(
        &self,
        claims: &Registered<'_>,
        tenant: Option<TenantId>,
    ) -> Result<(), TokenError> {
        let now = self.clock.now().timestamp();
        let exp = claims.exp.ok_or(TokenError::MissingClaim)?;
        if now >= exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| now < nbf.saturating_sub(self.leeway))
            || claims
                .iat
                .is_some_and(|iat| iat > now.saturating_add(self.leeway))
        {
            return Err(TokenError::NotYetValid);
        }
        if !self.issuers.is_empty() {
            let iss = claims.iss.as_deref().ok_or(TokenError::MissingClaim)?;
            if !self.issuers.iter().any(|i| i == iss) {
                return Err(TokenError::Issuer);
            }
        }
        match (&claims.aud, self.audiences.is_empty()) {
            (None, true) => {}
            (Some(aud), false) if aud.any_in(&self.audiences) => {}
            (None, false) => return Err(TokenError::MissingClaim),
            (Some(_), _) => return Err(TokenError::Audience),
        }
        if let Some(tenant) = tenant
            && claims.tenant_id != Some(tenant)
        {
            return Err(TokenError::Signature);
        }
        self.revocations.check(claims)
    }
}

impl JwtValidator {
    /// Like [`validate_as`](Self::validate_as); a token signed by a key the
    /// validator does not hold is checked after looking the key up in the
    /// key store (see [`JwtValidatorBuilder::key_store`]).
    pub async fn validate_fetching<T: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<T, TokenError> {
        let result = self.fetch_and_check(token).await;
        crate::observe::token_validation(&result);
        result
    }

    async fn fetch_and_check<T: DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        match self.check_token::<T>(token) {
            Err(TokenError::UnknownKey) => {}
            other => return other,
        }
        let Some(store) = &self.key_store else {
            return Err(TokenError::UnknownKey);
        };
        let kid = unverified_kid(token).ok_or(TokenError::UnknownKey)?;
        let key_id: KeyId = kid.parse().map_err(|_| TokenError::UnknownKey)?;
        let now = self.clock.now();
        if self
            .unknown
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&kid)
            .is_some_and(|until| *until > now)
        {
            return Err(TokenError::UnknownKey);
        }
        let info = match store.key(key_id).await {
            Ok(info) if info.purpose == KeyPurpose::TokenSigning => info,
            _ => {
                let mut unknown = self
                    .unknown
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if unknown.len() >= MAX_UNKNOWN_KIDS {
                    unknown.retain(|_, until| *until > now);
                }
                if unknown.len() < MAX_UNKNOWN_KIDS {
                    unknown.insert(kid, now + chrono::Duration::seconds(UNKNOWN_KID_SECS));
                }
                return Err(TokenError::UnknownKey);
            }
        };
        if matches!(
            info.status,
            KeyStatus::Revoked { .. } | KeyStatus::Destroyed { .. }
        ) {
            self.revoke_kid(&kid);
            return Err(TokenError::RevokedKey);
        }
        let public = info.public_key.as_ref().ok_or(TokenError::UnknownKey)?;
        let key = security_crypto::Ed25519PublicKey::from_public_key(public)
            .map_err(|_| TokenError::UnknownKey)?;
        self.add_ed25519_key(&kid, &key.to_bytes(), Some(info.owner.tenant_id))
            .map_err(|_| TokenError::UnknownKey)?;
        self.check_token(token)
    }
}

/// The `kid` of a token's header, read without any verification (only to
/// look the key up).
fn unverified_kid(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct KidOnly {
        kid: Option<String>,
    }
    if token.len() > DEFAULT_MAX_TOKEN_BYTES {
        return None;
    }
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    serde_json::from_slice::<KidOnly>(&bytes).ok()?.kid
}

#[security_core::async_trait]
impl TokenValidator for JwtValidator {
    fn validate(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.validate_as(token)
    }

    async fn validate_async(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.validate_fetching(token).await
    }
}

/// The JWS signing input `base64url(header) "." base64url(claims)` of a
/// token (an access token, an ID token) with `typ` in its header, built by
/// hand: the issuer signs it through
/// [`KeyStore::sign`](security_core::KeyStore::sign) because the private key
/// never leaves the key store, and `jsonwebtoken::encode` would need the
/// private key in an `EncodingKey`.
pub(crate) fn signing_input(
    alg: &str,
    kid: &str,
    typ: &str,
    claims: &impl serde::Serialize,
) -> Result<String, serde_json::Error> {
    let header = serde_json::json!({ "alg": alg, "typ": typ, "kid": kid });
    let header = serde_json::to_vec(&header)?;
    let claims = serde_json::to_vec(claims)?;
    let mut input = String::with_capacity((header.len() + claims.len()) * 4 / 3 + 4);
    URL_SAFE_NO_PAD.encode_string(header, &mut input);
    input.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut input);
    Ok(input)
}

pub(crate) fn finish(mut signing_input: String, signature: &[u8]) -> String {
    signing_input.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut signing_input);
    signing_input
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use security_core::ManualClock;

    use super::*;

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        ))
    }

    #[test]
    fn weak_hmac_keys_and_bad_public_keys_are_refused() {
        let v = JwtValidator::builder(clock()).build();
        assert_eq!(
            v.add_hs256_key("k", b"secret"),
            Err(KeyError::WeakHmacKey { min: 32 })
        );
        assert_eq!(
            v.add_ed25519_key("k", &[1; 31], None),
            Err(KeyError::InvalidPublicKey)
        );
        assert_eq!(v.add_hs256_key("", &[7; 32]), Err(KeyError::InvalidKeyId));
        assert!(v.add_hs256_key("k", &[7; 32]).is_ok());
        assert!(v.has_key("k"));
        v.revoke_kid("k");
        assert!(!v.has_key("k"));
    }

    #[test]
    fn typ_comparison_is_case_insensitive_and_prefix_tolerant() {
        assert!(typ_matches("at+jwt", "AT+JWT"));
        assert!(typ_matches("at+jwt", "application/at+jwt"));
        assert!(!typ_matches("at+jwt", "JWT"));
        assert!(!typ_matches("at+jwt", "rt+jwt"));
    }

    #[test]
    fn revocation_list_prunes_and_orders_cutoffs() {
        let list = RevocationList::new(Duration::from_secs(60));
        let t0 = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let user = UserId::from_uuid(uuid::Uuid::from_u128(1));
        let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(2));
        let other_tenant = TenantId::from_uuid(uuid::Uuid::from_u128(3));
        list.revoke_user(tenant, user, t0 + chrono::Duration::seconds(5), t0);
        list.revoke_user(tenant, user, t0, t0);
        assert_eq!(list.user_cutoff(tenant, user), Some(1_700_000_005));
        assert_eq!(list.user_cutoff(other_tenant, user), None);
        let claims = |tenant: TenantId, iat: i64| Registered {
            iss: None,
            aud: None,
            exp: None,
            nbf: None,
            iat: Some(iat),
            jti: None,
            tenant_id: Some(tenant),
            user_id: Some(user),
            session_id: None,
        };
        assert_eq!(
            list.check(&claims(tenant, 1_700_000_005)),
            Err(TokenError::Revoked)
        );
        assert_eq!(list.check(&claims(tenant, 1_700_000_006)), Ok(()));
        // The same user id in another tenant is another user.
        assert_eq!(list.check(&claims(other_tenant, 1_700_000_005)), Ok(()));
        for i in 0..300 {
            list.revoke_jti(
                tenant,
                &format!("j{i}"),
                1_700_000_010,
                t0 + chrono::Duration::seconds(120),
            );
        }
        // Expired jtis and old user cutoffs were swept.
        assert_eq!(list.user_cutoff(tenant, user), None);
        assert!(list.read().jtis.len() < 300);
    }
}
