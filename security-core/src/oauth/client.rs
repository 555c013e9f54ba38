//! The [`OAuthClient`] aggregate: one registered client of a tenant.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::{Aggregate, CommandContext};
use crate::error::{DomainError, validate_name};
use crate::ids::{KeyId, ParseIdError};
use crate::impl_domain_event;

use super::redirect::RedirectUri;
use super::scope::Scope;

/// The most redirect URIs (and, separately, post-logout redirect URIs) a
/// client may register.
pub const MAX_REDIRECT_URIS: usize = 16;
/// The most scopes a client may be allowed.
pub const MAX_CLIENT_SCOPES: usize = 64;

/// A client's id (its `client_id` in the protocol is the UUID's text).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OAuthClientId(Uuid);

impl OAuthClientId {
    /// Wraps a UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID inside.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<OAuthClientId> for Uuid {
    fn from(id: OAuthClientId) -> Self {
        id.0
    }
}

impl fmt::Display for OAuthClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for OAuthClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OAuthClientId({})", self.0.hyphenated())
    }
}

impl FromStr for OAuthClientId {
    type Err = ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical hyphenated form: a client id is compared as
        // text by clients, so one client has one spelling.
        match Uuid::parse_str(s) {
            Ok(uuid) if uuid.hyphenated().to_string() == s => Ok(Self(uuid)),
            _ => Err(ParseIdError::new("oauth client")),
        }
    }
}

/// Whether a client can keep a secret (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// A server-side application: authenticates with its secret.
    Confidential,
    /// A browser or native app: no secret, PKCE alone binds its codes.
    Public,
}

/// A grant a client may use. The implicit and resource-owner password
/// grants are not representable (RFC 9700 §2.1.2, §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// `authorization_code`, always with PKCE `S256`.
    AuthorizationCode,
    /// `refresh_token`, rotated on every use.
    RefreshToken,
    /// `client_credentials`, for confidential clients only.
    ClientCredentials,
}

impl GrantType {
    /// The protocol name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// Parses a protocol name; `None` for every grant this provider does
    /// not support (`implicit`, `password`, device, …).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "authorization_code" => Some(Self::AuthorizationCode),
            "refresh_token" => Some(Self::RefreshToken),
            "client_credentials" => Some(Self::ClientCredentials),
            _ => None,
        }
    }
}

/// The keyed hash of a confidential client's secret: HMAC-SHA256 under a
/// tenant `LookupHashing` key of the key store, named by `key_id`. The
/// secret itself is never stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSecretHash {
    /// The key that made the hash.
    pub key_id: KeyId,
    /// The hash, base64url.
    pub tag: String,
}

impl fmt::Debug for ClientSecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecretHash")
            .field("key_id", &self.key_id)
            .field("tag", &"[REDACTED]")
            .finish()
    }
}

/// What a client is registered with (besides its kind and secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClientSettings {
    /// The name shown on the sign-in page.
    pub name: String,
    /// Where authorization responses may go, matched exactly.
    pub redirect_uris: Vec<RedirectUri>,
    /// Where RP-initiated logout may return, matched exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// The grants it may use.
    pub grants: BTreeSet<GrantType>,
    /// The scopes it may ask for.
    pub scopes: BTreeSet<Scope>,
}

