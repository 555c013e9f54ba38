//! The life-cycle rules every key store here enforces, in one place.

use chrono::{DateTime, Utc};
use security_core::{KeyId, KeyInfo, KeyPurpose, KeySpec, KeyStatus, KeyStoreError, PublicKey};

fn refuse_dead(info: &KeyInfo) -> Result<(), KeyStoreError> {
    match info.status {
        KeyStatus::Destroyed { .. } => Err(KeyStoreError::Destroyed(info.key_id)),
        KeyStatus::Revoked { .. } => Err(KeyStoreError::Revoked(info.key_id)),
        _ => Ok(()),
    }
}

fn is_expired(info: &KeyInfo, now: DateTime<Utc>) -> bool {
    info.expires_at.is_some_and(|at| at <= now)
}

/// Signing: a signing purpose, active, not expired.
pub(crate) fn check_sign(info: &KeyInfo, now: DateTime<Utc>) -> Result<(), KeyStoreError> {
    if info.purpose == KeyPurpose::DataEncryption {
        return Err(KeyStoreError::WrongPurpose(info.key_id));
    }
    refuse_dead(info)?;
    if matches!(info.status, KeyStatus::Rotated { .. }) {
        return Err(KeyStoreError::RotatedOut(info.key_id));
    }
    if is_expired(info, now) {
        return Err(KeyStoreError::Expired(info.key_id));
    }
    Ok(())
}

/// Verifying: a signing purpose, not revoked or destroyed. Rotated-out and
/// expired keys still verify what they signed while they were valid.
pub(crate) fn check_verify(info: &KeyInfo) -> Result<(), KeyStoreError> {
    if info.purpose == KeyPurpose::DataEncryption {
        return Err(KeyStoreError::WrongPurpose(info.key_id));
    }
    refuse_dead(info)
}

/// Unsealing: a data key that is not destroyed (revoked, rotated-out and
/// expired data keys still open what they sealed).
pub(crate) fn check_unseal(info: &KeyInfo) -> Result<(), KeyStoreError> {
    if info.purpose != KeyPurpose::DataEncryption {
        return Err(KeyStoreError::WrongPurpose(info.key_id));
    }
    match info.status {
        KeyStatus::Destroyed { .. } => Err(KeyStoreError::Destroyed(info.key_id)),
        _ => Ok(()),
    }
}

/// Whether new values may be sealed under this key.
pub(crate) fn can_seal(info: &KeyInfo, now: DateTime<Utc>) -> bool {
    info.purpose == KeyPurpose::DataEncryption
        && info.status == KeyStatus::Active
        && !is_expired(info, now)
}

/// Rotating: only an active key (expired is fine: that is when to rotate).
pub(crate) fn check_rotate(info: &KeyInfo) -> Result<(), KeyStoreError> {
    refuse_dead(info)?;
    if matches!(info.status, KeyStatus::Rotated { .. }) {
        return Err(KeyStoreError::RotatedOut(info.key_id));
    }
    Ok(())
}

/// Exporting: created exportable, not revoked or destroyed.
pub(crate) fn check_export(info: &KeyInfo) -> Result<(), KeyStoreError> {
    if let KeyStatus::Destroyed { .. } = info.status {
        return Err(KeyStoreError::Destroyed(info.key_id));
    }
    if !info.exportable {
        return Err(KeyStoreError::NotExportable(info.key_id));
    }
    refuse_dead(info)
}

/// The new status after a revocation, or `None` if it is already revoked.
pub(crate) fn revoked(
    info: &KeyInfo,
    now: DateTime<Utc>,
) -> Result<Option<KeyStatus>, KeyStoreError> {
    match info.status {
        KeyStatus::Destroyed { .. } => Err(KeyStoreError::Destroyed(info.key_id)),
        KeyStatus::Revoked { .. } => Ok(None),
        KeyStatus::Active | KeyStatus::Rotated { .. } => Ok(Some(KeyStatus::Revoked { at: now })),
    }
}

/// The metadata of a new key.
pub(crate) fn new_info(
    key_id: KeyId,
    spec: &KeySpec,
    public_key: Option<PublicKey>,
    now: DateTime<Utc>,
) -> KeyInfo {
    KeyInfo {
        key_id,
        owner: spec.owner,
        purpose: spec.purpose,
        algorithm: spec.purpose.default_algorithm(),
        public_key,
        status: KeyStatus::Active,
        created_at: now,
        expires_at: spec.expires_at,
        exportable: spec.exportable,
    }
}

/// What a rotation creates: same owner, purpose and exportability, and the
/// same lifetime as the key it replaces.
pub(crate) fn successor_spec(info: &KeyInfo, now: DateTime<Utc>) -> KeySpec {
    let expires_at = info
        .expires_at
        .map(|at| now + (at - info.created_at).max(chrono::Duration::zero()));
    KeySpec {
        owner: info.owner,
        purpose: info.purpose,
        expires_at,
        exportable: info.exportable,
    }
}

/// Oldest first, ties broken by id (UUID v7 ids sort by creation too).
pub(crate) fn sort_oldest_first(infos: &mut [KeyInfo]) {
    infos.sort_by_key(|info| (info.created_at, info.key_id));
}
