//! The password policy.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// What a password must be. The defaults are those of the source
/// documents: at least 12 characters with an upper-case letter, a
/// lower-case letter, a digit and a special character; none of the last 5
/// passwords; changed at least every 90 days.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "one switch per rule of the source documents reads best"
)]
pub struct PasswordPolicy {
    /// The fewest characters (Unicode scalar values).
    pub min_length: usize,
    /// The most bytes: longer input is refused before hashing, so a huge
    /// "password" cannot tie up the hasher.
    pub max_bytes: usize,
    /// Needs an upper-case letter.
    pub require_uppercase: bool,
    /// Needs a lower-case letter.
    pub require_lowercase: bool,
    /// Needs a digit.
    pub require_digit: bool,
    /// Needs a special character (anything not a letter or a digit).
    pub require_special: bool,
    /// How many of the newest passwords (the current one included) may not
    /// be used again. 0 disables the check.
    pub history: usize,
    /// How long a password lasts before it must be changed at the next
    /// login (`None`: forever).
    pub max_age: Option<Duration>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 12,
            max_bytes: 1024,
            require_uppercase: true,
            require_lowercase: true,
            require_digit: true,
            require_special: true,
            history: 5,
            max_age: Some(Duration::from_secs(90 * 86_400)),
        }
    }
}

/// One rule of the policy that a password broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PasswordRule {
    /// Shorter than the minimum length.
    TooShort {
        /// The minimum.
        min_length: usize,
    },
    /// Longer than the maximum.
    TooLong {
        /// The maximum, in bytes.
        max_bytes: usize,
    },
    /// No upper-case letter.
    MissingUppercase,
    /// No lower-case letter.
    MissingLowercase,
    /// No digit.
    MissingDigit,
    /// No special character.
    MissingSpecial,
    /// One of the newest passwords.
    RecentlyUsed {
        /// How many of the newest passwords are refused.
        history: usize,
    },
}

impl fmt::Display for PasswordRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { min_length } => write!(f, "at least {min_length} characters"),
            Self::TooLong { max_bytes } => write!(f, "at most {max_bytes} bytes"),
            Self::MissingUppercase => f.write_str("an upper-case letter"),
            Self::MissingLowercase => f.write_str("a lower-case letter"),
            Self::MissingDigit => f.write_str("a digit"),
            Self::MissingSpecial => f.write_str("a special character"),
            Self::RecentlyUsed { history } => {
                write!(f, "not one of the last {history} passwords")
            }
        }
    }
}

/// A password broke the policy: every rule it broke, in a fixed order.
///
/// The message lists the rules and never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyViolation {
    /// The rules broken (never empty).
    pub rules: Vec<PasswordRule>,
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("password does not meet the policy: it needs ")?;
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{rule}")?;
        }
        Ok(())
    }
}

impl PasswordPolicy {
    /// The rules `password` breaks on its own (everything but the history,
    /// which needs the stored hashes: [`AuthenticationService`] checks it).
    ///
    /// [`AuthenticationService`]: crate::AuthenticationService
    pub fn violations(&self, password: &SecretString) -> Vec<PasswordRule> {
        let text = password.expose_secret();
        let mut rules = Vec::new();
        if text.chars().count() < self.min_length {
            rules.push(PasswordRule::TooShort {
                min_length: self.min_length,
            });
        }
        if text.len() > self.max_bytes {
            rules.push(PasswordRule::TooLong {
                max_bytes: self.max_bytes,
            });
        }
        if self.require_uppercase && !text.chars().any(char::is_uppercase) {
            rules.push(PasswordRule::MissingUppercase);
        }
        if self.require_lowercase && !text.chars().any(char::is_lowercase) {
            rules.push(PasswordRule::MissingLowercase);
        }
        if self.require_digit && !text.chars().any(char::is_numeric) {
            rules.push(PasswordRule::MissingDigit);
        }
        if self.require_special && !text.chars().any(is_special) {
            rules.push(PasswordRule::MissingSpecial);
        }
        rules
    }

    /// Checks `password` against every rule but the history.
    pub fn check(&self, password: &SecretString) -> Result<(), PolicyViolation> {
        let rules = self.violations(password);
        if rules.is_empty() {
            Ok(())
        } else {
            Err(PolicyViolation { rules })
        }
    }
}

/// A special character: neither a letter nor a digit nor a control character.
fn is_special(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn defaults_are_those_of_the_source_documents() {
        let p = PasswordPolicy::default();
        assert_eq!(p.min_length, 12);
        assert!(p.require_uppercase && p.require_lowercase && p.require_digit && p.require_special);
        assert_eq!(p.history, 5);
        assert_eq!(p.max_age, Some(Duration::from_secs(90 * 24 * 3600)));
    }

    #[test]
    fn a_good_password_passes() {
        let p = PasswordPolicy::default();
        assert_eq!(p.check(&secret("Correct-Horse-9")), Ok(()));
        assert_eq!(p.check(&secret("Ünïcödé pässwörd 7")), Ok(()));
    }

    #[test]
    fn every_broken_rule_is_listed() {
        let p = PasswordPolicy::default();
        let err = p.check(&secret("short")).unwrap_err();
        assert_eq!(
            err.rules,
            vec![
                PasswordRule::TooShort { min_length: 12 },
                PasswordRule::MissingUppercase,
                PasswordRule::MissingDigit,
                PasswordRule::MissingSpecial,
            ]
        );
        let text = err.to_string();
        assert_eq!(
            text,
            "password does not meet the policy: it needs at least 12 characters, an upper-case \
             letter, a digit, a special character"
        );
        assert!(!text.contains("short"));
        let err = p.check(&secret("ALLUPPERCASE123!")).unwrap_err();
        assert_eq!(err.rules, vec![PasswordRule::MissingLowercase]);
        let long = format!("Aa1!{}", "x".repeat(2000));
        assert_eq!(
            p.check(&secret(&long)).unwrap_err().rules,
            vec![PasswordRule::TooLong { max_bytes: 1024 }]
        );
    }

    #[test]
    fn rules_can_be_relaxed() {
        let p = PasswordPolicy {
            min_length: 4,
            require_special: false,
            require_digit: false,
            ..PasswordPolicy::default()
        };
        assert_eq!(p.check(&secret("Abcd")), Ok(()));
    }
}
