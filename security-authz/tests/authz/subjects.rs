//! Subject permissions: the NATS vectors, and the compiled tries against
//! the reference loop of `security-core` on random input.

use proptest::prelude::*;
use security_authz::{CompiledPermissions, PatternSource, SubjectDecision};
use security_core::subject;
use security_core::{Permissions, ResponsePermission, SubjectPattern, SubjectPermissions};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/nats/subjects.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn cases<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key].as_array().unwrap_or_else(|| panic!("no {key}"))
}

fn s<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key].as_str().unwrap()
}

fn b(case: &Value, key: &str) -> bool {
    case[key].as_bool().unwrap()
}

/// Allows `pattern` for publish and subscribe.
fn allowing(pattern: &str) -> Option<(CompiledPermissions, Permissions)> {
    let p = SubjectPattern::new(pattern).ok()?;
    let permissions = Permissions {
        publish: SubjectPermissions {
            allow: vec![p.clone()],
            deny: vec![],
        },
        subscribe: SubjectPermissions {
            allow: vec![p],
            deny: vec![],
        },
        allow_responses: None,
    };
    Some((CompiledPermissions::compile(&permissions), permissions))
}

#[test]
fn nats_match_cases() {
    let v = vectors();
    let cases = cases(&v, "match_cases");
    assert_eq!(cases.len(), 42);
    for case in cases {
        let (pattern, subject, expected) =
            (s(case, "pattern"), s(case, "subject"), b(case, "matches"));
        assert_eq!(subject::matches(pattern, subject), expected, "core: {case}");
        let (compiled, reference) = allowing(pattern).unwrap();
        assert_eq!(
            compiled.can_publish(subject),
            expected,
            "compiled publish: {case}"
        );
        assert_eq!(
            reference.can_publish(subject),
            expected,
            "reference publish: {case}"
        );
        // A literal subject subscribes where the pattern matches it.
        assert_eq!(
            compiled.can_subscribe(subject, None),
            expected,
            "compiled subscribe: {case}"
        );
        assert_eq!(
            reference.can_subscribe(subject, None),
            expected,
            "reference subscribe: {case}"
        );
        if expected {
            let SubjectDecision::Allowed { pattern: matched } = compiled.check_publish(subject)
            else {
                panic!("{case}")
            };
            assert_eq!(&*matched.pattern, pattern);
            assert_eq!(matched.source, PatternSource::Given);
        }
    }
}

#[test]
fn nats_subset_cases() {
    let v = vectors();
    let cases = cases(&v, "subset_cases");
    assert_eq!(cases.len(), 11);
    for case in cases {
        let (sub, test, expected) = (s(case, "subject"), s(case, "test"), b(case, "is_subset"));
        assert_eq!(subject::is_subset(sub, test), expected, "core: {case}");
        match allowing(test) {
            Some((compiled, reference)) => {
                assert_eq!(
                    compiled.can_subscribe(sub, None),
                    expected,
                    "compiled: {case}"
                );
                assert_eq!(
                    reference.can_subscribe(sub, None),
                    expected,
                    "reference: {case}"
                );
            }
            // An invalid permission pattern is refused on the way in.
            None => assert!(!expected, "{case}"),
        }
    }
}

#[test]
fn nats_collide_cases() {
    let v = vectors();
    let cases = cases(&v, "collide_cases");
    assert_eq!(cases.len(), 5);
    for case in cases {
        assert_eq!(
            subject::collide(s(case, "a"), s(case, "b")),
            b(case, "collide"),
            "{case}"
        );
        assert_eq!(
            subject::collide(s(case, "b"), s(case, "a")),
            b(case, "collide"),
            "symmetric: {case}"
        );
    }
}

