//! A software passkey authenticator behind a WebAuthn client (the
//! `passkey` crate), speaking the JSON a browser's
//! `PublicKeyCredential.toJSON()` gives and its `parse…OptionsFromJSON`
//! reads. Shared by the passkey tests (`#[path]`-included).

#![allow(
    dead_code,
    unreachable_pub,
    reason = "test support: each test uses part of it"
)]

use std::sync::{Arc, Mutex};

use passkey::authenticator::{
    Authenticator, CredentialStore, DiscoverabilitySupport, StoreInfo, UiHint, UserCheck,
    UserValidationMethod,
};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::Passkey;
use passkey::types::ctap2::make_credential::{
    Options, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use passkey::types::ctap2::{Aaguid, Ctap2Error, StatusCode};
use passkey::types::webauthn::{
    CredentialCreationOptions, CredentialRequestOptions, PublicKeyCredentialDescriptor,
};
use url::Url;

/// An authenticator's credential storage, shared so a test can copy the
/// credential out and put an old copy back (a cloned authenticator).
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Option<Passkey>>>);

#[async_trait::async_trait]
impl CredentialStore for Shared {
    type PasskeyItem = Passkey;

    async fn find_credentials(
        &self,
        ids: Option<&[PublicKeyCredentialDescriptor]>,
        _rp_id: &str,
        _user_handle: Option<&[u8]>,
    ) -> Result<Vec<Passkey>, StatusCode> {
        let stored = self.0.lock().unwrap().clone();
        let found = match ids {
            Some(ids) if !ids.is_empty() => {
                stored.filter(|pk| ids.iter().any(|d| d.id == pk.credential_id))
            }
            _ => stored,
        };
        found
            .map(|pk| vec![pk])
            .ok_or(Ctap2Error::NoCredentials.into())
    }

    async fn save_credential(
        &mut self,
        cred: Passkey,
        _user: PublicKeyCredentialUserEntity,
        _rp: PublicKeyCredentialRpEntity,
        _options: Options,
    ) -> Result<(), StatusCode> {
        *self.0.lock().unwrap() = Some(cred);
        Ok(())
    }

    async fn update_credential(&mut self, cred: &Passkey) -> Result<(), StatusCode> {
        *self.0.lock().unwrap() = Some(cred.clone());
        Ok(())
    }

    async fn get_info(&self) -> StoreInfo {
        StoreInfo {
            discoverability: DiscoverabilitySupport::ForcedDiscoverable,
        }
    }
}

/// The user is present and verified (a PIN or biometric was given).
struct Verified;

#[async_trait::async_trait]
impl UserValidationMethod for Verified {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        _presence: bool,
        _verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }
}

/// A software authenticator with a signature counter, behind a browser.
#[derive(Clone, Default)]
pub struct SoftKey {
    store: Shared,
}

impl SoftKey {
    fn authenticator(&self) -> Authenticator<Shared, Verified, RustCryptoBackend> {
        let mut authenticator = Authenticator::new(
            Aaguid::new_empty(),
            self.store.clone(),
            Verified,
            RustCryptoBackend,
        );
        authenticator.set_make_credentials_with_signature_counter(true);
        authenticator
    }

    /// `navigator.credentials.create` on `origin`; the JSON of the new
    /// credential.
    pub async fn create(&self, origin: &str, options: &serde_json::Value) -> String {
        let options: CredentialCreationOptions = serde_json::from_value(options.clone()).unwrap();
        let origin = Url::parse(origin).unwrap();
        let created = Client::new(self.authenticator())
            .allows_insecure_localhost(true)
            .register(&origin, options, DefaultClientData)
            .await
            .unwrap();
        serde_json::to_string(&created).unwrap()
    }

    /// `navigator.credentials.get` on `origin`; the JSON of the assertion.
    pub async fn get(&self, origin: &str, options: &serde_json::Value) -> String {
        let options: CredentialRequestOptions = serde_json::from_value(options.clone()).unwrap();
        let origin = Url::parse(origin).unwrap();
        let asserted = Client::new(self.authenticator())
            .allows_insecure_localhost(true)
            .authenticate(&origin, options, DefaultClientData)
            .await
            .unwrap();
        serde_json::to_string(&asserted).unwrap()
    }

    pub fn copy(&self) -> Option<Passkey> {
        self.store.0.lock().unwrap().clone()
    }

    pub fn restore(&self, copy: Option<Passkey>) {
        *self.store.0.lock().unwrap() = copy;
    }
}
