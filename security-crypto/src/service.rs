//! The `EncryptionService` facade.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretSlice, SecretString};
use security_core::{
    KeyId, KeyInfo, KeyOwner, KeyPurpose, KeySpec, KeyStore, KeyStoreError, PasswordHashError,
    PasswordHasher, SealedSecret, TenantId,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::error::CryptoError;
use crate::fernet::{FernetKeyRing, Plaintext};
use crate::hash::LookupHash;
use crate::signing::JwkSet;

/// The encryption API an application calls: sealing secrets per subject,
/// crypto-shredding, keys (create, rotate, revoke, destroy, sign, verify,
/// export, JWKS), keyed lookup hashes, passwords, and application-level
/// Fernet encryption.
///
/// Tenant-aware: every operation on a key names the tenant (or the owner)
/// it acts for, and a key of another tenant is reported as
/// [`KeyStoreError::NotFound`], exactly like a key that does not exist.
/// Unsealing goes further and requires the sealed value's data key to
/// belong to the very owner named, so a value sealed for one subject cannot
/// be opened in the name of another.
#[derive(Clone)]
pub struct EncryptionService {
    keys: Arc<dyn KeyStore>,
    passwords: Arc<dyn PasswordHasher>,
    ring: Option<Arc<FernetKeyRing>>,
}

impl EncryptionService {
    /// A service over a key store and a password hasher.
    pub fn new(keys: Arc<dyn KeyStore>, passwords: Arc<dyn PasswordHasher>) -> Self {
        Self {
            keys,
            passwords,
            ring: None,
        }
    }

    /// Adds an application key ring for [`encrypt`](Self::encrypt) and
    /// [`decrypt`](Self::decrypt).
    pub fn with_key_ring(mut self, ring: FernetKeyRing) -> Self {
        self.ring = Some(Arc::new(ring));
        self
    }

    /// The key store.
    pub fn key_store(&self) -> &Arc<dyn KeyStore> {
        &self.keys
    }

    /// The password hasher.
    pub fn password_hasher(&self) -> &Arc<dyn PasswordHasher> {
        &self.passwords
    }

    // ---- keys, scoped to a tenant ------------------------------------------------

    /// A key of `tenant`; keys of other tenants are not found.
    pub async fn key(&self, tenant: TenantId, key_id: KeyId) -> Result<KeyInfo, KeyStoreError> {
        let info = self.keys.key(key_id).await?;
        if info.owner.tenant_id == tenant {
            Ok(info)
        } else {
            Err(KeyStoreError::NotFound(key_id))
        }
    }

    /// Creates a key.
    pub async fn create_key(&self, spec: KeySpec) -> Result<KeyInfo, KeyStoreError> {
        self.keys.create_key(spec).await
    }

    /// Every key of an owner, oldest first.
    pub async fn list_keys(&self, owner: KeyOwner) -> Result<Vec<KeyInfo>, KeyStoreError> {
        self.keys.list_keys(owner).await
    }

    /// Rotates a key of `tenant`; returns the successor.
    pub async fn rotate_key(
        &self,
        tenant: TenantId,
        key_id: KeyId,
    ) -> Result<KeyInfo, KeyStoreError> {
        self.key(tenant, key_id).await?;
        self.keys.rotate_key(key_id).await
    }

    /// Revokes a key of `tenant`.
    pub async fn revoke_key(
        &self,
        tenant: TenantId,
        key_id: KeyId,
    ) -> Result<KeyInfo, KeyStoreError> {
        self.key(tenant, key_id).await?;
        self.keys.revoke_key(key_id).await
    }

    /// Destroys a key of `tenant` forever.
    pub async fn destroy_key(&self, tenant: TenantId, key_id: KeyId) -> Result<(), KeyStoreError> {
        self.key(tenant, key_id).await?;
        self.keys.destroy_key(key_id).await
    }

    /// A key of `tenant` made for the application's own signatures.
    async fn application_key(
        &self,
        tenant: TenantId,
        key_id: KeyId,
    ) -> Result<KeyInfo, KeyStoreError> {
        let info = self.key(tenant, key_id).await?;
        if info.purpose == KeyPurpose::ApplicationSigning {
            Ok(info)
        } else {
            Err(KeyStoreError::WrongPurpose(key_id))
        }
    }

    /// Signs `message` with an [`ApplicationSigning`](KeyPurpose::ApplicationSigning)
    /// key of `tenant`.
    ///
    /// Any other key is refused with [`KeyStoreError::WrongPurpose`]: a
    /// token-signing key would mint access tokens, an nkey would sign NATS
    /// JWTs or connect nonces, a lookup-hashing key would compute the
    /// stored hash of any API key or refresh token. Those keys sign only
    /// what their own component builds.
    pub async fn sign(
        &self,
        tenant: TenantId,
        key_id: KeyId,
        message: &[u8],
    ) -> Result<Vec<u8>, KeyStoreError> {
        self.application_key(tenant, key_id).await?;
        self.keys.sign(key_id, message).await
    }

    /// Verifies a signature made by [`sign`](Self::sign) (an
    /// [`ApplicationSigning`](KeyPurpose::ApplicationSigning) key of
    /// `tenant`; any other key is refused with
    /// [`KeyStoreError::WrongPurpose`]: lookup hashes are checked with
    /// [`verify_lookup_hash`](Self::verify_lookup_hash), tokens with their
    /// validators).
    pub async fn verify(
        &self,
        tenant: TenantId,
        key_id: KeyId,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, KeyStoreError> {
        self.application_key(tenant, key_id).await?;
        self.keys.verify(key_id, message, signature).await
    }

    /// The private half of an exportable key of `tenant` (an nkey seed for
    /// a `.creds` file).
    pub async fn export_private_key(
        &self,
        tenant: TenantId,
        key_id: KeyId,
    ) -> Result<SecretString, KeyStoreError> {
        self.key(tenant, key_id).await?;
        self.keys.export_private_key(key_id).await
    }

    /// The JWK Set of an owner's token-signing keys that verifiers may
    /// still trust (active and rotated-out).
    pub async fn jwks(&self, owner: KeyOwner) -> Result<JwkSet, KeyStoreError> {
        let keys = self.keys.list_keys(owner).await?;
        Ok(JwkSet::from_key_infos(
            keys.iter()
                .filter(|info| info.purpose == KeyPurpose::TokenSigning),
        ))
    }

    // ---- lookup hashes with a store-held key -----------------------------------

    /// The keyed hash of a lookup token under a `LookupHashing` key of
    /// `tenant` (the key never leaves the store).
    pub async fn lookup_hash(
        &self,
        tenant: TenantId,
        key_id: KeyId,
        token: &SecretString,
    ) -> Result<LookupHash, KeyStoreError> {
        let info = self.key(tenant, key_id).await?;
        if info.purpose != KeyPurpose::LookupHashing {
            return Err(KeyStoreError::WrongPurpose(key_id));
        }
        let tag = self
            .keys
            .sign(key_id, token.expose_secret().as_bytes())
            .await?;
        let bytes: [u8; 32] = tag
            .try_into()
            .map_err(|_| KeyStoreError::WrongPurpose(key_id))?;
        Ok(LookupHash::from_bytes(bytes))
    }

    /// Whether `token` hashes to `expected` under the key (constant time).
    /// Still works after the key was rotated, so stored hashes stay valid.
    pub async fn verify_lookup_hash(
        &self,
        tenant: TenantId,
        key_id: KeyId,
        token: &SecretString,
        expected: &LookupHash,
    ) -> Result<bool, KeyStoreError> {
        let info = self.key(tenant, key_id).await?;
        if info.purpose != KeyPurpose::LookupHashing {
            return Err(KeyStoreError::WrongPurpose(key_id));
        }
        self.keys
            .verify(
                key_id,
                token.expose_secret().as_bytes(),
                expected.as_bytes(),
            )
            .await
    }

    // ---- sealing and crypto-shredding ------------------------------------------

    /// Seals bytes under the owner's data key (created on first use).
    pub async fn seal(
        &self,
        owner: KeyOwner,
        plaintext: &[u8],
    ) -> Result<SealedSecret, KeyStoreError> {
        self.keys.seal(owner, plaintext).await
    }

    /// Seals a secret string.
    pub async fn seal_secret(
        &self,
        owner: KeyOwner,
        secret: &SecretString,
    ) -> Result<SealedSecret, KeyStoreError> {
        self.keys
            .seal(owner, secret.expose_secret().as_bytes())
            .await
    }

    /// Seals a value as JSON.
    pub async fn seal_json<T: Serialize + ?Sized + Sync>(
        &self,
        owner: KeyOwner,
        value: &T,
    ) -> Result<SealedSecret, CryptoError> {
        let json = Zeroizing::new(serde_json::to_vec(value).map_err(CryptoError::Serialization)?);
        Ok(self.keys.seal(owner, &json).await?)
    }

    /// Opens a value sealed for `owner`. A value sealed for anyone else is
    /// refused as not found; a shredded owner's values fail with
    /// [`KeyStoreError::Destroyed`].
    pub async fn unseal(
        &self,
        owner: KeyOwner,
        sealed: &SealedSecret,
    ) -> Result<SecretSlice<u8>, KeyStoreError> {
        let info = self.keys.key(sealed.key_id()).await?;
        if info.owner != owner {
            return Err(KeyStoreError::NotFound(sealed.key_id()));
        }
        self.keys.unseal(sealed).await
    }

    /// Opens a sealed UTF-8 secret.
    pub async fn unseal_secret(
        &self,
        owner: KeyOwner,
        sealed: &SealedSecret,
    ) -> Result<SecretString, CryptoError> {
        let bytes = self.unseal(owner, sealed).await?;
        let text = std::str::from_utf8(bytes.expose_secret()).map_err(|_| KeyStoreError::Unseal)?;
        Ok(SecretString::from(text))
    }

    /// Opens a value sealed with [`seal_json`](Self::seal_json).
    pub async fn unseal_json<T: DeserializeOwned>(
        &self,
        owner: KeyOwner,
        sealed: &SealedSecret,
    ) -> Result<T, CryptoError> {
        let bytes = self.unseal(owner, sealed).await?;
        serde_json::from_slice(bytes.expose_secret()).map_err(CryptoError::Serialization)
    }

    /// Crypto-shreds an owner: destroys all its data keys, so everything
    /// sealed for it is unreadable forever (GDPR erasure). Stop sealing new
    /// values for an erased subject: a later seal creates a fresh key.
    pub async fn shred(&self, owner: KeyOwner) -> Result<(), KeyStoreError> {
        self.keys.shred(owner).await
    }

    // ---- passwords -------------------------------------------------------------

    /// Hashes a password (slow by design: call from a blocking context).
    pub fn hash_password(
        &self,
        password: &SecretString,
    ) -> Result<SecretString, PasswordHashError> {
        self.passwords.hash(password)
    }

    /// Checks a password against its hash, in constant time.
    pub fn verify_password(
        &self,
        password: &SecretString,
        hash: &SecretString,
    ) -> Result<bool, PasswordHashError> {
        self.passwords.verify(password, hash)
    }

    /// Whether a hash should be replaced at the next successful login.
    pub fn needs_rehash(&self, hash: &SecretString) -> bool {
        self.passwords.needs_rehash(hash)
    }

    /// Spends the time of one verification (for unknown users).
    pub fn dummy_verify(&self, password: &SecretString) {
        self.passwords.dummy_verify(password);
    }

    // ---- application-level encryption --------------------------------------------

    fn ring(&self) -> Result<&FernetKeyRing, CryptoError> {
        self.ring.as_deref().ok_or(CryptoError::NoKeyRing)
    }

    /// Encrypts under the application key ring's primary key.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String, CryptoError> {
        self.ring()?.encrypt(plaintext)
    }

    /// Decrypts a token of the application key ring, no older than `ttl`
    /// if given.
    pub fn decrypt(&self, token: &str, ttl: Option<Duration>) -> Result<Plaintext, CryptoError> {
        match ttl {
            Some(ttl) => self.ring()?.decrypt_with_ttl(token, ttl),
            None => self.ring()?.decrypt(token),
        }
    }

    /// Re-encrypts a token under the ring's primary key.
    pub fn rotate_token(&self, token: &str) -> Result<String, CryptoError> {
        self.ring()?.rotate(token)
    }
}

impl fmt::Debug for EncryptionService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionService")
            .field("keys", &self.keys)
            .field("passwords", &self.passwords)
            .field("ring", &self.ring)
            .finish()
    }
}