#[test]
fn nats_validity_cases() {
    let v = vectors();
    let (_, everything) = allowing(">").unwrap();
    let everything = CompiledPermissions::compile(&everything);
    let valid = cases(&v, "is_valid_subject");
    assert_eq!(valid.len(), 24);
    for case in valid {
        let (text, expected) = (s(case, "s"), b(case, "valid"));
        assert_eq!(subject::is_valid_pattern(text), expected, "{case}");
        assert_eq!(
            SubjectPattern::new(text).is_ok(),
            expected,
            "pattern: {case}"
        );
        assert_eq!(
            everything.can_subscribe(text, None),
            expected,
            "subscribe: {case}"
        );
    }
    let literal = cases(&v, "is_valid_literal_subject");
    assert_eq!(literal.len(), 22);
    for case in literal {
        let (text, expected) = (s(case, "s"), b(case, "valid"));
        assert_eq!(subject::is_valid_literal(text), expected, "{case}");
        assert_eq!(everything.can_publish(text), expected, "publish: {case}");
        if !expected {
            assert_eq!(
                everything.check_publish(text),
                SubjectDecision::Invalid,
                "{case}"
            );
        }
    }
    let invalid = cases(&v, "invalid_for_subscribe_insert");
    assert_eq!(invalid.len(), 12);
    for case in invalid {
        let text = s(case, "s");
        assert!(SubjectPattern::new(text).is_err(), "{case}");
        assert!(!everything.can_subscribe(text, None), "{case}");
        assert!(!everything.can_publish(text), "{case}");
        assert_eq!(
            everything.check_subscribe(text, None),
            SubjectDecision::Invalid,
            "{case}"
        );
    }
}

// ----- property tests against the reference -------------------------------

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "ab"]).prop_map(str::to_owned),
        2 => Just("*".to_owned()),
        1 => Just(">".to_owned()),
        1 => prop::sample::select(vec!["a*", ">b", "*-"]).prop_map(str::to_owned),
    ]
}

/// Patterns that may be invalid (`>` in the middle): those are filtered by
/// `SubjectPattern::new`, as on the way in.
fn raw_subject() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 1..5).prop_map(|t| t.join("."))
}

/// Literal subjects (publishable).
fn literal_subject() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "c", "ab", "a*", ">b", "*-"]),
        1..5,
    )
    .prop_map(|t| t.join("."))
}

/// Valid subscription subjects: wildcards, `>` only last.
fn subscription_subject() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(vec!["a", "b", "*", "ab"]), 1..4),
        any::<bool>(),
    )
        .prop_map(|(t, full)| {
            let mut s = t.join(".");
            if full {
                s.push_str(".>");
            }
            s
        })
}

fn pattern() -> impl Strategy<Value = SubjectPattern> {
    (
        raw_subject(),
        prop::option::of(prop::sample::select(vec!["q1", "q2"])),
    )
        .prop_filter_map("valid", |(p, q)| match q {
            Some(q) => SubjectPattern::with_queue(p, q).ok(),
            None => SubjectPattern::new(p).ok(),
        })
}

fn list() -> impl Strategy<Value = SubjectPermissions> {
    (
        prop::collection::vec(pattern(), 0..6),
        prop::collection::vec(pattern(), 0..3),
    )
        .prop_map(|(allow, deny)| SubjectPermissions { allow, deny })
}

fn permissions() -> impl Strategy<Value = Permissions> {
    (list(), list(), prop::option::of((-1_i64..5, -1_i64..5))).prop_map(
        |(publish, subscribe, resp)| Permissions {
            publish,
            subscribe,
            allow_responses: resp.map(|(m, t)| ResponsePermission {
                max_messages: m,
                ttl_ms: t,
            }),
        },
    )
}

fn queue() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(vec!["q1", "q2", "q3"]))
}