impl OAuthClientSettings {
    fn check(&self, kind: ClientKind) -> Result<(), DomainError> {
        validate_name("name", &self.name)?;
        if self.grants.is_empty() {
            return Err(DomainError::invalid("grants", "must not be empty"));
        }
        let lists = [&self.redirect_uris, &self.post_logout_redirect_uris];
        if lists.iter().any(|l| l.len() > MAX_REDIRECT_URIS) {
            return Err(crate::limits::LimitExceeded::new(
                "redirect_uris",
                crate::limits::Limit::Entries(MAX_REDIRECT_URIS),
            )
            .into());
        }
        if self.scopes.len() > MAX_CLIENT_SCOPES {
            return Err(crate::limits::LimitExceeded::new(
                "scopes",
                crate::limits::Limit::Entries(MAX_CLIENT_SCOPES),
            )
            .into());
        }
        let code = self.grants.contains(&GrantType::AuthorizationCode);
        if code && self.redirect_uris.is_empty() {
            return Err(DomainError::invalid(
                "redirect_uris",
                "the authorization-code grant needs at least one",
            ));
        }
        if self.grants.contains(&GrantType::RefreshToken) && !code {
            return Err(DomainError::invalid(
                "grants",
                "refresh_token needs authorization_code",
            ));
        }
        if kind == ClientKind::Public && self.grants.contains(&GrantType::ClientCredentials) {
            return Err(DomainError::invalid(
                "grants",
                "client_credentials needs a confidential client",
            ));
        }
        Ok(())
    }
}

/// Commands of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthClientCommand {
    /// Registers the client.
    Register {
        /// Its id.
        client_id: OAuthClientId,
        /// Confidential or public.
        kind: ClientKind,
        /// Its settings.
        settings: OAuthClientSettings,
        /// The keyed hash of its secret: required for a confidential
        /// client, refused for a public one.
        secret: Option<ClientSecretHash>,
    },
    /// Replaces a confidential client's secret (the old one stops working).
    RotateSecret {
        /// The keyed hash of the new secret.
        secret: ClientSecretHash,
    },
    /// Replaces the client's settings.
    Update {
        /// The new settings.
        settings: OAuthClientSettings,
    },
    /// Disables the client for good: it gets no codes or tokens again.
    Disable {
        /// Why.
        reason: String,
    },
}

/// Events of a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::enum_variant_names, reason = "the domain names these events")]
pub enum OAuthClientEvent {
    /// The client was registered.
    ClientRegistered {
        /// Its id.
        client_id: OAuthClientId,
        /// Confidential or public.
        kind: ClientKind,
        /// Its settings.
        settings: OAuthClientSettings,
        /// The keyed hash of its secret (confidential clients).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<ClientSecretHash>,
        /// When.
        registered_at: DateTime<Utc>,
    },
    /// The client's secret was replaced.
    ClientSecretRotated {
        /// The client.
        client_id: OAuthClientId,
        /// The keyed hash of the new secret.
        secret: ClientSecretHash,
        /// When.
        rotated_at: DateTime<Utc>,
    },
    /// The client's settings were replaced.
    ClientUpdated {
        /// The client.
        client_id: OAuthClientId,
        /// The new settings.
        settings: OAuthClientSettings,
        /// When.
        updated_at: DateTime<Utc>,
    },
    /// The client was disabled.
    ClientDisabled {
        /// The client.
        client_id: OAuthClientId,
        /// Why.
        reason: String,
        /// When.
        disabled_at: DateTime<Utc>,
    },
}

impl_domain_event!(
    OAuthClientEvent,
    version = 1,
    types = [
        ClientRegistered,
        ClientSecretRotated,
        ClientUpdated,
        ClientDisabled
    ]
);

/// A client's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthClient {
    /// Its id (`None` before registration).
    pub id: Option<OAuthClientId>,
    /// Confidential or public.
    pub kind: Option<ClientKind>,
    /// Its settings.
    pub settings: Option<OAuthClientSettings>,
    /// The keyed hash of its current secret.
    pub secret: Option<ClientSecretHash>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl OAuthClient {
    /// Whether the client is registered and not disabled.
    pub fn is_active(&self) -> bool {
        self.id.is_some() && self.disabled_at.is_none()
    }

    /// Whether the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.is_active()
            && self
                .settings
                .as_ref()
                .is_some_and(|s| s.grants.contains(&grant))
    }

    /// The registered redirect URI equal to `candidate`, byte for byte.
    pub fn redirect_uri(&self, candidate: &str) -> Option<&RedirectUri> {
        self.settings
            .as_ref()?
            .redirect_uris
            .iter()
            .find(|uri| uri.matches(candidate))
    }

    /// The registered post-logout redirect URI equal to `candidate`.
    pub fn post_logout_redirect_uri(&self, candidate: &str) -> Option<&RedirectUri> {
        self.settings
            .as_ref()?
            .post_logout_redirect_uris
            .iter()
            .find(|uri| uri.matches(candidate))
    }

    fn live_id(&self) -> Result<OAuthClientId, DomainError> {
        match self.id {
            Some(id) if self.disabled_at.is_none() => Ok(id),
            Some(_) => Err(DomainError::InvalidState("client is disabled")),
            None => Err(DomainError::NotFound {
                kind: "oauth client",
            }),
        }
    }
}

