//! NATS subject grammar and matching (after nats-server's `sublist.go`).
//!
//! - Tokens are split on `.`; matching is case-sensitive and byte-exact.
//! - `*` matches exactly one token; `>` matches one or more trailing tokens
//!   and is valid only as the last token. A wildcard is only a wildcard when
//!   it is a whole token: `foo*`, `*bar` and `foo>` are literals.
//! - Invalid: the empty subject, an empty token (leading or trailing `.`,
//!   `..`), a token after `>`, whitespace (space, tab, CR, LF, FF) or NUL.
//! - An invalid subject matches nothing, not even `>`.

/// Why a subject or pattern was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// The subject is empty.
    #[error("subject is empty")]
    Empty,
    /// A token is empty (leading, trailing or doubled `.`).
    #[error("subject has an empty token")]
    EmptyToken,
    /// A token holds whitespace or NUL.
    #[error("subject holds whitespace or a control character")]
    Whitespace,
    /// `>` is followed by more tokens.
    #[error("'>' must be the last token")]
    FullWildcardNotLast,
    /// A wildcard appears where only a literal subject is allowed.
    #[error("wildcards are not allowed here")]
    WildcardNotAllowed,
    /// A queue group name is empty or holds whitespace.
    #[error("queue group name is invalid")]
    InvalidQueue,
    /// The subject is longer than [`MAX_SUBJECT_LEN`].
    #[error("subject is too long")]
    TooLong,
}

/// The longest subject accepted, in bytes (the server's default max
/// control line is 4 KiB; a subject must fit in it).
pub const MAX_SUBJECT_LEN: usize = 4096;

fn is_bad_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0)
}

/// Whether the token is the single-token wildcard `*`.
pub fn is_partial_wildcard(token: &str) -> bool {
    token == "*"
}

/// Whether the token is the full wildcard `>`.
pub fn is_full_wildcard(token: &str) -> bool {
    token == ">"
}

/// Checks a subject that may hold wildcards (a subscription or a permission
/// pattern).
pub fn validate_pattern(subject: &str) -> Result<(), SubjectError> {
    if subject.is_empty() {
        return Err(SubjectError::Empty);
    }
    if subject.len() > MAX_SUBJECT_LEN {
        return Err(SubjectError::TooLong);
    }
    if subject.bytes().any(is_bad_byte) {
        return Err(SubjectError::Whitespace);
    }
    let mut saw_full_wildcard = false;
    for token in subject.split('.') {
        if token.is_empty() {
            return Err(SubjectError::EmptyToken);
        }
        if saw_full_wildcard {
            return Err(SubjectError::FullWildcardNotLast);
        }
        saw_full_wildcard = is_full_wildcard(token);
    }
    Ok(())
}

/// Checks a literal subject (one a message is published to): a valid
/// subject with no wildcard token.
pub fn validate_literal(subject: &str) -> Result<(), SubjectError> {
    validate_pattern(subject)?;
    if subject
        .split('.')
        .any(|t| is_partial_wildcard(t) || is_full_wildcard(t))
    {
        return Err(SubjectError::WildcardNotAllowed);
    }
    Ok(())
}

/// Whether `subject` may hold wildcards and is valid.
pub fn is_valid_pattern(subject: &str) -> bool {
    validate_pattern(subject).is_ok()
}

/// Whether `subject` is a valid literal subject.
pub fn is_valid_literal(subject: &str) -> bool {
    validate_literal(subject).is_ok()
}

/// Checks a queue group name: non-empty, no whitespace.
pub fn validate_queue(queue: &str) -> Result<(), SubjectError> {
    if queue.is_empty() || queue.len() > MAX_SUBJECT_LEN || queue.bytes().any(is_bad_byte) {
        return Err(SubjectError::InvalidQueue);
    }
    Ok(())
}

