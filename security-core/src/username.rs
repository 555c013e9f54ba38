//! Usernames: what may be one, and the key under which two usernames are
//! the same.
//!
//! A username must be a valid PRECIS `UsernameCaseMapped` string (RFC
//! 8265 §3.3): letters, digits and printable ASCII punctuation, no spaces,
//! no control, invisible or bidirectional-control characters, and the
//! bidi rule of RFC 5893 for right-to-left names. Its letters must be of
//! one script, or of a combination UTS #39 calls *highly restrictive*
//! (Latin with Han and kana, Latin with Han and Hangul...): a name that
//! mixes Latin and Cyrillic is refused.
//!
//! Two usernames are the same user when their keys ([`fold_username`])
//! are equal. The key is the PRECIS enforcement (width mapping, so
//! fullwidth `ａｌｉｃｅ` is `alice`; lower case; NFC, so a decomposed
//! `é` is the composed one), then full case folding (`ß` is `ss`), then the
//! UTS #39 confusable skeleton (Cyrillic `а` and Latin `a`, `0` and `O`,
//! `rn` and `m` give one key). A name that looks like a taken one is
//! therefore taken: that refuses whole-script look-alikes (an all-Cyrillic
//! `сосо` against `coco`) that the script rule alone lets through.

use precis_core::profile::Profile as _;
use precis_profiles::UsernameCaseMapped;
use unicode_normalization::UnicodeNormalization as _;
use unicode_security::{RestrictionLevel, RestrictionLevelDetection as _};

use crate::error::DomainError;

/// The longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 256;

/// The longest username in bytes (4 per character): anything longer is
/// refused before any Unicode processing.
const MAX_USERNAME_BYTES: usize = MAX_USERNAME_CHARS * 4;

/// Invisible characters: zero-width spaces and joiners, the word joiner,
/// the byte-order mark, the soft hyphen and the other default-ignorable
/// format characters a name could hide.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Bidirectional controls: marks, embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Checks a username; the error names the rule it breaks.
pub fn validate_username(username: &str) -> Result<(), DomainError> {
    let invalid = |reason| Err(DomainError::invalid("username", reason));
    if username.is_empty() {
        return invalid("must not be empty");
    }
    if username.len() > MAX_USERNAME_BYTES || username.chars().count() > MAX_USERNAME_CHARS {
        return invalid("must be at most 256 characters");
    }
    if username.chars().any(char::is_control) {
        return invalid("must not hold control characters");
    }
    if username.chars().any(is_bidi_control) {
        return invalid("must not hold bidirectional control characters");
    }
    if username.chars().any(is_invisible) {
        return invalid("must not hold invisible characters");
    }
    if username.chars().any(char::is_whitespace) {
        return invalid("must not hold spaces");
    }
    let Ok(enforced) = UsernameCaseMapped::new().enforce(username) else {
        return invalid(
            "must be letters, digits and ASCII punctuation (PRECIS UsernameCaseMapped)",
        );
    };
    let letters: String = enforced
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    if letters.as_str().detect_restriction_level() > RestrictionLevel::HighlyRestrictive {
        return invalid("must not mix scripts or use characters not recommended in identifiers");
    }
    Ok(())
}

/// The key under which usernames are unique and looked up (see the
/// module documentation). Defined for every input: a string that is not a
/// valid username gets a key no valid username has (it starts with a NUL
/// character, which no valid username holds), so looking it up finds
/// nobody.
pub fn fold_username(username: &str) -> String {
    let enforced = if username.len() <= MAX_USERNAME_BYTES {
        UsernameCaseMapped::new().enforce(username).ok()
    } else {
        None
    };
    let Some(enforced) = enforced else {
        let mut key = String::from('\u{0}');
        key.extend(
            username
                .chars()
                .take(MAX_USERNAME_CHARS)
                .flat_map(char::to_lowercase),
        );
        return key;
    };
    // Full case folding: `to_uppercase` expands `ß` to `SS` (and the
    // ligatures), `to_lowercase` brings everything back; NFC recomposes
    // what the round trip decomposed.
    let folded: String = enforced.to_uppercase().to_lowercase().nfc().collect();
    unicode_security::skeleton(&folded).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        fold_username(a) == fold_username(b)
    }

    #[test]
    fn look_alikes_share_one_key() {
        // Case, width, normalization, case folding, confusables.
        assert!(same("Alice", "alice"));
        assert!(same("ａｌｉｃｅ", "alice"));
        assert!(same("ALICE", "ａｌｉｃｅ"));
        assert!(same("jose\u{301}", "jos\u{e9}"));
        assert!(same("stra\u{df}e", "STRASSE"));
        assert!(same("\u{430}dmin", "admin")); // Cyrillic а
        assert!(same("\u{441}\u{43e}\u{441}\u{43e}", "coco")); // all Cyrillic с о
        assert!(same("modern", "rnodern"));
        assert!(!same("alice", "alicia"));
        assert!(!same("bob", "bob2"));
        assert!(same("alice@example.com", "Alice@Example.COM"));
    }

    #[test]
    fn invalid_strings_never_match_a_valid_key() {
        for bad in ["", "a b", "admin\u{200b}", "\u{202e}nimda", "x\u{0}"] {
            assert!(fold_username(bad).starts_with('\u{0}'), "{bad:?}");
        }
        assert!(!fold_username("alice").starts_with('\u{0}'));
        let huge = "a".repeat(10 * 1024 * 1024);
        assert_eq!(fold_username(&huge).chars().count(), MAX_USERNAME_CHARS + 1);
    }

    #[test]
    fn each_refusal_names_its_rule() {
        let reason = |name: &str| match validate_username(name) {
            Err(DomainError::Invalid { reason, .. }) => reason,
            other => panic!("{name:?}: {other:?}"),
        };
        assert_eq!(reason(""), "must not be empty");
        assert_eq!(reason(&"a".repeat(257)), "must be at most 256 characters");
        assert_eq!(reason("a\u{7}b"), "must not hold control characters");
        assert_eq!(
            reason("admin\u{202e}"),
            "must not hold bidirectional control characters"
        );
        assert_eq!(
            reason("ad\u{200b}min"),
            "must not hold invisible characters"
        );
        assert_eq!(
            reason("ad\u{200d}min"),
            "must not hold invisible characters"
        );
        assert_eq!(
            reason("\u{feff}admin"),
            "must not hold invisible characters"
        );
        assert_eq!(reason("john smith"), "must not hold spaces");
        assert_eq!(reason("john\u{3000}smith"), "must not hold spaces");
        assert!(reason("pay\u{2665}pal").contains("PRECIS"));
        assert!(reason("\u{430}dmin").contains("mix scripts"));
        assert!(reason("p\u{3b1}ypal").contains("mix scripts")); // Greek α
        for good in [
            "alice",
            "Alice.Smith-2@example.com",
            "jos\u{e9}",
            "\u{432}\u{430}\u{441}\u{44f}", // вася, all Cyrillic
            "\u{7530}\u{4e2d}tanaka",       // Han and Latin: highly restrictive
            "stra\u{df}e",
            "ａｌｉｃｅ",
        ] {
            assert_eq!(validate_username(good), Ok(()), "{good:?}");
        }
    }
}
