//! `.creds` files: a user JWT and the user's nkey seed, in the exact
//! layout `nsc` writes and NATS clients read.

use std::fmt;
use std::io::{self, Write as _};
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::error::NatsError;

const JWT_BEGIN: &str = "-----BEGIN NATS USER JWT-----";
const JWT_END: &str = "------END NATS USER JWT------";
const SEED_BEGIN: &str = "-----BEGIN USER NKEY SEED-----";
const SEED_END: &str = "------END USER NKEY SEED------";
const WARNING: &str = "************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.";
const FOOTER: &str = "*************************************************************";

/// A user's credentials: its JWT and its nkey seed (`SU…`).
///
/// The seed is a secret: `Debug` does not show it, the file text is a
/// [`SecretString`], and files are written readable by the owner only.
pub struct UserCreds {
    jwt: String,
    seed: SecretString,
}

impl fmt::Debug for UserCreds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserCreds")
            .field("jwt", &self.jwt)
            .field("seed", &"[redacted]")
            .finish()
    }
}

impl UserCreds {
    /// Credentials from a user JWT and the user's seed. The seed must be a
    /// user seed (`SU…`) whose public key is the JWT's subject.
    pub fn new(jwt: impl Into<String>, seed: SecretString) -> Result<Self, NatsError> {
        let jwt = jwt.into();
        check_jwt_text(&jwt)?;
        let pair = nkeys::KeyPair::from_seed(seed.expose_secret())
            .map_err(|_| NatsError::MalformedCreds)?;
        if !seed.expose_secret().starts_with("SU") {
            return Err(NatsError::MalformedCreds);
        }
        let claims = super::verify::decode_user_jwt(&jwt)?;
        if claims.sub != pair.public_key() {
            return Err(NatsError::MalformedCreds);
        }
        Ok(Self { jwt, seed })
    }

    /// The user JWT.
    pub fn jwt(&self) -> &str {
        &self.jwt
    }

    /// The user's nkey seed.
    pub fn seed(&self) -> &SecretString {
        &self.seed
    }

    /// The text of the `.creds` file: BEGIN lines with five dashes, END
    /// lines with six, the warning block, a final newline.
    pub fn to_file_text(&self) -> SecretString {
        let seed = self.seed.expose_secret();
        let mut text = Zeroizing::new(String::with_capacity(self.jwt.len() + 512));
        for part in [
            JWT_BEGIN, "\n", &self.jwt, "\n", JWT_END, "\n\n", WARNING, "\n\n", SEED_BEGIN, "\n",
            seed, "\n", SEED_END, "\n\n", FOOTER, "\n",
        ] {
            text.push_str(part);
        }
        SecretString::from(text.as_str())
    }

    /// Reads a `.creds` file's text (as `nsc` writes it, or as this type
    /// does): the JWT between its markers, the seed between its markers.
    /// The JWT's own signature is checked and the seed must belong to its
    /// subject; whether the JWT is trusted is for
    /// [`NatsTrust`](crate::NatsTrust) to say.
    pub fn parse(text: &str) -> Result<Self, NatsError> {
        let jwt = between(text, "BEGIN NATS USER JWT", "END NATS USER JWT")?;
        let seed = between(text, "BEGIN USER NKEY SEED", "END USER NKEY SEED")?;
        Self::new(jwt, SecretString::from(seed))
    }

    /// Writes the `.creds` file, readable and writable by its owner only
    /// (on Unix; elsewhere with the platform's defaults). Replaces an
    /// existing file.
    pub fn write_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(self.to_file_text().expose_secret().as_bytes())?;
        file.sync_all()
    }
}

/// The single trimmed line between a `-----BEGIN <begin>-----` marker and
/// its END marker (NATS accepts any number of dashes around the words).
fn between<'a>(text: &'a str, begin: &str, end: &str) -> Result<&'a str, NatsError> {
    let mut lines = text.lines().map(str::trim);
    lines
        .by_ref()
        .find(|l| is_marker(l, begin))
        .ok_or(NatsError::MalformedCreds)?;
    let value = lines
        .by_ref()
        .find(|l| !l.is_empty())
        .ok_or(NatsError::MalformedCreds)?;
    let next = lines
        .find(|l| !l.is_empty())
        .ok_or(NatsError::MalformedCreds)?;
    if is_marker(next, end) && !value.starts_with('-') {
        Ok(value)
    } else {
        Err(NatsError::MalformedCreds)
    }
}

fn is_marker(line: &str, words: &str) -> bool {
    line.len() > words.len()
        && line.starts_with("---")
        && line.ends_with("---")
        && line.trim_matches('-') == words
}

fn check_jwt_text(jwt: &str) -> Result<(), NatsError> {
    if !jwt.is_empty()
        && jwt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(())
    } else {
        Err(NatsError::MalformedCreds)
    }
}
