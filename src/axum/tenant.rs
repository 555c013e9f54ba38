//! Which tenant a request is for: from the path or from the host.

use std::collections::HashMap;
use std::fmt;

use axum::extract::{FromRef, FromRequestParts, RawPathParams};
use axum::http::header::HOST;
use axum::http::request::Parts;

use security_core::TenantId;

use super::problem::Problem;
use super::state::SecurityState;

/// The name of the path parameter that holds the tenant.
pub const TENANT_PARAM: &str = "tenant";

/// Where a request's tenant comes from.
#[derive(Clone)]
pub struct TenantSource {
    mode: Mode,
    names: HashMap<String, TenantId>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
}

impl fmt::Debug for TenantSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantSource")
            .field(
                "mode",
                &if self.mode == Mode::Path {
                    "path"
                } else {
                    "host"
                },
            )
            .field("names", &self.names.len())
            .finish()
    }
}

impl TenantSource {
    /// The `{tenant}` path segment (routes under `/t/{tenant}/…`): a
    /// tenant id, or a name given with [`name`](Self::name).
    pub fn path() -> Self {
        Self {
            mode: Mode::Path,
            names: HashMap::new(),
        }
    }

    /// The `Host` header (its name, without the port, case-insensitive),
    /// mapped with [`name`](Self::name). Put the application behind a proxy
    /// that sets `Host` from the names it serves: an unmapped host is
    /// `404`.
    pub fn host() -> Self {
        Self {
            mode: Mode::Host,
            names: HashMap::new(),
        }
    }

    /// Maps a name (a path segment such as `acme`, or a host name such as
    /// `acme.example.com`) to a tenant.
    pub fn name(mut self, name: &str, tenant: TenantId) -> Self {
        self.names.insert(name.to_ascii_lowercase(), tenant);
        self
    }

    /// Whether the tenant comes from the path.
    pub fn is_path(&self) -> bool {
        self.mode == Mode::Path
    }

    /// The request's tenant: `Ok(None)` when the route names none (no
    /// `{tenant}` segment, or an unmapped host), an error when it names one
    /// that does not resolve.
    pub async fn find(&self, parts: &mut Parts) -> Result<Option<TenantId>, Problem> {
        match self.mode {
            Mode::Path => {
                let Ok(params) = RawPathParams::from_request_parts(parts, &()).await else {
                    return Ok(None);
                };
                let Some((_, value)) = params.iter().find(|(name, _)| *name == TENANT_PARAM) else {
                    return Ok(None);
                };
                self.resolve(value)
                    .map(Some)
                    .ok_or_else(|| Problem::not_found("tenant"))
            }
            Mode::Host => {
                let host = parts
                    .headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(strip_port)
                    .unwrap_or_default();
                Ok(self.names.get(&host.to_ascii_lowercase()).copied())
            }
        }
    }

    fn resolve(&self, value: &str) -> Option<TenantId> {
        if let Ok(id) = value.parse::<TenantId>() {
            return (!id.is_system()).then_some(id);
        }
        self.names.get(&value.to_ascii_lowercase()).copied()
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// The tenant of the request (see [`TenantSource`]); `404` when it names
/// none or one that does not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant(pub TenantId);

impl<S> FromRequestParts<S> for Tenant
where
    S: Send + Sync,
    SecurityState: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = SecurityState::from_ref(state);
        state
            .tenants()
            .find(parts)
            .await?
            .map(Tenant)
            .ok_or_else(|| Problem::not_found("tenant"))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(host: &str) -> Parts {
        Request::builder()
            .uri("/auth/login")
            .header(HOST, host)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn the_host_names_the_tenant_case_insensitively_without_its_port() {
        let acme = TenantId::from_uuid(uuid_of(7));
        let source = TenantSource::host().name("Acme.Example.com", acme);
        assert!(!source.is_path());
        for host in ["acme.example.com", "ACME.example.COM:8443"] {
            assert_eq!(
                run(source.find(&mut parts(host))).unwrap(),
                Some(acme),
                "{host}"
            );
        }
        assert_eq!(
            run(source.find(&mut parts("evil.example.com"))).unwrap(),
            None
        );
        assert_eq!(strip_port("[2001:db8::1]:443"), "[2001:db8::1]");
        assert_eq!(strip_port("example.com"), "example.com");
    }

    #[test]
    fn path_names_resolve_ids_and_configured_names_but_never_the_system_tenant() {
        let acme = TenantId::from_uuid(uuid_of(7));
        let source = TenantSource::path().name("acme", acme);
        assert_eq!(source.resolve("ACME"), Some(acme));
        assert_eq!(source.resolve(&acme.to_string()), Some(acme));
        assert_eq!(source.resolve(&TenantId::SYSTEM.to_string()), None);
        assert_eq!(source.resolve("globex"), None);
        // A route without a `{tenant}` segment names no tenant.
        assert_eq!(run(source.find(&mut parts("localhost"))).unwrap(), None);
    }

    fn uuid_of(n: u128) -> ::uuid::Uuid {
        ::uuid::Uuid::from_u128(n)
    }
}
