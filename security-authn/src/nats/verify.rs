//! Verifying NATS JWTs against a trusted operator: the chain user →
//! account (or one of its signing keys) → operator (or one of its signing
//! keys), expiry, `nbf`, revocations and scoped signing keys, as
//! `nats-server` checks them at connect.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use chrono::{DateTime, Utc};

use super::claims::{
    AccountJwtClaims, AccountNats, NatsUserPermissionLimits, OperatorClaims, OperatorNats,
    UserClaims, UserNats, is_public_key,
};
use super::error::NatsJwtError;
use super::jwt::{DecodedJwt, decode_jwt};

/// A public key, parsed once.
struct Verifier(nkeys::KeyPair);

impl Verifier {
    fn parse(key: &str, field: &'static str, expected: &'static str) -> Result<Self, NatsJwtError> {
        nkeys::KeyPair::from_public_key(key)
            .map(Self)
            .map_err(|_| NatsJwtError::Key { field, expected })
    }
}

/// An account JWT that verified against the operator, with its keys parsed.
struct TrustedAccount {
    claims: AccountJwtClaims,
    jwt: String,
    identity: Verifier,
    /// Signing keys and, for scoped ones, their template.
    signing_keys: HashMap<String, (Verifier, Option<NatsUserPermissionLimits>)>,
}

/// What a verified user JWT grants.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedUser {
    /// The user's claims as signed.
    pub claims: UserClaims,
    /// The account's public key.
    pub account: String,
    /// The key that signed the user JWT (the account or a signing key).
    pub signer: String,
    /// Whether the signer is a scoped key (its template applies).
    pub scoped: bool,
    /// The permissions and limits the server applies: the scope's template
    /// for a scoped signer, the JWT's own otherwise.
    pub permissions: NatsUserPermissionLimits,
}

/// A trusted operator and the account JWTs verified against it: the
/// verifier of user JWTs, as `nats-server` in operator mode is.
///
/// Account JWTs are verified once, when added (their keys are parsed then),
/// so verifying a user costs one signature check and a few lookups.
/// Nothing here reads the clock: every time check takes `now`.
pub struct NatsTrust {
    operator: OperatorClaims,
    operator_jwt: String,
    operator_keys: HashMap<String, Verifier>,
    accounts: HashMap<String, TrustedAccount>,
}

