//! Who the relying party is, per tenant, and what registration asks of
//! authenticators.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use security_core::TenantId;
use webauthn_rs::prelude::{AttestationCaList, Url, Webauthn, WebauthnBuilder};

use crate::config::ConfigError;

/// The relying party a passkey is bound to: its id (a registrable domain,
/// e.g. `example.com`) and the web origins allowed to use it (e.g.
/// `https://login.example.com`). A browser refuses to use a passkey for
/// another RP id, and the service refuses an assertion made on another
/// origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    id: String,
    origins: Vec<Url>,
    name: String,
}

impl RelyingParty {
    /// A relying party with an id and one or more origins (each must be
    /// on the id's domain or a subdomain of it; `http` only for
    /// `localhost`). The name shown by authenticators is the id.
    pub fn new(id: &str, origins: &[&str]) -> Result<Self, ConfigError> {
        Self::parse("WEBAUTHN_RP_ID", "WEBAUTHN_RP_ORIGIN", id, origins)
    }

    pub(crate) fn parse(
        id_variable: &'static str,
        origin_variable: &'static str,
        id: &str,
        origins: &[&str],
    ) -> Result<Self, ConfigError> {
        let id = id.trim();
        if id.is_empty() || id.len() > 253 || id.contains(['/', ':', ' ']) {
            return Err(ConfigError::new(
                id_variable,
                "must be a domain name (e.g. example.com)",
            ));
        }
        if origins.is_empty() {
            return Err(ConfigError::new(origin_variable, "must name an origin"));
        }
        let mut parsed = Vec::with_capacity(origins.len());
        for origin in origins {
            let url = Url::parse(origin.trim()).map_err(|_| {
                ConfigError::new(
                    origin_variable,
                    "must be origins such as https://login.example.com, comma-separated",
                )
            })?;
            let local = url.host_str() == Some("localhost");
            if url.scheme() != "https" && !(url.scheme() == "http" && local) {
                return Err(ConfigError::new(
                    origin_variable,
                    "must use https (http only for localhost)",
                ));
            }
            parsed.push(url);
        }
        let rp = Self {
            id: id.to_owned(),
            origins: parsed,
            name: id.to_owned(),
        };
        rp.webauthn().map_err(|_| {
            ConfigError::new(
                id_variable,
                "must be the domain of every origin or a parent domain of it",
            )
        })?;
        Ok(rp)
    }

    /// The name authenticators show (the id unless set).
    #[must_use]
    pub fn with_name(mut self, name: &str) -> Self {
        name.trim().clone_into(&mut self.name);
        self
    }

    /// The RP id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The allowed origins.
    pub fn origins(&self) -> &[Url] {
        &self.origins
    }

    /// The verifier for this relying party.
    pub(crate) fn webauthn(&self) -> Result<Webauthn, webauthn_rs::prelude::WebauthnError> {
        let (first, rest) = self
            .origins
            .split_first()
            .ok_or(webauthn_rs::prelude::WebauthnError::Configuration)?;
        let mut builder = WebauthnBuilder::new(&self.id, first)?
            .rp_name(&self.name)
            .timeout(Duration::from_secs(300));
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        builder.build()
    }
}

/// What registration asks of an authenticator's attestation.
#[derive(Debug, Clone, Default)]
pub enum Attestation {
    /// None asked for, none checked (the default: passkeys synced between
    /// a user's devices carry none, and a passkey proves possession of its
    /// key either way).
    #[default]
    None,
    /// An attestation chaining to one of these CAs is required (e.g. only
    /// one maker's security keys); any other authenticator is refused.
    Required(Arc<AttestationCaList>),
}

/// Passkeys: the relying party (`WEBAUTHN_RP_ID`, `WEBAUTHN_RP_ORIGIN`),
/// per-tenant overrides, and the attestation asked for. Without a relying
/// party for a tenant, passkey operations in it answer
/// [`AuthnError::PasskeysNotConfigured`](crate::AuthnError::PasskeysNotConfigured).
///
/// User verification (a PIN or biometric on the authenticator) is always
/// required: a passkey alone logs a user in, so it must be two factors
/// by itself.
#[derive(Debug, Clone, Default)]
pub struct PasskeyConfig {
    /// The relying party of every tenant without an override.
    pub relying_party: Option<RelyingParty>,
    /// Per-tenant relying parties (a tenant on its own domain).
    pub tenants: HashMap<TenantId, RelyingParty>,
    /// The attestation registration asks for (none by default).
    pub attestation: Attestation,
}

