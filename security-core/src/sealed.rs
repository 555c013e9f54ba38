//! Sealed fields: secrets stored inside events, encrypted with a per-subject
//! data key held by the [`KeyStore`](crate::KeyStore).
//!
//! A sealed value is written into a payload as
//! `{"$sealed": {"kid": "<data key id>", "ct": "<ciphertext>"}}`. The core
//! never sees plaintext: services seal before they build a command, and
//! unseal through the key store when they need the secret. Destroying the
//! data key (crypto-shredding) makes every sealed field of that subject
//! unreadable while the rest of the history stays intact.
//!
//! Nothing sealed ever leaves the store: [`StoredEvent::to_published`]
//! (the only way to build what a publisher receives) removes every sealed
//! field with [`strip_sealed`].
//!
//! [`StoredEvent::to_published`]: crate::StoredEvent::to_published

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::KeyId;

/// The key under which a sealed value appears in a payload.
pub const SEALED_TAG: &str = "$sealed";

/// A secret encrypted under a subject's data key.
///
/// Its `Debug` output never shows the ciphertext.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    #[serde(rename = "$sealed")]
    inner: SealedInner,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SealedInner {
    kid: KeyId,
    ct: String,
}

impl SealedSecret {
    /// Wraps a ciphertext produced under the data key `key_id`.
    ///
    /// Only key stores should call this.
    pub fn new(key_id: KeyId, ciphertext: String) -> Self {
        Self {
            inner: SealedInner {
                kid: key_id,
                ct: ciphertext,
            },
        }
    }

    /// The data key that sealed the value.
    pub fn key_id(&self) -> KeyId {
        self.inner.kid
    }

    /// The ciphertext (opaque; only the key store can open it).
    pub fn ciphertext(&self) -> &str {
        &self.inner.ct
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.inner.kid)
            .finish_non_exhaustive()
    }
}

fn is_sealed(value: &Value) -> bool {
    matches!(value, Value::Object(map) if map.len() == 1 && map.contains_key(SEALED_TAG))
}

/// Whether a payload holds any sealed value.
pub fn contains_sealed(value: &Value) -> bool {
    match value {
        Value::Object(map) => is_sealed(value) || map.values().any(contains_sealed),
        Value::Array(items) => items.iter().any(contains_sealed),
        _ => false,
    }
}

/// A copy of `value` with every sealed value removed: object fields holding
/// one are dropped, array elements that are one are dropped.
pub fn strip_sealed(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !is_sealed(v))
                .map(|(k, v)| (k.clone(), strip_sealed(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|v| !is_sealed(v))
                .map(strip_sealed)
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn sealed() -> SealedSecret {
        SealedSecret::new(
            KeyId::from_uuid(Uuid::from_u128(1)),
            "gAAAAABsecretciphertext".into(),
        )
    }

    #[test]
    fn debug_hides_the_ciphertext() {
        let text = format!("{:?}", sealed());
        assert!(!text.contains("secretciphertext"), "{text}");
        assert!(text.contains("KeyId"));
    }

    #[test]
    fn strip_removes_nested_sealed_values_and_keeps_the_rest() {
        let payload = json!({
            "user_id": "u",
            "credential": {"type": "password", "hash": serde_json::to_value(sealed()).unwrap()},
            "codes": [serde_json::to_value(sealed()).unwrap(), 3],
        });
        assert!(contains_sealed(&payload));
        let stripped = strip_sealed(&payload);
        assert!(!contains_sealed(&stripped));
        assert_eq!(
            stripped,
            json!({"user_id": "u", "credential": {"type": "password"}, "codes": [3]})
        );
        assert!(!stripped.to_string().contains("secretciphertext"));
    }

    #[test]
    fn serde_shape_is_tagged() {
        let value = serde_json::to_value(sealed()).unwrap();
        assert_eq!(
            value,
            json!({"$sealed": {"kid": "00000000-0000-0000-0000-000000000001", "ct": "gAAAAABsecretciphertext"}})
        );
        assert_eq!(
            serde_json::from_value::<SealedSecret>(value).unwrap(),
            sealed()
        );
    }
}
