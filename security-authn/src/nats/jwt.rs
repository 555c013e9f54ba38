//! The NATS v2 JWT codec: header, Go-compatible `jti`, signing through a
//! [`KeyStore`], parsing and signature checks.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use security_core::{KeyId, KeyStore};
use sha2::{Digest, Sha512_256};

use super::claims::{JWT_VERSION, NatsClaimKind, NatsClaims, is_public_key};
use super::error::{NatsError, NatsJwtError};
use crate::strict_json::has_unique_members;

/// The header of every NATS v2 JWT, exactly as Go writes it.
pub const NATS_JWT_HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// [`NATS_JWT_HEADER`], base64url without padding.
const ENCODED_HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ";

/// The largest JWT accepted for decoding, in bytes: room for account JWTs
/// with many exports, imports and revocations, and a bound on the work a
/// hostile token can cause.
pub const NATS_MAX_JWT_LEN: usize = 1 << 20;

/// The `jti` Go's `nats-io/jwt` v2 gives a claim set: SHA-512/256 over the
/// compact JSON of the base claims (`aud, exp, iat, iss, name, nbf, sub`
/// in that order, empty ones left out, `jti` itself empty), base32 without
/// padding. Strings are escaped as Go's `encoding/json` escapes them
/// (`<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes).
///
/// The server never checks `jti`; matching Go keeps the ids identical to
/// those `nsc` would compute for the same claims.
pub fn nats_jti<T>(claims: &NatsClaims<T>) -> String {
    let mut json = String::with_capacity(256);
    json.push('{');
    let mut first = true;
    let mut field = |json: &mut String, name: &str| {
        if !first {
            json.push(',');
        }
        first = false;
        json.push('"');
        json.push_str(name);
        json.push_str("\":");
    };
    if let Some(aud) = claims.aud.as_deref().filter(|a| !a.is_empty()) {
        field(&mut json, "aud");
        push_go_string(&mut json, aud);
    }
    if let Some(exp) = claims.exp.filter(|e| *e != 0) {
        field(&mut json, "exp");
        let _ = write!(json, "{exp}");
    }
    if claims.iat != 0 {
        field(&mut json, "iat");
        let _ = write!(json, "{}", claims.iat);
    }
    if !claims.iss.is_empty() {
        field(&mut json, "iss");
        push_go_string(&mut json, &claims.iss);
    }
    if let Some(name) = claims.name.as_deref().filter(|n| !n.is_empty()) {
        field(&mut json, "name");
        push_go_string(&mut json, name);
    }
    if let Some(nbf) = claims.nbf.filter(|n| *n != 0) {
        field(&mut json, "nbf");
        let _ = write!(json, "{nbf}");
    }
    if !claims.sub.is_empty() {
        field(&mut json, "sub");
        push_go_string(&mut json, &claims.sub);
    }
    json.push('}');
    data_encoding::BASE32_NOPAD.encode(&Sha512_256::digest(json.as_bytes()))
}

/// Appends `s` as a JSON string the way Go's `encoding/json` writes it
/// (HTML-safe). serde_json escapes fewer characters, and the `jti` hash
/// must see Go's bytes, so this one is written out.
fn push_go_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Signs `claims` with the key-store key `key_id`, whose public nkey is
/// `issuer`: sets `iss` and `jti`, and returns the compact JWT.
///
/// The private key never leaves the key store: only the signing input is
/// handed to [`KeyStore::sign`].
pub(crate) async fn encode<T: NatsClaimKind>(
    keys: &dyn KeyStore,
    key_id: KeyId,
    issuer: &str,
    claims: &mut NatsClaims<T>,
) -> Result<String, NatsError> {
    issuer.clone_into(&mut claims.iss);
    claims.jti.clear();
    claims.jti = nats_jti(claims);
    let payload = serde_json::to_vec(&claims).map_err(NatsError::Serialize)?;
    let mut token =
        String::with_capacity(ENCODED_HEADER.len() + 2 + payload.len().div_ceil(3) * 4 + 86);
    token.push_str(ENCODED_HEADER);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = keys.sign(key_id, token.as_bytes()).await?;
    if signature.len() != 64 {
        return Err(NatsError::NotEd25519(key_id));
    }
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}

/// A parsed NATS JWT: its claims, and what is needed to check its
/// signature. Parsing alone proves nothing; see [`decode_jwt`] and
/// [`NatsTrust`](crate::NatsTrust).
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedJwt<T> {
    claims: NatsClaims<T>,
    token: String,
    signing_input_len: usize,
    signature: [u8; 64],
}