impl PasskeyConfig {
    /// The relying party of a tenant.
    pub fn relying_party_of(&self, tenant: TenantId) -> Option<&RelyingParty> {
        self.tenants.get(&tenant).or(self.relying_party.as_ref())
    }

    /// Reads `WEBAUTHN_RP_ID` and `WEBAUTHN_RP_ORIGIN` (comma-separated
    /// origins) through `get`: both or neither must be set.
    pub(crate) fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        match (get("WEBAUTHN_RP_ID"), get("WEBAUTHN_RP_ORIGIN")) {
            (Some(id), Some(origins)) => {
                let origins: Vec<&str> = origins.split(',').collect();
                config.relying_party = Some(RelyingParty::new(&id, &origins)?);
            }
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "WEBAUTHN_RP_ORIGIN",
                    "must be set when WEBAUTHN_RP_ID is",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "WEBAUTHN_RP_ID",
                    "must be set when WEBAUTHN_RP_ORIGIN is",
                ));
            }
            (None, None) => {}
        }
        Ok(config)
    }
}

/// The verifiers of the configured relying parties, built once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verifiers {
    default: Option<Arc<Webauthn>>,
    tenants: HashMap<TenantId, Arc<Webauthn>>,
}

impl Verifiers {
    pub(crate) fn new(config: &PasskeyConfig) -> Result<Self, ConfigError> {
        let build = |rp: &RelyingParty| {
            rp.webauthn().map(Arc::new).map_err(|_| {
                ConfigError::new(
                    "WEBAUTHN_RP_ID",
                    "must be the domain of every origin or a parent domain of it",
                )
            })
        };
        Ok(Self {
            default: config.relying_party.as_ref().map(build).transpose()?,
            tenants: config
                .tenants
                .iter()
                .map(|(tenant, rp)| Ok((*tenant, build(rp)?)))
                .collect::<Result<_, ConfigError>>()?,
        })
    }

    pub(crate) fn of(&self, tenant: TenantId) -> Option<&Arc<Webauthn>> {
        self.tenants.get(&tenant).or(self.default.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn relying_parties_are_checked() {
        let rp = RelyingParty::new("example.com", &["https://login.example.com"]).unwrap();
        assert_eq!(rp.id(), "example.com");
        assert!(RelyingParty::new("localhost", &["http://localhost:3000"]).is_ok());
        let e = RelyingParty::new("example.com", &["https://evil.test"]).unwrap_err();
        assert_eq!(e.variable, "WEBAUTHN_RP_ID");
        let e = RelyingParty::new("example.com", &["http://login.example.com"]).unwrap_err();
        assert_eq!(e.variable, "WEBAUTHN_RP_ORIGIN");
        let e = RelyingParty::new("example.com", &["not a url"]).unwrap_err();
        assert_eq!(e.variable, "WEBAUTHN_RP_ORIGIN");
        let e = RelyingParty::new("https://example.com", &["https://example.com"]).unwrap_err();
        assert_eq!(e.variable, "WEBAUTHN_RP_ID");
    }

    #[test]
    fn the_environment_names_the_variable_at_fault() {
        let config = PasskeyConfig::from_lookup(lookup(&[
            ("WEBAUTHN_RP_ID", "example.com"),
            (
                "WEBAUTHN_RP_ORIGIN",
                "https://example.com,https://app.example.com",
            ),
        ]))
        .unwrap();
        assert_eq!(config.relying_party.unwrap().origins().len(), 2);
        let e =
            PasskeyConfig::from_lookup(lookup(&[("WEBAUTHN_RP_ID", "example.com")])).unwrap_err();
        assert_eq!(e.variable, "WEBAUTHN_RP_ORIGIN");
        let e = PasskeyConfig::from_lookup(lookup(&[("WEBAUTHN_RP_ORIGIN", "https://a.b")]))
            .unwrap_err();
        assert_eq!(e.variable, "WEBAUTHN_RP_ID");
        assert!(
            PasskeyConfig::from_lookup(lookup(&[]))
                .unwrap()
                .relying_party
                .is_none()
        );
    }
}
