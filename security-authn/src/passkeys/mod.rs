//! Passkeys (WebAuthn) as a first factor (passwordless, with a
//! discoverable credential) and as the second factor after a password.
//!
//! Ceremonies are verified by `webauthn-rs`. Their state (the challenge
//! sent to the authenticator) lives in the service's shared
//! [`ChallengeStore`](security_core::ChallengeStore) under a challenge
//! token the client sends back, so a ceremony started on one replica
//! completes on any other, exactly once. Registered passkeys are events on
//! the user's stream ([`RegisteredPasskey`]).
//!
//! Options and responses cross this API as JSON in WebAuthn's own format
//! (`PublicKeyCredentialCreationOptions` wrapped in `{"publicKey": …}`,
//! and the JSON form of a `PublicKeyCredential`), which a browser's
//! `PublicKeyCredential.parseCreationOptionsFromJSON` /
//! `parseRequestOptionsFromJSON` and `credential.toJSON()` produce and
//! read.
//!
//! - Registration: [`AuthenticationService::start_passkey_registration`],
//!   [`AuthenticationService::finish_passkey_registration`]; management:
//!   [`AuthenticationService::passkeys`],
//!   [`AuthenticationService::rename_passkey`],
//!   [`AuthenticationService::remove_passkey`] (which ends the sessions
//!   the passkey opened).
//! - Passwordless: [`AuthenticationService::start_passkey_login`],
//!   [`AuthenticationService::finish_passkey_login`].
//! - Second factor: a password login of a user with a passkey answers
//!   [`LoginOutcome::MfaRequired`](crate::LoginOutcome::MfaRequired) with
//!   [`MfaChallenge::passkey_options`](crate::MfaChallenge::passkey_options);
//!   [`AuthenticationService::verify_mfa_passkey`] completes it.
//!
//! [`AuthenticationService::start_passkey_registration`]: crate::AuthenticationService::start_passkey_registration
//! [`AuthenticationService::finish_passkey_registration`]: crate::AuthenticationService::finish_passkey_registration
//! [`AuthenticationService::passkeys`]: crate::AuthenticationService::passkeys
//! [`AuthenticationService::rename_passkey`]: crate::AuthenticationService::rename_passkey
//! [`AuthenticationService::remove_passkey`]: crate::AuthenticationService::remove_passkey
//! [`AuthenticationService::start_passkey_login`]: crate::AuthenticationService::start_passkey_login
//! [`AuthenticationService::finish_passkey_login`]: crate::AuthenticationService::finish_passkey_login
//! [`AuthenticationService::verify_mfa_passkey`]: crate::AuthenticationService::verify_mfa_passkey

mod config;
mod login;
mod registration;
mod verify;

pub(crate) use config::Verifiers;
pub use config::{Attestation, PasskeyConfig, RelyingParty};
pub(crate) use login::assertion_ceremony;
pub use security_core::{PasskeyId, PasskeyRefusal, RegisteredPasskey};
pub use verify::{AssertionCheck, AssertionFailure, verify_assertion};

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;

/// The longest registration or assertion response read, as JSON text
/// (checked before parsing).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A ceremony started: the options for the browser
/// (`navigator.credentials.create` / `get`) and the challenge token to
/// send back with its answer. `Debug` hides the token.
pub struct PasskeyCeremony {
    /// The token to send back with the authenticator's response. Secret.
    pub challenge: SecretString,
    /// The WebAuthn options, as JSON (`{"publicKey": …}`).
    pub options: serde_json::Value,
    /// When the ceremony expires.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for PasskeyCeremony {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasskeyCeremony")
            .field("challenge", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A registered passkey as its owner sees it (no key material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasskeyInfo {
    /// The credential id (base64url).
    pub id: PasskeyId,
    /// Its name.
    pub name: String,
    /// How its authenticator is reached.
    pub transports: Vec<String>,
    /// Whether it may be synced to other devices.
    pub backup_eligible: bool,
    /// Whether it is synced.
    pub backup_state: bool,
    /// Whether it logs in without a username, when known.
    pub resident: Option<bool>,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// When it last logged in.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&RegisteredPasskey> for PasskeyInfo {
    fn from(p: &RegisteredPasskey) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            transports: p.transports.clone(),
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
            resident: p.resident,
            registered_at: p.registered_at,
            last_used_at: p.last_used_at,
        }
    }
}
