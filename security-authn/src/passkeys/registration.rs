//! Registering a passkey for a signed-in user, and managing the user's
//! passkeys (list, rename, remove).

use secrecy::SecretString;
use security_core::{
    Actor, ChallengePurpose, PasskeyId, RegisteredPasskey, TenantId, UserCommand, UserId,
    check_passkey_name,
};
use webauthn_rs::prelude::{
    AttestedPasskeyRegistration, Credential, CredentialID, Passkey, PasskeyRegistration,
    RegisterPublicKeyCredential, Webauthn,
};

use super::config::Attestation;
use super::{MAX_RESPONSE_BYTES, PasskeyCeremony, PasskeyInfo};
use crate::error::AuthnError;
use crate::service::AuthenticationService;
use crate::tickets::Lookup;

/// Prefix of passkey registration challenges.
pub(crate) const REGISTRATION_PREFIX: &str = "sec_pkr_";

pub(crate) fn registration_purpose() -> ChallengePurpose {
    ChallengePurpose::other("passkey_register").unwrap_or_else(ChallengePurpose::mfa)
}

/// Asks for a discoverable credential (a resident key, which logs in
/// without a username) in creation options.
fn require_resident_key(options: &mut serde_json::Value) {
    if let Some(selection) = options
        .get_mut("publicKey")
        .and_then(|p| p.get_mut("authenticatorSelection"))
        .and_then(serde_json::Value::as_object_mut)
    {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
}

impl AuthenticationService {
    /// The verifier of a tenant's relying party.
    pub(crate) fn webauthn(&self, tenant: TenantId) -> Result<&Webauthn, AuthnError> {
        self.inner
            .passkeys
            .of(tenant)
            .map(AsRef::as_ref)
            .ok_or(AuthnError::PasskeysNotConfigured)
    }

    /// Starts registering a passkey for a signed-in user (the caller has
    /// authenticated it). `discoverable` asks for a resident key, which
    /// logs in without a username; otherwise the authenticator chooses
    /// (a passkey that is not discoverable serves as a second factor).
    /// The user's passkeys are excluded (one authenticator registers
    /// once). The ceremony is bound to the tenant and the user.
    #[tracing::instrument(
        name = "authn.start_passkey_registration",
        skip_all,
        fields(
            operation = "start_passkey_registration",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn start_passkey_registration(
        &self,
        tenant: TenantId,
        user_id: UserId,
        discoverable: bool,
    ) -> Result<PasskeyCeremony, AuthnError> {
        crate::observe::traced(
            "start_passkey_registration",
            async {
                let webauthn = self.webauthn(tenant)?;
                let now = self.now();
                let user = self.existing_user(tenant, user_id).await?;
                user.check_can_authenticate(now).map_err(AuthnError::from)?;
                let exclude: Vec<CredentialID> = user
                    .passkeys
                    .iter()
                    .map(|p| CredentialID::from(p.id.to_bytes()))
                    .collect();
                let exclude = (!exclude.is_empty()).then_some(exclude);
                let (options, state) = match &self.inner.config.passkeys.attestation {
                    Attestation::None => {
                        let (options, state) = webauthn
                            .start_passkey_registration(
                                user_id.as_uuid(),
                                &user.username,
                                &user.username,
                                exclude,
                            )
                            .map_err(|_| AuthnError::InvalidPasskey)?;
                        (options, serde_json::json!({ "passkey": state }))
                    }
                    Attestation::Required(cas) => {
                        let (options, state) = webauthn
                            .start_attested_passkey_registration(
                                user_id.as_uuid(),
                                &user.username,
                                &user.username,
                                exclude,
                                cas.as_ref().clone(),
                                None,
                            )
                            .map_err(|_| AuthnError::InvalidPasskey)?;
                        (options, serde_json::json!({ "attested": state }))
                    }
                };
                let mut options = serde_json::to_value(&options).map_err(AuthnError::crypto)?;
                if discoverable {
                    require_resident_key(&mut options);
                }
                let (challenge, expires_at) = self
                    .issue_challenge(
                        REGISTRATION_PREFIX,
                        tenant,
                        user_id,
                        registration_purpose(),
                        state,
                        now,
                    )
                    .await?;
                Ok(PasskeyCeremony {
                    challenge,
                    options,
                    expires_at,
                })
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Finishes a registration with the browser's answer (the JSON of the
    /// new `PublicKeyCredential`) and the name the user chose. The
    /// ceremony must have been started for this tenant and user, and is
    /// used up whatever the outcome. The response is checked (origin, RP
    /// id, user verification, attestation as configured) before anything
    /// is stored.
    #[tracing::instrument(
        name = "authn.finish_passkey_registration",
        skip_all,
        fields(
            operation = "finish_passkey_registration",
            tenant = %tenant,
            user_id = %user_id,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn finish_passkey_registration(
        &self,
        tenant: TenantId,
        user_id: UserId,
        challenge: &SecretString,
        response: &str,
        name: &str,
    ) -> Result<PasskeyInfo, AuthnError> {
        crate::observe::traced(
            "finish_passkey_registration",
            async {
                check_passkey_name(name).map_err(AuthnError::from)?;
                if response.len() > MAX_RESPONSE_BYTES {
                    return Err(AuthnError::InvalidPasskey);
                }
                let webauthn = self.webauthn(tenant)?;
                let now = self.now();
                let Lookup::Found(pending) = self
                    .take_challenge(REGISTRATION_PREFIX, challenge, &registration_purpose(), now)
                    .await?
                else {
                    return Err(AuthnError::InvalidChallenge);
                };
                if pending.tenant_id != tenant || pending.user_id != user_id {
                    return Err(AuthnError::InvalidChallenge);
                }
                let response: RegisterPublicKeyCredential =
                    serde_json::from_str(response).map_err(|_| AuthnError::InvalidPasskey)?;
                let passkey = finish(webauthn, &response, &pending.payload)?;
                let credential = Credential::from(passkey.clone());
                let registered = RegisteredPasskey {
                    id: PasskeyId::from_bytes(credential.cred_id.as_slice())
                        .map_err(|_| AuthnError::InvalidPasskey)?,
                    name: name.to_owned(),
                    credential: serde_json::to_value(&passkey).map_err(AuthnError::crypto)?,
                    sign_count: credential.counter,
                    transports: response
                        .response
                        .transports
                        .iter()
                        .flatten()
                        .filter_map(|t| {
                            serde_json::to_value(t)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                        })
                        .collect(),
                    backup_eligible: credential.backup_eligible,
                    backup_state: credential.backup_state,
                    resident: response.extensions.cred_props.as_ref().and_then(|p| p.rk),
                    registered_at: now,
                    last_used_at: None,
                };
                let ctx = self.context(tenant, Some(Actor::user(user_id)));
                let outcome = self
                    .user_command(
                        &ctx,
                        user_id,
                        UserCommand::RegisterPasskey {
                            passkey: registered.clone(),
                        },
                    )
                    .await?;
                outcome
                    .state
                    .passkey(&registered.id)
                    .map(PasskeyInfo::from)
                    .ok_or(AuthnError::InvalidPasskey)
            },
            crate::observe::outcome,
        )
        .await
    }

    /// The user's passkeys, in registration order.
    #[tracing::instrument(
        name = "authn.passkeys",
        skip_all,
        fields(operation = "passkeys", tenant = %tenant, user_id = %user_id, outcome = tracing::field::Empty)
    )]
    pub async fn passkeys(
        &self,
        tenant: TenantId,
        user_id: UserId,
    ) -> Result<Vec<PasskeyInfo>, AuthnError> {
        crate::observe::traced(
            "passkeys",
            async {
                let user = self.existing_user(tenant, user_id).await?;
                Ok(user.passkeys.iter().map(PasskeyInfo::from).collect())
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Renames one of the user's passkeys.
    #[tracing::instrument(
        name = "authn.rename_passkey",
        skip_all,
        fields(operation = "rename_passkey", tenant = %tenant, user_id = %user_id, outcome = tracing::field::Empty)
    )]
    pub async fn rename_passkey(
        &self,
        tenant: TenantId,
        user_id: UserId,
        id: &PasskeyId,
        name: &str,
    ) -> Result<(), AuthnError> {
        crate::observe::traced(
            "rename_passkey",
            async {
                let ctx = self.context(tenant, Some(Actor::user(user_id)));
                self.existing_user(tenant, user_id).await?;
                let command = UserCommand::RenamePasskey {
                    id: id.clone(),
                    name: name.to_owned(),
                };
                self.user_command(&ctx, user_id, command).await.map(|_| ())
            },
            crate::observe::outcome,
        )
        .await
    }

    /// Removes one of the user's passkeys. The sessions it opened (alone
    /// or as a second factor) end: their refresh tokens are refused, and
    /// the user's access tokens issued until now too (in this process at
    /// once, in the others within the revocation projection's lag).
    #[tracing::instrument(
        name = "authn.remove_passkey",
        skip_all,
        fields(operation = "remove_passkey", tenant = %tenant, user_id = %user_id, outcome = tracing::field::Empty)
    )]
    pub async fn remove_passkey(
        &self,
        tenant: TenantId,
        user_id: UserId,
        id: &PasskeyId,
    ) -> Result<(), AuthnError> {
        crate::observe::traced(
            "remove_passkey",
            async {
                let ctx = self.context(tenant, Some(Actor::user(user_id)));
                self.existing_user(tenant, user_id).await?;
                let command = UserCommand::RemovePasskey { id: id.clone() };
                self.user_command(&ctx, user_id, command).await.map(|_| ())
            },
            crate::observe::outcome,
        )
        .await
    }
}

/// Verifies a registration response against the ceremony's state.
fn finish(
    webauthn: &Webauthn,
    response: &RegisterPublicKeyCredential,
    payload: &serde_json::Value,
) -> Result<Passkey, AuthnError> {
    if let Some(state) = payload.get("passkey") {
        let state: PasskeyRegistration =
            serde_json::from_value(state.clone()).map_err(|_| AuthnError::InvalidChallenge)?;
        return webauthn
            .finish_passkey_registration(response, &state)
            .map_err(refused);
    }
    let state: AttestedPasskeyRegistration = payload
        .get("attested")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .ok_or(AuthnError::InvalidChallenge)?;
    webauthn
        .finish_attested_passkey_registration(response, &state)
        .map(Passkey::from)
        .map_err(refused)
}

#[allow(
    clippy::needless_pass_by_value,
    reason = "the shape `map_err` passes the error in"
)]
fn refused(error: webauthn_rs::prelude::WebauthnError) -> AuthnError {
    tracing::debug!(%error, "passkey registration refused");
    AuthnError::InvalidPasskey
}
