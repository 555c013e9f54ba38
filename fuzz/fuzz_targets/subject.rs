//! NATS subjects and patterns: validation, matching, subset and collision
//! of two inputs (split at the first newline), and permission patterns.

#![no_main]

use libfuzzer_sys::fuzz_target;
use security_core::subject::{
    collide, is_subset, matches, validate_literal, validate_pattern, validate_queue,
};
use security_core::{SubjectPattern, SubjectPermissions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\n').unwrap_or((text, ""));
    let _ = validate_pattern(a);
    let _ = validate_literal(a);
    let _ = validate_queue(b);
    let matched = matches(a, b);
    // A pattern matching a subject also covers it.
    if matched && validate_literal(b).is_ok() {
        assert!(is_subset(b, a), "{b:?} matches {a:?} but is not its subset");
    }
    let _ = collide(a, b);
    if let Ok(pattern) = SubjectPattern::new(a) {
        assert_eq!(pattern.matches(b), matched);
        let _ = pattern.to_nats_string();
        let _ = SubjectPattern::with_queue(a, b);
    }
    if let Ok(permissions) = SubjectPermissions::from_patterns([a], [b]) {
        let _ = permissions.is_empty();
    }
});
