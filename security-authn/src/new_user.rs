//! [`NewPasswordUser`]: what
//! [`create_user_with_password`](crate::AuthenticationService::create_user_with_password)
//! creates.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
use serde_json::Value;

/// A user to create with a password: a username and a password, then any
/// of metadata and a forced change at the first login.
///
/// ```
/// use security_authn::NewPasswordUser;
/// use secrecy::SecretString;
///
/// let user = NewPasswordUser::new("root", SecretString::from("Correct-Horse-Battery-9"))
///     .metadata_entry("team", "ops")
///     .must_change_password();
/// assert!(user.must_change());
/// ```
///
/// `Debug` shows no password.
#[derive(Clone)]
pub struct NewPasswordUser {
    pub(crate) username: String,
    pub(crate) password: SecretString,
    pub(crate) metadata: BTreeMap<String, Value>,
    pub(crate) must_change_password: bool,
}

impl fmt::Debug for NewPasswordUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewPasswordUser")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .field("metadata", &self.metadata)
            .field("must_change_password", &self.must_change_password)
            .finish()
    }
}

impl NewPasswordUser {
    /// A user with this username and password, no metadata, and a password
    /// that need not be changed.
    pub fn new(username: impl Into<String>, password: impl Into<SecretString>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            metadata: BTreeMap::new(),
            must_change_password: false,
        }
    }

    /// Replaces the user's metadata.
    pub fn metadata(mut self, metadata: BTreeMap<String, Value>) -> Self {
        self.metadata = metadata;
        self
    }

    /// Adds one metadata entry.
    pub fn metadata_entry(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The password is temporary: the first login must change it.
    pub fn must_change_password(mut self) -> Self {
        self.must_change_password = true;
        self
    }

    /// The username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Whether the first login must change the password.
    pub fn must_change(&self) -> bool {
        self.must_change_password
    }
}