impl<T: NatsClaimKind> DecodedJwt<T> {
    /// Parses a token: three segments, the v2 nkey header, JSON claims of
    /// the expected type and version 2 with no member named twice (at any
    /// depth), `iss` and `sub` public nkeys of the expected types. Does
    /// **not** check the signature.
    pub(crate) fn parse(token: &str) -> Result<Self, NatsJwtError> {
        if token.len() > NATS_MAX_JWT_LEN {
            return Err(NatsJwtError::TooLarge);
        }
        let token = token.trim();
        let (signing_input, signature) = token.rsplit_once('.').ok_or(NatsJwtError::Malformed)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(NatsJwtError::Malformed)?;
        if header != ENCODED_HEADER {
            check_header(header)?;
        }
        let mut sig = [0_u8; 64];
        match URL_SAFE_NO_PAD.decode_slice(signature, &mut sig) {
            Ok(64) => {}
            _ => return Err(NatsJwtError::Malformed),
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| NatsJwtError::Malformed)?;
        // Go's decoder keeps the last of two members with one name: a
        // token read differently by two parsers is refused outright.
        if !has_unique_members(&payload) {
            return Err(NatsJwtError::Malformed);
        }
        let claims: NatsClaims<T> =
            serde_json::from_slice(&payload).map_err(|_| NatsJwtError::Malformed)?;
        if claims.nats.claim_type() != T::CLAIM_TYPE {
            return Err(NatsJwtError::claim_type(
                T::CLAIM_TYPE,
                claims.nats.claim_type(),
            ));
        }
        if claims.nats.version() != JWT_VERSION {
            return Err(NatsJwtError::Version);
        }
        if !is_public_key(&claims.sub, T::SUBJECT_PREFIX) {
            return Err(NatsJwtError::Key {
                field: "sub",
                expected: key_type(T::SUBJECT_PREFIX),
            });
        }
        if !is_public_key(&claims.iss, T::ISSUER_PREFIX) {
            return Err(NatsJwtError::Key {
                field: "iss",
                expected: key_type(T::ISSUER_PREFIX),
            });
        }
        Ok(Self {
            claims,
            signing_input_len: signing_input.len(),
            token: token.to_owned(),
            signature: sig,
        })
    }

    /// The claims.
    pub fn claims(&self) -> &NatsClaims<T> {
        &self.claims
    }

    /// Takes the claims.
    pub fn into_claims(self) -> NatsClaims<T> {
        self.claims
    }

    /// The token as given.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The bytes the signature covers: `<header>.<payload>`.
    pub fn signing_input(&self) -> &[u8] {
        self.token
            .as_bytes()
            .get(..self.signing_input_len)
            .unwrap_or_default()
    }

    /// The Ed25519 signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Checks the signature with a public key.
    pub(crate) fn verify_with(&self, key: &nkeys::KeyPair) -> Result<(), NatsJwtError> {
        key.verify(self.signing_input(), &self.signature)
            .map_err(|_| NatsJwtError::Signature)
    }
}

fn key_type(prefix: char) -> &'static str {
    match prefix {
        'O' => "operator",
        'A' => "account",
        'U' => "user",
        _ => "nkey",
    }
}

/// Accepts a header written differently from Go's (other field order,
/// whitespace) as long as it says `typ: JWT` and `alg: ed25519-nkey`.
fn check_header(header: &str) -> Result<(), NatsJwtError> {
    #[derive(serde::Deserialize)]
    struct Header {
        typ: String,
        alg: String,
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| NatsJwtError::Malformed)?;
    if !has_unique_members(&bytes) {
        return Err(NatsJwtError::Header);
    }
    let header: Header = serde_json::from_slice(&bytes).map_err(|_| NatsJwtError::Header)?;
    if header.typ.eq_ignore_ascii_case("JWT") && header.alg == "ed25519-nkey" {
        Ok(())
    } else {
        Err(NatsJwtError::Header)
    }
}

/// Decodes a NATS JWT and checks that its signature verifies with its own
/// `iss` key, as Go's `jwt.Decode` does. Proves only that the holder of
/// `iss` signed it: whether `iss` is to be trusted is the caller's
/// question (see [`NatsTrust`](crate::NatsTrust)). No time check is made.
pub fn decode_jwt<T: NatsClaimKind>(token: &str) -> Result<DecodedJwt<T>, NatsJwtError> {
    let decoded = DecodedJwt::<T>::parse(token)?;
    let issuer =
        nkeys::KeyPair::from_public_key(&decoded.claims.iss).map_err(|_| NatsJwtError::Key {
            field: "iss",
            expected: key_type(T::ISSUER_PREFIX),
        })?;
    decoded.verify_with(&issuer)?;
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nats::claims::{ClaimType, UserNats};

    #[test]
    fn header_constant_is_the_encoded_header() {
        assert_eq!(URL_SAFE_NO_PAD.encode(NATS_JWT_HEADER), ENCODED_HEADER);
    }

    #[test]
    fn go_string_escaping() {
        let mut out = String::new();
        push_go_string(&mut out, "a<b>&\"\\\n\u{1}\u{2028}é");
        assert_eq!(out, r#""a\u003cb\u003e\u0026\"\\\n\u0001\u2028é""#);
    }

    #[test]
    fn jti_leaves_out_empty_fields() {
        let claims = NatsClaims {
            aud: Some(String::new()),
            exp: None,
            jti: "ignored".into(),
            iat: 1,
            iss: "I".into(),
            name: None,
            nbf: Some(0),
            sub: "S".into(),
            nats: UserNats {
                claim_type: ClaimType::User,
                ..UserNats::default()
            },
        };
        let expected = data_encoding::BASE32_NOPAD
            .encode(&Sha512_256::digest(br#"{"iat":1,"iss":"I","sub":"S"}"#));
        assert_eq!(nats_jti(&claims), expected);
    }
}