fn check_secret(secret: &ClientSecretHash) -> Result<(), DomainError> {
    crate::limits::check_bytes("client secret hash", &secret.tag, 128)?;
    Ok(())
}

impl Aggregate for OAuthClient {
    const TYPE: &'static str = "oauth_client";
    type Command = OAuthClientCommand;
    type Event = OAuthClientEvent;
    type Error = DomainError;

    fn handle(
        &self,
        command: &OAuthClientCommand,
        ctx: &CommandContext,
    ) -> Result<Vec<OAuthClientEvent>, DomainError> {
        match command {
            OAuthClientCommand::Register {
                client_id,
                kind,
                settings,
                secret,
            } => {
                if self.id.is_some() {
                    return Err(DomainError::AlreadyExists {
                        kind: "oauth client",
                    });
                }
                settings.check(*kind)?;
                match (kind, secret) {
                    (ClientKind::Confidential, Some(secret)) => check_secret(secret)?,
                    (ClientKind::Public, None) => {}
                    (ClientKind::Confidential, None) => {
                        return Err(DomainError::invalid(
                            "secret",
                            "a confidential client needs one",
                        ));
                    }
                    (ClientKind::Public, Some(_)) => {
                        return Err(DomainError::invalid("secret", "a public client has none"));
                    }
                }
                Ok(vec![OAuthClientEvent::ClientRegistered {
                    client_id: *client_id,
                    kind: *kind,
                    settings: settings.clone(),
                    secret: secret.clone(),
                    registered_at: ctx.now,
                }])
            }
            OAuthClientCommand::RotateSecret { secret } => {
                let client_id = self.live_id()?;
                if self.kind != Some(ClientKind::Confidential) {
                    return Err(DomainError::invalid("secret", "a public client has none"));
                }
                check_secret(secret)?;
                Ok(vec![OAuthClientEvent::ClientSecretRotated {
                    client_id,
                    secret: secret.clone(),
                    rotated_at: ctx.now,
                }])
            }
            OAuthClientCommand::Update { settings } => {
                let client_id = self.live_id()?;
                let kind = self.kind.unwrap_or(ClientKind::Public);
                settings.check(kind)?;
                if self.settings.as_ref() == Some(settings) {
                    return Ok(Vec::new());
                }
                Ok(vec![OAuthClientEvent::ClientUpdated {
                    client_id,
                    settings: settings.clone(),
                    updated_at: ctx.now,
                }])
            }
            OAuthClientCommand::Disable { reason } => {
                let client_id = self.live_id()?;
                validate_name("reason", reason)?;
                Ok(vec![OAuthClientEvent::ClientDisabled {
                    client_id,
                    reason: reason.clone(),
                    disabled_at: ctx.now,
                }])
            }
        }
    }

