//! Registering clients and authenticating them (`client_secret_basic`,
//! `client_secret_post`).
//!
//! A confidential client's secret is 256 random bits, shown once. Only its
//! keyed hash is stored: HMAC-SHA256 under the tenant's `LookupHashing`
//! key (the mechanism of API keys), over a message that names the purpose,
//! the tenant and the client, so a hash is worth nothing for another
//! client or tenant.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};

use security_core::oauth::{
    ClientKind, ClientSecretHash, OAuthClient, OAuthClientCommand, OAuthClientId,
    OAuthClientSettings,
};
use security_core::{Actor, KeyStoreError, TenantId};

use super::audit::OAuthAuditEvent;
use super::error::{OAuthError, OAuthErrorCode};
use super::provider::OidcProvider;
use crate::error::AuthnError;

/// Prefix of client secrets (lets secret scanners find leaked ones).
const CLIENT_SECRET_PREFIX: &str = "sec_cs_";
/// The longest secret looked at; anything longer is refused unhashed.
const MAX_SECRET_LEN: usize = 128;

/// A client to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClient {
    /// Confidential (gets a secret) or public (PKCE alone).
    pub kind: ClientKind,
    /// Its name, redirect URIs, grants and scopes.
    pub settings: OAuthClientSettings,
}

/// A registered client: its id, and for a confidential client its secret,
/// shown this once. `Debug` hides the secret.
pub struct RegisteredClient {
    /// The `client_id`.
    pub client_id: OAuthClientId,
    /// The `client_secret` of a confidential client.
    pub client_secret: Option<SecretString>,
}

impl fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// How a client authenticated at the token, revocation or introspection
/// endpoint: its id, and its secret when it sent one (Basic or in the
/// form). `Debug` hides the secret.
#[derive(Clone)]
pub struct ClientAuthentication {
    /// The `client_id` as sent.
    pub client_id: String,
    /// The `client_secret` as sent.
    pub client_secret: Option<SecretString>,
}

