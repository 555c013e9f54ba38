//! The validator against every case of `vectors/jwt/cases.json`
//! (RFC 8725 controls and attacks), plus the cases generated at test time
//! (oversized token, clock-relative leeway) and the key policy.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeZone, Utc};
use security_authn::{JwtAlgorithm, JwtValidator, KeyError};
use security_core::{ManualClock, TokenError};
use serde_json::{Value, json};

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/jwt/cases.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The instant the static cases are checked at (2025): after every `iat`
/// of a valid case, before every far-future `nbf`/`iat` of an attack.
const NOW: i64 = 1_750_000_000;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn algorithm(name: &str) -> JwtAlgorithm {
    match name {
        "HS256" => JwtAlgorithm::HS256,
        "EdDSA" => JwtAlgorithm::EdDSA,
        other => panic!("unexpected algorithm {other}"),
    }
}

/// The validator `default_validator` describes, with a case's overrides.
fn validator(v: &Value, overrides: &Value, now: i64, leeway: u64) -> JwtValidator {
    let defaults = &v["default_validator"];
    let clock = Arc::new(ManualClock::new(Utc.timestamp_opt(now, 0).unwrap()));
    let algorithms: Vec<JwtAlgorithm> = match overrides.get("algorithms") {
        Some(list) => list
            .as_array()
            .unwrap()
            .iter()
            .map(|a| algorithm(a.as_str().unwrap()))
            .collect(),
        None => vec![JwtAlgorithm::HS256],
    };
    let mut builder = JwtValidator::builder(clock)
        .algorithms(&algorithms)
        .leeway(std::time::Duration::from_secs(leeway));
    let issuers = overrides.get("iss").unwrap_or(&defaults["iss"]);
    for iss in issuers.as_array().unwrap() {
        builder = builder.issuer(iss.as_str().unwrap());
    }
    match overrides.get("aud") {
        Some(Value::Null) => {}
        Some(list) => {
            for aud in list.as_array().unwrap() {
                builder = builder.audience(aud.as_str().unwrap());
            }
        }
        None => {
            for aud in defaults["aud"].as_array().unwrap() {
                builder = builder.audience(aud.as_str().unwrap());
            }
        }
    }
    if let Some(typ) = overrides.get("typ") {
        builder = builder.typ(typ.as_str().unwrap());
    }
    let revoked = overrides
        .get("revoked_kids")
        .unwrap_or(&defaults["revoked_kids"]);
    for kid in revoked.as_array().unwrap() {
        builder = builder.revoked_kid(kid.as_str().unwrap());
    }
    let validator = builder.build();
    let keys = &defaults["keys"];
    validator
        .add_hs256_key(
            "hs-1",
            keys["hs-1"]["secret_ascii"].as_str().unwrap().as_bytes(),
        )
        .unwrap();
    validator
        .add_ed25519_key(
            "ed-1",
            &hex(keys["ed-1"]["public_hex"].as_str().unwrap()),
            None,
        )
        .unwrap();
    validator
        .add_ed25519_key(
            "ed-0",
            &hex(defaults["retired_key_ed-0"]["public_hex"].as_str().unwrap()),
            None,
        )
        .unwrap();
    validator
}

fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let tag = security_crypto::hmac_sha256(secret, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// The answer this validator gives where the vectors leave a choice, and why.
fn policy(id: &str) -> &'static str {
    match id {
        // T07: `iat` in the future beyond the leeway is refused (NotYetValid).
        // I03: `iss` must be one string (RFC 7519 §4.1.1).
        // K03: no `kid` is refused, never "try every key".
        "T07" | "I03" | "K03" => "reject",
        other => panic!("no policy for {other}"),
    }
}

