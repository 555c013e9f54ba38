//! Property tests: round trips for any input, and any tampering refused.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use secrecy::ExposeSecret;
use security_core::ManualClock;
use security_crypto::{FernetKey, FernetKeyRing, HmacKey, SymmetricKey, derive_subkey};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fernet_round_trips_any_plaintext(plaintext in proptest::collection::vec(any::<u8>(), 0..600), at in 0_i64..4_000_000_000) {
        let key = FernetKey::generate().unwrap();
        let now = Utc.timestamp_opt(at, 0).unwrap();
        let token = key.encrypt_at(&plaintext, now).unwrap();
        let opened = key.decrypt_at(&token, now, None).unwrap();
        prop_assert_eq!(opened.expose_secret(), plaintext.as_slice());
        let stored = key.decrypt_stored(&token).unwrap();
        prop_assert_eq!(stored.expose_secret(), plaintext.as_slice());
    }

    #[test]
    fn fernet_refuses_any_single_bit_flip(plaintext in proptest::collection::vec(any::<u8>(), 0..100), position in any::<prop::sample::Index>(), bit in 0_u8..8) {
        let key = FernetKey::generate().unwrap();
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let mut raw = URL_SAFE.decode(key.encrypt_at(&plaintext, now).unwrap()).unwrap();
        let i = position.index(raw.len());
        raw[i] ^= 1 << bit;
        let tampered = URL_SAFE.encode(&raw);
        prop_assert!(key.decrypt_at(&tampered, now, None).is_err());
        prop_assert!(key.decrypt_stored(&tampered).is_err());
    }

    #[test]
    fn ring_rotation_preserves_plaintext(plaintext in proptest::collection::vec(any::<u8>(), 0..200), generations in 1_usize..4) {
        let clock = Arc::new(ManualClock::new(Utc.timestamp_opt(1_700_000_000, 0).unwrap()));
        let mut ring = FernetKeyRing::new(vec![FernetKey::generate().unwrap()], clock).unwrap();
        let mut token = ring.encrypt(&plaintext).unwrap();
        for _ in 0..generations {
            ring = ring.with_primary(FernetKey::generate().unwrap());
            token = ring.rotate(&token).unwrap();
            ring = ring.retain_newest(1);
            let opened = ring.decrypt(&token).unwrap();
            prop_assert_eq!(opened.expose_secret(), plaintext.as_slice());
        }
    }

    #[test]
    fn hmac_verifies_only_its_own_tags(message in proptest::collection::vec(any::<u8>(), 0..200), other in proptest::collection::vec(any::<u8>(), 0..200)) {
        let key = HmacKey::generate().unwrap();
        let tag = key.sign(&message);
        prop_assert!(key.verify(&message, &tag));
        prop_assert_eq!(key.verify(&other, &tag), other == message);
    }

    #[test]
    fn subkeys_differ_by_context(a in proptest::collection::vec(any::<u8>(), 0..40), b in proptest::collection::vec(any::<u8>(), 0..40)) {
        let master = SymmetricKey::generate().unwrap();
        let ka = derive_subkey(&master, "label", &a).unwrap();
        let kb = derive_subkey(&master, "label", &b).unwrap();
        prop_assert_eq!(ka == kb, a == b);
    }
}
