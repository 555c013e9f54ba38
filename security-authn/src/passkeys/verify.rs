//! One passkey assertion checked against a registered passkey, with the
//! signature counter and backup state last recorded on the user's stream.

use security_core::{PasskeyRefusal, RegisteredPasskey};
use webauthn_rs::prelude::{
    Credential, DiscoverableAuthentication, Passkey, PublicKeyCredential, Webauthn, WebauthnError,
};

/// What a verified assertion showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssertionCheck {
    /// The authenticator's signature counter.
    pub sign_count: u32,
    /// Whether the credential is backed up now.
    pub backup_state: bool,
}

/// Why an assertion was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionFailure {
    /// It did not verify (signature, challenge, origin, RP id, user
    /// verification), or the stored passkey could not be read.
    Invalid,
    /// It verified but must be refused: a cloned-credential signal.
    Refused(PasskeyRefusal),
}

/// The verifier's credential for a stored passkey, at the counter and
/// backup state last recorded.
fn credential_of(stored: &RegisteredPasskey) -> Option<Credential> {
    let passkey: Passkey = serde_json::from_value(stored.credential.clone()).ok()?;
    let mut credential = Credential::from(passkey);
    credential.counter = stored.sign_count;
    credential.backup_state = stored.backup_state;
    Some(credential)
}

/// The signature counter an assertion presents (bytes 33..37 of the
/// authenticator data), read without verifying anything.
fn presented_counter(response: &PublicKeyCredential) -> u32 {
    response
        .response
        .authenticator_data
        .get(33..37)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

/// Verifies an assertion for a stored passkey: signature, challenge,
/// origin, RP id, user verification, then the counter and backup flags
/// against those last recorded. Every ceremony (passwordless or second
/// factor) keeps a discoverable state: the credential is the stored
/// passkey the caller chose, so the state's own list plays no part.
pub fn verify_assertion(
    webauthn: &Webauthn,
    stored: &RegisteredPasskey,
    response: &PublicKeyCredential,
    state: DiscoverableAuthentication,
) -> Result<AssertionCheck, AssertionFailure> {
    let credential = credential_of(stored).ok_or(AssertionFailure::Invalid)?;
    if response.get_credential_id() != credential.cred_id.as_slice() {
        return Err(AssertionFailure::Invalid);
    }
    let result = webauthn.finish_discoverable_authentication_v2(response, state, &credential);
    match result {
        Ok(result) if result.user_verified() => Ok(AssertionCheck {
            sign_count: result.counter(),
            backup_state: result.backup_state(),
        }),
        Ok(_) => Err(AssertionFailure::Invalid),
        Err(WebauthnError::CredentialPossibleCompromise) => Err(AssertionFailure::Refused(
            PasskeyRefusal::SignCountRegression {
                stored: stored.sign_count,
                presented: presented_counter(response),
            },
        )),
        Err(WebauthnError::CredentialBackupEligibilityInconsistent) => Err(
            AssertionFailure::Refused(PasskeyRefusal::BackupFlagsChanged),
        ),
        Err(error) => {
            tracing::debug!(%error, "passkey assertion refused");
            Err(AssertionFailure::Invalid)
        }
    }
}