#[test]
fn every_static_case_gets_the_expected_answer() {
    let v = vectors();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 51);
    let mut checked = 0;
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let Some(token) = case["token"].as_str() else {
            continue;
        };
        let expect = case["expect"].as_str().unwrap();
        let expect = if expect.starts_with("policy") {
            policy(id)
        } else {
            expect
        };
        let overrides = case
            .get("validator_overrides")
            .cloned()
            .unwrap_or(json!({}));
        let result = validator(&v, &overrides, NOW, 60).validate_as::<Value>(token);
        match expect {
            "accept" => assert!(result.is_ok(), "{id}: expected accept, got {result:?}"),
            e if e.starts_with("reject") => {
                assert!(result.is_err(), "{id}: expected reject, got {result:?}");
            }
            other => panic!("{id}: unknown expectation {other}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 48, "every case that carries a token");
}

#[test]
fn refusals_name_the_right_reason() {
    let v = vectors();
    let expected = [
        ("N01", TokenError::Algorithm),
        ("N04", TokenError::Algorithm),
        ("A02", TokenError::Algorithm),
        ("A05", TokenError::Algorithm),
        ("A06", TokenError::Algorithm),
        ("S03", TokenError::Signature),
        ("S05", TokenError::Signature),
        ("S06", TokenError::Signature),
        ("T01", TokenError::Expired),
        ("T02", TokenError::MissingClaim),
        ("T04", TokenError::NotYetValid),
        ("T07", TokenError::NotYetValid),
        ("I02", TokenError::MissingClaim),
        ("I05", TokenError::Audience),
        ("I06", TokenError::Audience),
        ("I08", TokenError::Header),
        ("I09", TokenError::Header),
        ("K02", TokenError::RevokedKey),
        ("K03", TokenError::UnknownKey),
        ("K05", TokenError::UnknownKey),
        ("K06", TokenError::UnknownKey),
        ("R01", TokenError::Header),
        ("R02", TokenError::Header),
        ("R04", TokenError::Header),
        ("R05", TokenError::Header),
        ("Z03", TokenError::Malformed),
        ("Z04", TokenError::Malformed),
        ("Z06", TokenError::Malformed),
        ("D01", TokenError::Malformed),
        ("D05", TokenError::Malformed),
        ("D04", TokenError::Malformed),
        ("B06", TokenError::Malformed),
        ("B07", TokenError::Malformed),
    ];
    let cases = v["cases"].as_array().unwrap();
    for (id, error) in expected {
        let case = cases.iter().find(|c| c["id"] == id).unwrap();
        let overrides = case
            .get("validator_overrides")
            .cloned()
            .unwrap_or(json!({}));
        let result = validator(&v, &overrides, NOW, 60)
            .validate_as::<Value>(case["token"].as_str().unwrap());
        assert_eq!(result.unwrap_err(), error, "{id}");
    }
}

#[test]
fn an_oversized_token_is_refused_before_any_work() {
    let v = vectors();
    let secret = v["default_validator"]["keys"]["hs-1"]["secret_ascii"]
        .as_str()
        .unwrap()
        .as_bytes();
    let mut claims = v["claims_defaults"].clone();
    claims["pad"] = json!("A".repeat(65_536));
    let token = hs256(
        secret,
        &json!({"alg": "HS256", "typ": "JWT", "kid": "hs-1"}),
        &claims,
    );
    assert!(token.len() > 80_000);
    let validator = validator(&v, &json!({}), NOW, 60);
    assert_eq!(
        validator.validate_as::<Value>(&token),
        Err(TokenError::TooLarge)
    );
    // The same claims without the padding are fine: the size is the reason.
    claims.as_object_mut().unwrap().remove("pad");
    let token = hs256(
        secret,
        &json!({"alg": "HS256", "typ": "JWT", "kid": "hs-1"}),
        &claims,
    );
    assert!(validator.validate_as::<Value>(&token).is_ok());
}

#[test]
fn clock_relative_leeway_cases() {
    let v = vectors();
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "T08")
        .unwrap();
    let secret = v["default_validator"]["keys"]["hs-1"]["secret_ascii"]
        .as_str()
        .unwrap()
        .as_bytes();
    let dynamic = case["dynamic_cases"].as_array().unwrap();
    assert_eq!(dynamic.len(), 6);
    for d in dynamic {
        let claim = d["claim"].as_str().unwrap();
        let offset = d["offset_s"].as_i64().unwrap();
        let leeway = d["leeway_s"].as_u64().unwrap();
        let mut claims = v["claims_defaults"].clone();
        claims[claim] = json!(NOW + offset);
        let token = hs256(
            secret,
            &json!({"alg": "HS256", "typ": "JWT", "kid": "hs-1"}),
            &claims,
        );
        let result = validator(&v, &json!({}), NOW, leeway).validate_as::<Value>(&token);
        let expect = d["expect"].as_str().unwrap();
        if expect == "accept" {
            assert!(result.is_ok(), "{d}: {result:?}");
        } else {
            assert!(expect.starts_with("reject"), "{d}");
            let wanted = if claim == "exp" {
                TokenError::Expired
            } else {
                TokenError::NotYetValid
            };
            assert_eq!(result, Err(wanted), "{d}");
        }
    }
}

