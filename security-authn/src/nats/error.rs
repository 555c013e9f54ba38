//! Errors of NATS decentralized auth.

use security_core::{AdminError, DomainError, KeyId, KeyStoreError, PolicyId};

use super::claims::ClaimType;

/// Why a NATS JWT was refused while decoding or verifying it.
///
/// Every variant is a refusal: the token must not be trusted. None of the
/// messages includes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NatsJwtError {
    /// Not three base64url segments of JSON, or a field of the wrong shape.
    /// Refuse the token.
    #[error("nats jwt is malformed")]
    Malformed,
    /// Larger than [`MAX_JWT_LEN`](crate::NATS_MAX_JWT_LEN). Refuse the token.
    #[error("nats jwt is too large")]
    TooLarge,
    /// The header is not `{"typ":"JWT","alg":"ed25519-nkey"}`. Refuse the
    /// token (v1 JWTs and other algorithms are not accepted).
    #[error("nats jwt header is not a v2 nkey header")]
    Header,
    /// `nats.version` is not 2. Refuse the token.
    #[error("nats jwt version is not supported")]
    Version,
    /// The JWT is of another type than the one expected (e.g. an account
    /// JWT where a user JWT was expected). Refuse the token.
    #[error("expected a nats {expected} jwt, found {found}")]
    ClaimType {
        /// The type expected.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// A key field (`iss`, `sub`, `issuer_account`, a signing key) is not a
    /// valid public nkey of the expected type. Refuse the token.
    #[error("nats jwt field {field} is not a valid {expected} public key")]
    Key {
        /// The field.
        field: &'static str,
        /// The key type expected (`operator`, `account`, `user`).
        expected: &'static str,
    },
    /// The signature does not verify with the issuer's key. Refuse the
    /// token: it was altered or forged.
    #[error("nats jwt signature is invalid")]
    Signature,
    /// An operator JWT that is not self-signed. Refuse it.
    #[error("operator jwt is not self-signed")]
    NotSelfSigned,
    /// The issuer is not the trusted operator (or one of its signing keys),
    /// or not the account (or one of its current signing keys): e.g. a key
    /// that was revoked by removing it from the JWT that listed it.
    #[error("nats jwt issuer is not trusted")]
    UntrustedIssuer,
    /// The user's account is not among the trusted accounts. Load its JWT
    /// first, or refuse the user.
    #[error("nats account is not trusted")]
    UnknownAccount,
    /// The JWT has expired. The holder needs a new one.
    #[error("nats jwt has expired")]
    Expired,
    /// The JWT is not valid yet (`nbf`). Refuse it until then.
    #[error("nats jwt is not valid yet")]
    NotYetValid,
    /// The account JWT of the user has expired: its users are refused.
    #[error("nats account has expired")]
    AccountExpired,
    /// The user was revoked in its account's `revocations` (alone, or with
    /// every user of a suspended account). The holder needs a new JWT,
    /// if it may have one.
    #[error("nats user jwt is revoked")]
    Revoked,
    /// A user signed by a scoped signing key carries permissions or limits
    /// of its own; the server refuses such a user.
    #[error("user signed by a scoped key carries its own permissions or limits")]
    ScopedUserHasPermissions,
}

impl NatsJwtError {
    pub(crate) fn claim_type(expected: ClaimType, found: ClaimType) -> Self {
        Self::ClaimType {
            expected: expected.as_str(),
            found: found.as_str(),
        }
    }
}

/// An operation of NATS decentralized auth failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// A JWT was refused (see the inner error).
    #[error(transparent)]
    Jwt(#[from] NatsJwtError),
    /// A domain rule refused the operation (an inactive account, a locked
    /// user, a revoked key). Show it to the administrator.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// An admin command failed (rejected, conflict, store). See
    /// [`AdminError`]; a conflict may be retried.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The key store failed or refused the key (revoked, rotated out,
    /// not exportable). A backend failure may be retried; log it.
    #[error("key store refused the nats operation")]
    KeyStore(#[source] KeyStoreError),
    /// The key store returned a signature that is not 64 bytes: the key is
    /// not an Ed25519 key. A configuration error; log it.
    #[error("key {0} did not produce an ed25519 signature")]
    NotEd25519(KeyId),
    /// An aggregate lacks a key NATS needs (an account without identity
    /// key, a user without a `U…` nkey credential, an operator without
    /// an active key). Give it one first.
    #[error("{0} has no nats key")]
    MissingKey(&'static str),
    /// A key is not a valid public nkey of the type NATS needs.
    #[error("{0} is not a valid nats public key of the expected type")]
    InvalidKey(&'static str),
    /// The account belongs to another operator than the one given.
    #[error("the account is not signed by this operator")]
    WrongOperator,
    /// The operator's identity key is revoked or expired: it can no longer
    /// sign its own JWT. NATS has no way to replace an operator identity;
    /// a new operator is needed.
    #[error("operator identity key is no longer valid")]
    OperatorIdentityRevoked,
    /// The signing key chosen is unknown to the account, revoked, or
    /// (for the default signer) scoped.
    #[error("signing key {0} cannot sign for this account")]
    SigningKey(KeyId),
    /// A policy of the user was not given, or a policy given is not the
    /// user's.
    #[error("policy {0} does not match the user's policies")]
    PolicyMismatch(PolicyId),
    /// An account imports from an account whose public key was not given.
    #[error("an import names an account whose public key is unknown")]
    UnknownImportAccount,
    /// The operator names no system account, or the system account's JWT
    /// is missing from a server configuration (the server would not start).
    #[error("the system account is missing")]
    MissingSystemAccount,
    /// A value put into a server configuration holds characters that would
    /// break out of its quotes.
    #[error("{0} holds characters not allowed in a server configuration")]
    ConfigValue(&'static str),
    /// A `.creds` file is not in the format NATS writes.
    #[error("nats credentials are malformed")]
    MalformedCreds,
    /// Serializing claims failed (should not happen). Log it.
    #[error("nats claims could not be serialized")]
    Serialize(#[source] serde_json::Error),
}

impl From<KeyStoreError> for NatsError {
    fn from(e: KeyStoreError) -> Self {
        Self::KeyStore(e)
    }
}
