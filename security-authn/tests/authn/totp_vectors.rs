//! TOTP against RFC 6238 Appendix B and RFC 4226 Appendix D, and against an
//! independent implementation (`oathtool`, OATH Toolkit).

use chrono::{DateTime, TimeZone, Utc};
use secrecy::ExposeSecret;
use security_authn::{TotpAlgorithm, TotpConfig, TotpSecret};
use serde_json::Value;

fn vectors(name: &str) -> Value {
    let path = format!("{}/../vectors/otp/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

#[test]
fn rfc6238_appendix_b() {
    let v = vectors("rfc6238_totp.json");
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 18);
    for case in cases {
        let name = case["algorithm"].as_str().unwrap();
        let algorithm = match name {
            "SHA1" => TotpAlgorithm::Sha1,
            "SHA256" => TotpAlgorithm::Sha256,
            "SHA512" => TotpAlgorithm::Sha512,
            other => panic!("{other}"),
        };
        let seed = hex(v["seeds"][name]["hex"].as_str().unwrap());
        let config = TotpConfig {
            digits: u8::try_from(case["digits"].as_u64().unwrap()).unwrap(),
            step_secs: case["step"].as_u64().unwrap(),
            algorithm,
            ..TotpConfig::default()
        };
        let secret = TotpSecret::from_bytes(&seed);
        let time = case["time"].as_i64().unwrap();
        let expected = case["totp"].as_str().unwrap();
        assert_eq!(
            config.code_at(&secret, at(time)).unwrap().expose_secret(),
            expected,
            "{case}"
        );
        let step = u64::try_from(time).unwrap() / 30;
        assert_eq!(
            config.verify(&secret, expected, at(time)),
            Some(step),
            "{case}"
        );
        assert_eq!(
            u64::from_str_radix(case["T_hex"].as_str().unwrap(), 16).unwrap(),
            step
        );
    }
}

#[test]
fn rfc4226_appendix_d_as_one_second_steps() {
    // HOTP(K, C) is TOTP with a one-second step at time C.
    let v = vectors("rfc4226_hotp.json");
    let secret = TotpSecret::from_bytes(&hex(v["secret"]["hex"].as_str().unwrap()));
    let config = TotpConfig {
        step_secs: 1,
        skew: 0,
        ..TotpConfig::default()
    };
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for case in cases {
        let count = case["count"].as_i64().unwrap();
        assert_eq!(
            config.code_at(&secret, at(count)).unwrap().expose_secret(),
            case["hotp"].as_str().unwrap()
        );
    }
}

#[test]
fn base32_of_the_rfc_seed() {
    let v = vectors("rfc6238_totp.json");
    let secret = TotpSecret::from_base32(v["seeds"]["SHA1"]["base32"].as_str().unwrap()).unwrap();
    assert_eq!(secret.expose_secret(), b"12345678901234567890");
    assert_eq!(
        secret.to_base32().expose_secret(),
        v["seeds"]["SHA1"]["base32"].as_str().unwrap()
    );
}

/// The code `oathtool` computes for a base32 secret at a Unix time.
pub(crate) fn oathtool(base32: &str, time: i64) -> String {
    let output = std::process::Command::new("oathtool")
        .args(["--totp", "-b", base32, "-N", &format!("@{time}")])
        .output()
        .expect("oathtool must be installed (Debian package oathtool)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn codes_from_oathtool_are_accepted() {
    let config = TotpConfig::default();
    for _ in 0..3 {
        let secret = TotpSecret::generate().unwrap();
        let base32 = secret.to_base32();
        for time in [
            1_767_225_600_i64,
            1_767_225_629,
            1_800_000_000,
            2_000_000_017,
        ] {
            let code = oathtool(base32.expose_secret(), time);
            assert_eq!(code.len(), 6);
            let step = u64::try_from(time / 30).unwrap();
            assert_eq!(config.verify(&secret, &code, at(time)), Some(step));
            // One step of skew either way, not two.
            assert_eq!(config.verify(&secret, &code, at(time + 30)), Some(step));
            assert_eq!(config.verify(&secret, &code, at(time - 30)), Some(step));
            assert_eq!(config.verify(&secret, &code, at(time + 61)), None);
            assert_eq!(
                config.code_at(&secret, at(time)).unwrap().expose_secret(),
                code
            );
        }
    }
}
