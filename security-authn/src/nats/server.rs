//! The `nats-server` configuration fragment for operator mode: the
//! operator JWT, the system account and a MEMORY resolver preloaded with
//! the account JWTs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::claims::is_public_key;
use super::error::NatsError;
use super::verify::{decode_account_jwt, decode_operator_jwt};

/// Where the server finds the operator JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorSource {
    /// The JWT itself, inline in the configuration.
    Inline(String),
    /// A path to a file holding it (relative paths are resolved by the
    /// server against its working directory).
    Path(String),
}

/// A `nats-server` configuration for operator mode, to drop into a
/// server's configuration file (operator mode forbids `accounts` and
/// `users` blocks beside it).
///
/// ```text
/// listen: 127.0.0.1:4333
/// operator: "<operator JWT>"
/// system_account: "<system account public key>"
/// resolver: MEMORY
/// resolver_preload: {
///   "<account public key>": "<account JWT>"
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsServerConfig {
    /// `host:port` to listen on (`None`: the server's default, 4222).
    pub listen: Option<String>,
    /// The operator JWT or its path.
    pub operator: OperatorSource,
    /// The system account's public key.
    pub system_account: String,
    /// Account JWTs by public key; must include the system account's.
    pub accounts: BTreeMap<String, String>,
}

impl NatsServerConfig {
    /// A configuration from the operator JWT and the account JWTs (the
    /// system account's among them). The system account is the one the
    /// operator JWT names; every JWT is decoded and its signature checked,
    /// and each account JWT is filed under its subject.
    pub fn new<'a>(
        operator_jwt: &str,
        account_jwts: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, NatsError> {
        let operator = decode_operator_jwt(operator_jwt)?;
        let mut accounts = BTreeMap::new();
        for jwt in account_jwts {
            let claims = decode_account_jwt(jwt)?;
            accounts.insert(claims.sub, jwt.to_owned());
        }
        let config = Self {
            listen: None,
            operator: OperatorSource::Inline(operator_jwt.to_owned()),
            system_account: operator.nats.system_account,
            accounts,
        };
        config.check()?;
        Ok(config)
    }

    /// Sets the listen address.
    #[must_use]
    pub fn listen(mut self, listen: impl Into<String>) -> Self {
        self.listen = Some(listen.into());
        self
    }

    /// Points the server at an operator JWT file instead of inlining it.
    #[must_use]
    pub fn operator_path(mut self, path: impl Into<String>) -> Self {
        self.operator = OperatorSource::Path(path.into());
        self
    }

    /// Checks what the server would refuse: a system account that is not
    /// an account key or whose JWT is missing (the server exits), and any
    /// value that would break out of its quotes.
    pub fn check(&self) -> Result<(), NatsError> {
        if !is_public_key(&self.system_account, 'A')
            || !self.accounts.contains_key(&self.system_account)
        {
            return Err(NatsError::MissingSystemAccount);
        }
        if let Some(listen) = &self.listen
            && (listen.is_empty()
                || !listen
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"[]:.-_".contains(&b)))
        {
            return Err(NatsError::ConfigValue("listen address"));
        }
        match &self.operator {
            OperatorSource::Inline(jwt) if !is_token(jwt) => {
                return Err(NatsError::ConfigValue("operator jwt"));
            }
            OperatorSource::Path(path)
                if path.is_empty() || path.contains(['"', '\\', '\n', '\r', '$']) =>
            {
                return Err(NatsError::ConfigValue("operator path"));
            }
            _ => {}
        }
        for (key, jwt) in &self.accounts {
            if !is_public_key(key, 'A') {
                return Err(NatsError::ConfigValue("account public key"));
            }
            if !is_token(jwt) {
                return Err(NatsError::ConfigValue("account jwt"));
            }
        }
        Ok(())
    }

    /// The configuration text.
    pub fn render(&self) -> Result<String, NatsError> {
        self.check()?;
        let mut out = String::with_capacity(
            1024 + self.accounts.values().map(|j| j.len() + 64).sum::<usize>(),
        );
        out.push_str("# NATS decentralized auth (operator mode), written by security-authn.\n");
        if let Some(listen) = &self.listen {
            let _ = writeln!(out, "listen: {listen}");
        }
        match &self.operator {
            OperatorSource::Inline(jwt) | OperatorSource::Path(jwt) => {
                let _ = writeln!(out, "operator: \"{jwt}\"");
            }
        }
        let _ = writeln!(out, "system_account: \"{}\"", self.system_account);
        out.push_str("resolver: MEMORY\nresolver_preload: {\n");
        for (key, jwt) in &self.accounts {
            let _ = writeln!(out, "  \"{key}\": \"{jwt}\"");
        }
        out.push_str("}\n");
        Ok(out)
    }
}

fn is_token(jwt: &str) -> bool {
    !jwt.is_empty()
        && jwt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