impl fmt::Debug for ClientAuthentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuthentication")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl ClientAuthentication {
    /// Reads `client_secret_basic` (RFC 6749 §2.3.1): the value of an
    /// `Authorization` header, `Basic base64(urlencode(id):urlencode(secret))`.
    /// `None` unless it has exactly that shape.
    pub fn from_basic(header: &str) -> Option<Self> {
        const MAX_HEADER_BYTES: usize = 1024;
        if header.len() > MAX_HEADER_BYTES {
            return None;
        }
        let (scheme, encoded) = header.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        // Each part is form-urlencoded; a literal `&` or `=` in it is
        // data, not a separator.
        let unescape = |text: &str| -> Option<String> {
            let escaped = format!("v={}", text.replace('&', "%26").replace('=', "%3D"));
            url::form_urlencoded::parse(escaped.as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        Some(Self {
            client_id: unescape(id)?,
            client_secret: Some(SecretString::from(unescape(secret)?)),
        })
    }
}

fn secret_message(tenant: TenantId, client_id: OAuthClientId, secret: &SecretString) -> Vec<u8> {
    let mut message = Vec::with_capacity(64 + secret.expose_secret().len());
    message.extend_from_slice(b"security-authn:oauth-client-secret\0");
    message.extend_from_slice(tenant.as_uuid().as_bytes());
    message.extend_from_slice(client_id.as_uuid().as_bytes());
    message.extend_from_slice(secret.expose_secret().as_bytes());
    message
}

pub(crate) fn invalid_client() -> AuthnError {
    OAuthError::new(
        OAuthErrorCode::InvalidClient,
        "client authentication failed",
    )
    .into()
}

impl OidcProvider {
    async fn new_secret(
        &self,
        tenant: TenantId,
        client_id: OAuthClientId,
    ) -> Result<(SecretString, ClientSecretHash), AuthnError> {
        let random = security_crypto::random_bytes::<32>().map_err(AuthnError::crypto)?;
        let mut text = String::from(CLIENT_SECRET_PREFIX);
        URL_SAFE_NO_PAD.encode_string(random.as_ref(), &mut text);
        let secret = SecretString::from(text);
        let (key_id, tag) = self
            .authn
            .inner
            .keys
            .lookup_hash(tenant, &secret_message(tenant, client_id, &secret))
            .await?;
        let hash = ClientSecretHash {
            key_id,
            tag: URL_SAFE_NO_PAD.encode(tag),
        };
        Ok((secret, hash))
    }

    async fn client_command(
        &self,
        tenant: TenantId,
        client_id: OAuthClientId,
        command: OAuthClientCommand,
    ) -> Result<OAuthClient, AuthnError> {
        let ctx = self.authn.context(tenant, Some(Actor::system()));
        Ok(self
            .authn
            .inner
            .repo
            .execute::<OAuthClient>(client_id, &command, &ctx)
            .await?
            .state)
    }

    /// Registers a client of the tenant. A confidential client's secret is
    /// returned this once; only its keyed hash is stored.
    pub async fn register_client(
        &self,
        tenant: TenantId,
        client: NewClient,
    ) -> Result<RegisteredClient, AuthnError> {
        let client_id = OAuthClientId::from_uuid(self.authn.new_id());
        let (client_secret, secret) = match client.kind {
            ClientKind::Confidential => {
                let (secret, hash) = self.new_secret(tenant, client_id).await?;
                (Some(secret), Some(hash))
            }
            ClientKind::Public => (None, None),
        };
        let command = OAuthClientCommand::Register {
            client_id,
            kind: client.kind,
            settings: client.settings,
            secret,
        };
        self.client_command(tenant, client_id, command).await?;
        Ok(RegisteredClient {
            client_id,
            client_secret,
        })
    }

    /// Gives a confidential client a new secret (returned this once); the
    /// old one stops working at once, on every replica.
    pub async fn rotate_client_secret(
        &self,
        tenant: TenantId,
        client_id: OAuthClientId,
    ) -> Result<SecretString, AuthnError> {
        let (secret, hash) = self.new_secret(tenant, client_id).await?;
        self.client_command(
            tenant,
            client_id,
            OAuthClientCommand::RotateSecret { secret: hash },
        )
        .await?;
        Ok(secret)
    }

    /// Replaces a client's settings.
    pub async fn update_client(
        &self,
        tenant: TenantId,
        client_id: OAuthClientId,
        settings: OAuthClientSettings,
    ) -> Result<(), AuthnError> {
        self.client_command(tenant, client_id, OAuthClientCommand::Update { settings })
            .await
            .map(|_| ())
    }

    /// Disables a client for good: it gets no codes or tokens again.
    pub async fn disable_client(
        &self,
        tenant: TenantId,
        client_id: OAuthClientId,
        reason: &str,
    ) -> Result<(), AuthnError> {
        self.client_command(
            tenant,
            client_id,
            OAuthClientCommand::Disable {
                reason: reason.to_owned(),
            },
        )
        .await
        .map(|_| ())
    }

    /// The client, if it is registered in the tenant (disabled or not).
    pub async fn client(
        &self,
        tenant: TenantId,
        client_id: OAuthClientId,
    ) -> Result<Option<OAuthClient>, AuthnError> {
        let client = self
            .authn
            .inner
            .repo
            .load::<OAuthClient>(tenant, client_id)
            .await?
            .state;
        Ok(client.id.is_some().then_some(client))
    }

    /// The active client named by a `client_id` as sent, if any.
    pub(crate) async fn active_client(
        &self,
        tenant: TenantId,
        client_id: &str,
    ) -> Result<Option<OAuthClient>, AuthnError> {
        let Ok(id) = client_id.parse::<OAuthClientId>() else {
            return Ok(None);
        };
        Ok(self
            .client(tenant, id)
            .await?
            .filter(OAuthClient::is_active))
    }

    /// Authenticates a client at the token, revocation or introspection
    /// endpoint: a confidential client by its secret, a public client by
    /// its id alone (and must then send no secret). Anything else is
    /// `invalid_client`, recorded as an audit event.
    pub async fn authenticate_client(
        &self,
        tenant: TenantId,
        auth: &ClientAuthentication,
    ) -> Result<OAuthClient, AuthnError> {
        let client = self.active_client(tenant, &auth.client_id).await?;
        let verified = match (&client, &auth.client_secret) {
            (Some(client), Some(secret)) if client.kind == Some(ClientKind::Confidential) => {
                self.secret_matches(tenant, client, secret).await?
            }
            (Some(client), None) => client.kind == Some(ClientKind::Public),
            _ => false,
        };
        match client {
            Some(client) if verified => Ok(client),
            _ => {
                let event = OAuthAuditEvent::ClientAuthenticationFailed {
                    client_id: auth.client_id.parse().ok(),
                    failed_at: self.authn.now(),
                };
                self.record(tenant, None, &event).await?;
                Err(invalid_client())
            }
        }
    }

    async fn secret_matches(
        &self,
        tenant: TenantId,
        client: &OAuthClient,
        secret: &SecretString,
    ) -> Result<bool, AuthnError> {
        let (Some(client_id), Some(stored)) = (client.id, &client.secret) else {
            return Ok(false);
        };
        let text = secret.expose_secret();
        if text.len() > MAX_SECRET_LEN || !text.starts_with(CLIENT_SECRET_PREFIX) {
            return Ok(false);
        }
        let Ok(tag) = URL_SAFE_NO_PAD.decode(&stored.tag) else {
            return Ok(false);
        };
        match self
            .authn
            .inner
            .keys
            .store()
            .verify(
                stored.key_id,
                &secret_message(tenant, client_id, secret),
                &tag,
            )
            .await
        {
            Ok(matches) => Ok(matches),
            Err(KeyStoreError::Revoked(_) | KeyStoreError::Destroyed(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
