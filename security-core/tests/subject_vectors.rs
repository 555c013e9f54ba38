//! `security_core::subject` against the public nats-server vectors in
//! `vectors/nats/subjects.json` (from sublist_test.go).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code fails by panicking"
)]

use security_core::subject;
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/nats/subjects.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn cases<'a>(v: &'a Value, name: &str) -> &'a Vec<Value> {
    v[name]
        .as_array()
        .unwrap_or_else(|| panic!("{name} missing"))
}

#[test]
fn match_cases() {
    let v = vectors();
    let cases = cases(&v, "match_cases");
    assert!(cases.len() >= 40);
    for c in cases {
        let (p, s) = (
            c["pattern"].as_str().unwrap(),
            c["subject"].as_str().unwrap(),
        );
        assert_eq!(
            subject::matches(p, s),
            c["matches"].as_bool().unwrap(),
            "match {p:?} against {s:?}"
        );
    }
}

#[test]
fn subset_cases() {
    let v = vectors();
    for c in cases(&v, "subset_cases") {
        let (s, t) = (c["subject"].as_str().unwrap(), c["test"].as_str().unwrap());
        assert_eq!(
            subject::is_subset(s, t),
            c["is_subset"].as_bool().unwrap(),
            "{s:?} subset of {t:?}"
        );
    }
}

#[test]
fn collide_cases() {
    let v = vectors();
    for c in cases(&v, "collide_cases") {
        let (a, b) = (c["a"].as_str().unwrap(), c["b"].as_str().unwrap());
        assert_eq!(
            subject::collide(a, b),
            c["collide"].as_bool().unwrap(),
            "{a:?} collides with {b:?}"
        );
    }
}

#[test]
fn validity_cases() {
    let v = vectors();
    for c in cases(&v, "is_valid_subject") {
        let s = c["s"].as_str().unwrap();
        assert_eq!(
            subject::is_valid_pattern(s),
            c["valid"].as_bool().unwrap(),
            "valid subject {s:?}"
        );
    }
    for c in cases(&v, "is_valid_literal_subject") {
        let s = c["s"].as_str().unwrap();
        assert_eq!(
            subject::is_valid_literal(s),
            c["valid"].as_bool().unwrap(),
            "valid literal {s:?}"
        );
    }
    for c in cases(&v, "invalid_for_subscribe_insert") {
        let s = c["s"].as_str().unwrap();
        assert!(
            !subject::is_valid_pattern(s),
            "{s:?} must be refused: {}",
            c["why"]
        );
    }
}
