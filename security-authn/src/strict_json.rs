//! Strict JSON for tokens: one text, and no object that names a member
//! twice, at any depth.
//!
//! RFC 7515 §4 and RFC 7519 §4 require unique member names and let a
//! parser either refuse duplicates or keep the last one. Refusing is the
//! safe choice: two parsers that keep different copies (the first, the
//! last) read two different tokens from the same signed bytes. serde's
//! derived deserializers refuse duplicates only of the fields a struct
//! names, so custom claims (`role`, `permissions`) and members a struct
//! ignores pass through with their last value. This check walks the whole
//! document once and compares member names after unescaping (`"\u0073ub"`
//! is `sub`).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Whether `bytes` is exactly one JSON value (surrounding whitespace
/// allowed) in which no object repeats a member name. Nesting is bounded
/// by serde_json's recursion limit.
pub(crate) fn has_unique_members(bytes: &[u8]) -> bool {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    UniqueMembers.deserialize(&mut deserializer).is_ok() && deserializer.end().is_ok()
}

/// Visits a JSON value and refuses repeated member names.
#[derive(Clone, Copy)]
struct UniqueMembers;

impl<'de> DeserializeSeed<'de> for UniqueMembers {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueMembers {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without duplicate member names")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(name) {
                return Err(de::Error::custom("duplicate member name"));
            }
            map.next_value_seed(Self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::has_unique_members;

    #[test]
    fn repeated_names_are_refused_at_any_depth() {
        for good in [
            "{}",
            r#" {"a":1,"b":[{"a":1},{"a":2}],"c":{"a":{"a":null}}} "#,
            r#"{"a":"\u0061","A":1}"#,
            r#"[1,"x",true,null,1.5e300,-7]"#,
        ] {
            assert!(has_unique_members(good.as_bytes()), "{good}");
        }
        for bad in [
            r#"{"sub":"user-1","sub":"admin"}"#,
            r#"{"sub":"user-1","\u0073ub":"admin"}"#,
            r#"{"a":{"role":"user","role":"admin"}}"#,
            r#"{"a":[{"x":1,"x":1}]}"#,
            r#"{"a":1} {"a":2}"#,
            r#"{"a":1"#,
            "",
        ] {
            assert!(!has_unique_members(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "[".repeat(100_000);
        assert!(!has_unique_members(deep.as_bytes()));
    }
}