impl fmt::Debug for NatsTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsTrust")
            .field("operator", &self.operator.sub)
            .field("accounts", &self.accounts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl NatsTrust {
    /// Trusts an operator JWT: it must be a valid self-signed v2 operator
    /// JWT (`iss` = `sub`), with valid `O…` signing keys and, if named, a
    /// valid `A…` system account. An expired operator JWT is refused.
    pub fn new(operator_jwt: &str, now: DateTime<Utc>) -> Result<Self, NatsJwtError> {
        let decoded = DecodedJwt::<OperatorNats>::parse(operator_jwt)?;
        let claims = decoded.claims();
        if claims.iss != claims.sub {
            return Err(NatsJwtError::NotSelfSigned);
        }
        let identity = Verifier::parse(&claims.sub, "sub", "operator")?;
        decoded.verify_with(&identity.0)?;
        check_times(claims.exp, claims.nbf, now)?;
        let mut operator_keys = HashMap::new();
        operator_keys.insert(claims.sub.clone(), identity);
        for key in &claims.nats.signing_keys {
            if !is_public_key(key, 'O') {
                return Err(NatsJwtError::Key {
                    field: "signing_keys",
                    expected: "operator",
                });
            }
            operator_keys.insert(
                key.clone(),
                Verifier::parse(key, "signing_keys", "operator")?,
            );
        }
        if !claims.nats.system_account.is_empty()
            && !is_public_key(&claims.nats.system_account, 'A')
        {
            return Err(NatsJwtError::Key {
                field: "system_account",
                expected: "account",
            });
        }
        Ok(Self {
            operator_jwt: decoded.token().to_owned(),
            operator: decoded.into_claims(),
            operator_keys,
            accounts: HashMap::new(),
        })
    }

    /// The operator's claims.
    pub fn operator(&self) -> &OperatorClaims {
        &self.operator
    }

    /// The operator JWT.
    pub fn operator_jwt(&self) -> &str {
        &self.operator_jwt
    }

    /// The trusted account JWTs, by account public key.
    pub fn account_jwts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.accounts
            .iter()
            .map(|(key, account)| (key.as_str(), account.jwt.as_str()))
    }

    /// A trusted account's claims.
    pub fn account(&self, account_key: &str) -> Option<&AccountJwtClaims> {
        self.accounts.get(account_key).map(|a| &a.claims)
    }

    /// Verifies an account JWT against the operator (signature by the
    /// operator identity or one of its signing keys; only the latter if the
    /// operator demands strict signing-key usage) and trusts it, replacing
    /// an older JWT of the same account. Expiry is checked when a user
    /// connects, as the server does, not here.
    pub fn add_account(&mut self, account_jwt: &str) -> Result<&AccountJwtClaims, NatsJwtError> {
        let decoded = DecodedJwt::<AccountNats>::parse(account_jwt)?;
        let claims = decoded.claims();
        let verifier = self
            .operator_keys
            .get(&claims.iss)
            .ok_or(NatsJwtError::UntrustedIssuer)?;
        if self.operator.nats.strict_signing_key_usage && claims.iss == self.operator.sub {
            return Err(NatsJwtError::UntrustedIssuer);
        }
        decoded.verify_with(&verifier.0)?;
        let identity = Verifier::parse(&claims.sub, "sub", "account")?;
        let mut signing_keys = HashMap::new();
        for key in &claims.nats.signing_keys {
            let verifier = Verifier::parse(key.key(), "signing_keys", "account")?;
            if !key.key().starts_with('A') {
                return Err(NatsJwtError::Key {
                    field: "signing_keys",
                    expected: "account",
                });
            }
            signing_keys.insert(
                key.key().to_owned(),
                (verifier, key.scope().map(|s| s.template.clone())),
            );
        }
        let key = claims.sub.clone();
        let account = TrustedAccount {
            jwt: decoded.token().to_owned(),
            claims: decoded.into_claims(),
            identity,
            signing_keys,
        };
        let slot = match self.accounts.entry(key) {
            Entry::Occupied(mut e) => {
                e.insert(account);
                e.into_mut()
            }
            Entry::Vacant(e) => e.insert(account),
        };
        Ok(&slot.claims)
    }

    /// Verifies a user JWT at `now` as the server does at connect: a v2
    /// user JWT; its account (`issuer_account`, or else `iss`) trusted; its
    /// signer the account identity (without `issuer_account`) or one of the
    /// account's current signing keys (with it); a valid signature; not
    /// expired, not before `nbf`; not revoked by the account (for the user
    /// or for all); the account not expired; and, for a scoped signer, no
    /// permissions or limits of its own.
    pub fn verify_user(
        &self,
        user_jwt: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedUser, NatsJwtError> {
        let decoded = DecodedJwt::<UserNats>::parse(user_jwt)?;
        let claims = decoded.claims();
        let by_signing_key = !claims.nats.issuer_account.is_empty();
        let account_key = if by_signing_key {
            if !is_public_key(&claims.nats.issuer_account, 'A') {
                return Err(NatsJwtError::Key {
                    field: "issuer_account",
                    expected: "account",
                });
            }
            &claims.nats.issuer_account
        } else {
            &claims.iss
        };
        let account = self
            .accounts
            .get(account_key)
            .ok_or(NatsJwtError::UnknownAccount)?;
        let (verifier, scope) = if by_signing_key {
            let (verifier, scope) = account
                .signing_keys
                .get(&claims.iss)
                .ok_or(NatsJwtError::UntrustedIssuer)?;
            (verifier, scope.as_ref())
        } else {
            (&account.identity, None)
        };
        decoded.verify_with(&verifier.0)?;
        check_times(claims.exp, claims.nbf, now)?;
        if account.claims.nats.is_revoked(&claims.sub, claims.iat) {
            return Err(NatsJwtError::Revoked);
        }
        if account.claims.exp.is_some_and(|exp| now.timestamp() > exp) {
            return Err(NatsJwtError::AccountExpired);
        }
        let permissions = match scope {
            Some(template) => {
                if !claims.nats.has_no_permissions_or_limits() {
                    return Err(NatsJwtError::ScopedUserHasPermissions);
                }
                template.clone()
            }
            None => claims.nats.permission_limits(),
        };
        Ok(VerifiedUser {
            account: account_key.clone(),
            signer: claims.iss.clone(),
            scoped: scope.is_some(),
            permissions,
            claims: decoded.into_claims(),
        })
    }
}

/// `exp` passed (strictly: Go refuses when now > exp) or `nbf` not reached.
fn check_times(exp: Option<i64>, nbf: Option<i64>, now: DateTime<Utc>) -> Result<(), NatsJwtError> {
    let now = now.timestamp();
    if exp.is_some_and(|exp| now > exp) {
        return Err(NatsJwtError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now) {
        return Err(NatsJwtError::NotYetValid);
    }
    Ok(())
}

/// Verifies a whole chain from scratch: the operator JWT, the account JWT
/// against it, the user JWT against the account (three signature checks).
/// A server or a service that verifies many users keeps a [`NatsTrust`]
/// instead and pays one signature check per user.
pub fn verify_user_chain(
    operator_jwt: &str,
    account_jwt: &str,
    user_jwt: &str,
    now: DateTime<Utc>,
) -> Result<VerifiedUser, NatsJwtError> {
    let mut trust = NatsTrust::new(operator_jwt, now)?;
    trust.add_account(account_jwt)?;
    trust.verify_user(user_jwt, now)
}

/// Decodes an account JWT and checks its signature by its own issuer
/// (not whether the issuer is trusted).
pub fn decode_account_jwt(token: &str) -> Result<AccountJwtClaims, NatsJwtError> {
    decode_jwt::<AccountNats>(token).map(DecodedJwt::into_claims)
}

/// Decodes a user JWT and checks its signature by its own issuer (not
/// whether the issuer is trusted).
pub fn decode_user_jwt(token: &str) -> Result<UserClaims, NatsJwtError> {
    decode_jwt::<UserNats>(token).map(DecodedJwt::into_claims)
}

/// Decodes an operator JWT and checks its signature by its own issuer.
pub fn decode_operator_jwt(token: &str) -> Result<OperatorClaims, NatsJwtError> {
    decode_jwt::<OperatorNats>(token).map(DecodedJwt::into_claims)
}