fn merged(sets: &[Permissions]) -> Permissions {
    let mut all = Permissions::default();
    for p in sets {
        all.publish.allow.extend(p.publish.allow.iter().cloned());
        all.publish.deny.extend(p.publish.deny.iter().cloned());
        all.subscribe
            .allow
            .extend(p.subscribe.allow.iter().cloned());
        all.subscribe.deny.extend(p.subscribe.deny.iter().cloned());
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn compiled_agrees_with_the_reference(p in permissions(), subj in raw_subject(), q in queue()) {
        let compiled = CompiledPermissions::compile(&p);
        prop_assert_eq!(compiled.can_publish(&subj), p.can_publish(&subj), "publish {}", subj);
        prop_assert_eq!(compiled.can_subscribe(&subj, q), p.can_subscribe(&subj, q), "subscribe {} {:?}", subj, q);
        prop_assert_eq!(compiled.check_publish(&subj).is_allowed(), p.can_publish(&subj));
        prop_assert_eq!(compiled.check_subscribe(&subj, q).is_allowed(), p.can_subscribe(&subj, q));
    }

    #[test]
    fn a_union_agrees_with_the_merged_reference(sets in prop::collection::vec(permissions(), 1..4), subj in raw_subject(), q in queue()) {
        let compiled = CompiledPermissions::union(sets.iter().map(|p| (PatternSource::Given, p)));
        let reference = merged(&sets);
        prop_assert_eq!(compiled.can_publish(&subj), reference.can_publish(&subj));
        prop_assert_eq!(compiled.can_subscribe(&subj, q), reference.can_subscribe(&subj, q));
    }

    #[test]
    fn deny_wins(p in permissions(), subj in literal_subject(), sub in subscription_subject(), q in queue()) {
        let mut denied = p.clone();
        denied.publish.deny.push(SubjectPattern::new(subj.clone()).unwrap());
        denied.subscribe.deny.push(SubjectPattern::new(subj.clone()).unwrap());
        // Whatever the allow lists say, even `>`.
        denied.publish.allow.push(SubjectPattern::new(">").unwrap());
        denied.subscribe.allow.push(SubjectPattern::new(">").unwrap());
        denied.subscribe.deny.push(SubjectPattern::new(sub.clone()).unwrap());
        let compiled = CompiledPermissions::compile(&denied);
        prop_assert!(!compiled.can_publish(&subj));
        prop_assert!(!compiled.can_subscribe(&subj, q));
        prop_assert!(!compiled.can_subscribe(&sub, q));
        let is_denied = matches!(compiled.check_publish(&subj), SubjectDecision::Denied { .. });
        prop_assert!(is_denied);
        // And in a union, a deny of one source beats an allow of another.
        let everything = Permissions {
            publish: SubjectPermissions::from_patterns([">"], Vec::<String>::new()).unwrap(),
            subscribe: SubjectPermissions::from_patterns([">"], Vec::<String>::new()).unwrap(),
            allow_responses: None,
        };
        let only_deny = Permissions {
            publish: SubjectPermissions::from_patterns(Vec::<String>::new(), [subj.clone()]).unwrap(),
            subscribe: SubjectPermissions::from_patterns(Vec::<String>::new(), [sub.clone()]).unwrap(),
            allow_responses: None,
        };
        let union = CompiledPermissions::union([(PatternSource::Given, &everything), (PatternSource::AccountDefaults, &only_deny)]);
        prop_assert!(!union.can_publish(&subj));
        prop_assert!(!union.can_subscribe(&sub, q));
    }

    #[test]
    fn default_deny(p in permissions(), subj in raw_subject(), q in queue()) {
        let compiled = CompiledPermissions::compile(&p);
        // Something is allowed only if an allow pattern covers it.
        if compiled.can_publish(&subj) {
            prop_assert!(p.publish.allow.iter().any(|a| a.matches(&subj)));
        }
        if compiled.can_subscribe(&subj, q) {
            prop_assert!(p.subscribe.allow.iter().any(|a| subject::is_subset(&subj, a.pattern())));
        }
        // With no allow pattern nothing is allowed.
        let mut no_allow = p.clone();
        no_allow.publish.allow.clear();
        no_allow.subscribe.allow.clear();
        let compiled = CompiledPermissions::compile(&no_allow);
        prop_assert!(!compiled.can_publish(&subj));
        prop_assert!(!compiled.can_subscribe(&subj, q));
    }
}