    fn apply(&mut self, event: &OAuthClientEvent) {
        match event {
            OAuthClientEvent::ClientRegistered {
                client_id,
                kind,
                settings,
                secret,
                ..
            } => {
                self.id = Some(*client_id);
                self.kind = Some(*kind);
                self.settings = Some(settings.clone());
                self.secret.clone_from(secret);
            }
            OAuthClientEvent::ClientSecretRotated { secret, .. } => {
                self.secret = Some(secret.clone());
            }
            OAuthClientEvent::ClientUpdated { settings, .. } => {
                self.settings = Some(settings.clone());
            }
            OAuthClientEvent::ClientDisabled { disabled_at, .. } => {
                self.disabled_at = Some(*disabled_at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;
    use chrono::TimeZone;

    fn ctx() -> CommandContext {
        CommandContext::new(
            TenantId::from_uuid(Uuid::from_u128(1)),
            Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        )
    }

    fn settings(grants: &[GrantType]) -> OAuthClientSettings {
        OAuthClientSettings {
            name: "Shop".into(),
            redirect_uris: vec![RedirectUri::parse("https://shop.example/cb").unwrap()],
            post_logout_redirect_uris: Vec::new(),
            grants: grants.iter().copied().collect(),
            scopes: [Scope::openid()].into_iter().collect(),
        }
    }

    fn secret() -> ClientSecretHash {
        ClientSecretHash {
            key_id: KeyId::from_uuid(Uuid::from_u128(5)),
            tag: "abc".into(),
        }
    }

    fn register(
        kind: ClientKind,
        grants: &[GrantType],
        secret: Option<ClientSecretHash>,
    ) -> Result<OAuthClient, DomainError> {
        let mut client = OAuthClient::default();
        let command = OAuthClientCommand::Register {
            client_id: OAuthClientId::from_uuid(Uuid::from_u128(9)),
            kind,
            settings: settings(grants),
            secret,
        };
        for event in client.handle(&command, &ctx())? {
            client.apply(&event);
        }
        Ok(client)
    }

    #[test]
    fn grant_rules() {
        use GrantType::*;
        assert!(register(ClientKind::Public, &[AuthorizationCode, RefreshToken], None).is_ok());
        assert!(register(ClientKind::Public, &[ClientCredentials], None).is_err());
        assert!(register(ClientKind::Public, &[AuthorizationCode], Some(secret())).is_err());
        assert!(register(ClientKind::Confidential, &[AuthorizationCode], None).is_err());
        assert!(register(ClientKind::Confidential, &[RefreshToken], Some(secret())).is_err());
        assert!(register(ClientKind::Confidential, &[], Some(secret())).is_err());
        let client = register(
            ClientKind::Confidential,
            &[ClientCredentials],
            Some(secret()),
        )
        .unwrap();
        assert!(client.allows(ClientCredentials));
        assert!(!client.allows(AuthorizationCode));
        assert_eq!(GrantType::parse("implicit"), None);
        assert_eq!(GrantType::parse("password"), None);
        assert!(serde_json::from_str::<GrantType>("\"implicit\"").is_err());
    }

    #[test]
    fn disabled_clients_do_nothing() {
        let mut client =
            register(ClientKind::Public, &[GrantType::AuthorizationCode], None).unwrap();
        let events = client
            .handle(
                &OAuthClientCommand::Disable {
                    reason: "gone".into(),
                },
                &ctx(),
            )
            .unwrap();
        client.apply(&events[0]);
        assert!(!client.is_active());
        assert!(!client.allows(GrantType::AuthorizationCode));
        assert!(
            client
                .handle(
                    &OAuthClientCommand::Update {
                        settings: settings(&[GrantType::AuthorizationCode])
                    },
                    &ctx()
                )
                .is_err()
        );
        assert!(format!("{:?}", secret()).contains("REDACTED"));
    }

    #[test]
    fn client_ids_have_one_spelling() {
        let id =
            OAuthClientId::from_uuid(Uuid::from_u128(0xabcd_ef01_2345_6789_abcd_ef01_2345_6789));
        assert_eq!(id.to_string().parse::<OAuthClientId>().unwrap(), id);
        assert!(
            id.to_string()
                .to_uppercase()
                .parse::<OAuthClientId>()
                .is_err()
        );
        assert!(
            id.as_uuid()
                .simple()
                .to_string()
                .parse::<OAuthClientId>()
                .is_err()
        );
    }
}