#[test]
fn weak_hmac_keys_are_refused_at_load_time() {
    let v = vectors();
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "W01")
        .unwrap();
    assert!(case["expect"].as_str().unwrap().starts_with("reject key"));
    let validator = validator(&v, &json!({}), NOW, 60);
    assert_eq!(
        validator.add_hs256_key("weak", b"secret"),
        Err(KeyError::WeakHmacKey { min: 32 })
    );
    assert_eq!(
        validator.add_hs256_key("weak", &[1; 31]),
        Err(KeyError::WeakHmacKey { min: 32 })
    );
    assert!(!validator.has_key("weak"));
    assert!(security_authn::JwtSigning::hs256(b"secret".to_vec()).is_err());
}

#[test]
fn the_signature_binds_header_and_payload() {
    // A valid token with a kid swapped to another known key of the same
    // algorithm fails on the signature, not before.
    let v = vectors();
    let c01 = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "C01")
        .unwrap();
    let token = c01["token"].as_str().unwrap();
    let validator = validator(&v, &json!({}), NOW, 60);
    validator.add_hs256_key("hs-2", &[9; 32]).unwrap();
    let (_, rest) = token.split_once('.').unwrap();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT","kid":"hs-2"}"#);
    assert_eq!(
        validator.validate_as::<Value>(&format!("{header}.{rest}")),
        Err(TokenError::Signature)
    );
    assert!(validator.validate_as::<Value>(token).is_ok());
}

/// An HS256 token over a payload written by hand (so it can repeat a member).
fn hs256_raw(secret: &[u8], header: &str, payload: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let tag = security_crypto::hmac_sha256(secret, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

#[test]
fn a_signed_token_that_names_a_claim_twice_is_refused() {
    // A correctly signed token in which `sub` (a claim the validator does
    // not read itself) or a custom `role` claim appears twice: a parser
    // keeping the last copy reads "admin", one keeping the first reads the
    // user. Both are refused, however the name is spelled.
    let v = vectors();
    let validator = validator(&v, &json!({}), NOW, 0);
    let secret = v["default_validator"]["keys"]["hs-1"]["secret_ascii"]
        .as_str()
        .unwrap()
        .as_bytes()
        .to_vec();
    let iss = v["default_validator"]["iss"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let aud = v["default_validator"]["aud"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"hs-1"}"#;
    let base = format!(
        r#""iss":"{iss}","aud":"{aud}","exp":{},"iat":{NOW}"#,
        NOW + 600
    );

    let single = format!(r#"{{{base},"sub":"user-1","role":"user"}}"#);
    let claims: Value = validator
        .validate_as(&hs256_raw(&secret, header, &single))
        .unwrap();
    assert_eq!(claims["sub"], "user-1");

    for payload in [
        format!(r#"{{"sub":"user-1",{base},"sub":"admin"}}"#),
        format!(r#"{{"sub":"user-1",{base},"\u0073ub":"admin"}}"#),
        format!(r#"{{{base},"sub":"user-1","role":"user","role":"admin"}}"#),
        format!(r#"{{{base},"sub":"user-1","ext":{{"role":"user","role":"admin"}}}}"#),
    ] {
        let token = hs256_raw(&secret, header, &payload);
        assert_eq!(
            validator.validate_as::<Value>(&token).unwrap_err(),
            TokenError::Malformed,
            "{payload}"
        );
    }
    // A repeated header member, even one the validator does not read.
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"hs-1","x5u":"a","x5u":"b"}"#;
    assert_eq!(
        validator
            .validate_as::<Value>(&hs256_raw(&secret, header, &single))
            .unwrap_err(),
        TokenError::Malformed
    );
}