/// Whether `pattern` matches `subject`. Tokens of `subject` are taken
/// literally; an invalid subject or pattern matches nothing.
pub fn matches(pattern: &str, subject: &str) -> bool {
    if !is_valid_pattern(subject) || !is_valid_pattern(pattern) {
        return false;
    }
    let mut subject_tokens = subject.split('.');
    for pattern_token in pattern.split('.') {
        if is_full_wildcard(pattern_token) {
            return subject_tokens.next().is_some();
        }
        match subject_tokens.next() {
            Some(token) if is_partial_wildcard(pattern_token) || token == pattern_token => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

/// Whether every subject matched by `subject` is also matched by `test`
/// (nats-server `subjectIsSubsetMatch`).
pub fn is_subset(subject: &str, test: &str) -> bool {
    if !is_valid_pattern(subject) || !is_valid_pattern(test) {
        return false;
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    let test_tokens: Vec<&str> = test.split('.').collect();
    for (i, t2) in test_tokens.iter().enumerate() {
        let Some(t1) = tokens.get(i) else {
            return false;
        };
        if is_full_wildcard(t2) {
            return true;
        }
        if is_full_wildcard(t1) {
            return false;
        }
        if is_partial_wildcard(t1) {
            if !is_partial_wildcard(t2) {
                return false;
            }
            continue;
        }
        if !is_partial_wildcard(t2) && t1 != t2 {
            return false;
        }
    }
    tokens.len() == test_tokens.len()
}

/// Whether some literal subject is matched by both `a` and `b`
/// (nats-server `SubjectsCollide`).
pub fn collide(a: &str, b: &str) -> bool {
    if !is_valid_pattern(a) || !is_valid_pattern(b) {
        return false;
    }
    let ta: Vec<&str> = a.split('.').collect();
    let tb: Vec<&str> = b.split('.').collect();
    let full_a = ta.last().is_some_and(|t| is_full_wildcard(t));
    let full_b = tb.last().is_some_and(|t| is_full_wildcard(t));
    let fixed_a = if full_a { ta.len() - 1 } else { ta.len() };
    let fixed_b = if full_b { tb.len() - 1 } else { tb.len() };
    // Lengths: without '>' both must have the same number of tokens; a '>'
    // needs at least one token of the other past its fixed prefix.
    let lengths_ok = match (full_a, full_b) {
        (false, false) => ta.len() == tb.len(),
        (true, false) => tb.len() > fixed_a,
        (false, true) => ta.len() > fixed_b,
        (true, true) => true,
    };
    lengths_ok
        && ta
            .iter()
            .zip(tb.iter())
            .take(fixed_a.min(fixed_b))
            .all(|(x, y)| is_partial_wildcard(x) || is_partial_wildcard(y) || x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_matching() {
        assert!(matches("orders.>", "orders.created"));
        assert!(!matches("orders.>", "orders"));
        assert!(matches("orders.*", "orders.created"));
        assert!(!matches("orders.*", "orders.created.eu"));
        assert!(!matches(">", "foo..bar"));
        assert!(matches("foo*", "foo*"));
        assert!(!matches("foo*", "foobar"));
    }

    #[test]
    fn validation() {
        assert_eq!(validate_pattern(""), Err(SubjectError::Empty));
        assert_eq!(validate_pattern("a..b"), Err(SubjectError::EmptyToken));
        assert_eq!(
            validate_pattern("a.>.b"),
            Err(SubjectError::FullWildcardNotLast)
        );
        assert_eq!(validate_pattern("a b"), Err(SubjectError::Whitespace));
        assert_eq!(
            validate_literal("a.*"),
            Err(SubjectError::WildcardNotAllowed)
        );
        assert!(validate_queue("workers").is_ok());
        assert!(validate_queue("bad queue").is_err());
    }

    #[test]
    fn collide_cases() {
        assert!(!collide("foo.*", "foo.*.bar.>"));
        assert!(collide("foo.*", "foo.foo"));
        assert!(collide("foo.*", "*.foo"));
        assert!(collide("foo.bar.>", "*.bar.foo"));
        assert!(collide("foo.>", "foo.*.*"));
        assert!(!collide("foo.>", "foo"));
        assert!(collide(">", "a.b"));
    }
}
