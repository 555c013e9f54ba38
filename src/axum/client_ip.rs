//! The client's address under an explicit trusted-proxy policy.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use ipnet::IpNet;
use security_core::ClientInfo;

use super::problem::Problem;
use super::state::SecurityState;

/// The most forwarded hops looked at (a longer chain is cut from the left:
/// the hops nearest to this server are the ones that matter).
const MAX_HOPS: usize = 32;

/// Which peers may tell the client's address in `Forwarded` (RFC 7239) or
/// `X-Forwarded-For`.
///
/// The default trusts nobody: the client is the socket's peer, and
/// forwarded headers are ignored (anyone can send them). With proxy
/// networks configured, a request from such a proxy is traced back
/// through its forwarded chain, right to left, over every hop that is a
/// trusted proxy too; the first hop that is not is the client. `Forwarded`
/// wins over `X-Forwarded-For` when both are present. An unparsable header
/// is ignored (the peer is the client); an `unknown` or obfuscated hop
/// stops the walk at the last trusted proxy.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.networks.iter().map(ToString::to_string))
            .finish()
    }
}

/// A trusted-proxy list could not be parsed: expected comma-separated
/// addresses or networks (`10.0.0.0/8, 192.0.2.7, 2001:db8::/32`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}: expected comma-separated IP addresses or networks such as 10.0.0.0/8")]
pub struct InvalidTrustedProxies {
    /// The variable (or setting) at fault.
    pub variable: &'static str,
}

impl TrustedProxies {
    /// The environment variable read by [`from_env`](Self::from_env).
    pub const ENV_VAR: &'static str = "TRUSTED_PROXIES";

    /// Trusts nobody: the socket's peer is the client.
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts these networks.
    pub fn new(networks: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            networks: networks.into_iter().map(|n| n.trunc()).collect(),
        }
    }

    /// The networks of `TRUSTED_PROXIES` (none when unset or empty).
    pub fn from_env() -> Result<Self, InvalidTrustedProxies> {
        match std::env::var(Self::ENV_VAR) {
            Ok(value) => value.parse().map_err(|_| InvalidTrustedProxies {
                variable: Self::ENV_VAR,
            }),
            Err(_) => Ok(Self::none()),
        }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// The client's address of a request served with
    /// `ConnectInfo<SocketAddr>` (`None` without it): its socket peer,
    /// traced back through these proxies. The extractor for
    /// [`RequirePermissionLayer::client_address`](security_authz::RequirePermissionLayer::client_address):
    /// `layer.client_address(move |ext, headers| proxies.request_client(ext, headers))`.
    pub fn request_client(
        &self,
        extensions: &axum::http::Extensions,
        headers: &HeaderMap,
    ) -> Option<IpAddr> {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| self.client_ip(peer.ip(), headers))
    }

    /// The client's address of a request whose socket peer is `peer`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let Some(chain) = forwarded_chain(headers) else {
            return peer;
        };
        let mut client = peer;
        for hop in chain.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.trusts(*ip) {
                        return client;
                    }
                }
                None => return client,
            }
        }
        client
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidTrustedProxies;

    /// Comma-separated addresses (a single host) or networks in CIDR form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = InvalidTrustedProxies {
            variable: Self::ENV_VAR,
        };
        let mut networks = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let network = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => IpNet::from(item.parse::<IpAddr>().map_err(|_| invalid.clone())?),
            };
            networks.push(network);
        }
        Ok(Self::new(networks))
    }
}

/// An IPv4 address mapped into IPv6 is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The hops of the forwarded chain, client first (`None`: a hop whose
/// address is unknown or obfuscated), from `Forwarded` if present, else
/// `X-Forwarded-For`; `None` when neither is present or parses.
fn forwarded_chain(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<_>>()?;
    if !forwarded.is_empty() {
        let mut chain = Vec::new();
        for value in forwarded {
            chain.extend(parse_forwarded(value)?);
        }
        return Some(tail(chain));
    }
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().ok())
        .collect::<Option<_>>()?;
    if xff.is_empty() {
        return None;
    }
    let mut chain = Vec::new();
    for value in xff {
        for item in value.split(',') {
            chain.push(Some(parse_node(item.trim())?));
        }
    }
    Some(tail(chain))
}

fn tail(mut chain: Vec<Option<IpAddr>>) -> Vec<Option<IpAddr>> {
    if chain.len() > MAX_HOPS {
        chain.drain(..chain.len() - MAX_HOPS);
    }
    chain
}

/// The `for=` of each element of a `Forwarded` value (RFC 7239 §4), in
/// order; `None` if the value does not parse.
fn parse_forwarded(value: &str) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for element in split_unquoted(value, ',') {
        let mut hop = None;
        for pair in split_unquoted(element, ';') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let (name, raw) = pair.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("for") {
                continue;
            }
            let raw = raw.trim();
            let node = match raw.strip_prefix('"') {
                Some(quoted) => quoted.strip_suffix('"')?,
                None => raw,
            };
            hop = Some(
                if node.eq_ignore_ascii_case("unknown") || node.starts_with('_') {
                    None
                } else {
                    Some(parse_node(node)?)
                },
            );
        }
        // An element without `for=` says nothing of the client: unknown.
        hops.push(hop.flatten());
    }
    Some(hops)
}

/// `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`, `[2001:db8::1]:8080`,
/// or a bare IPv6 address (as `X-Forwarded-For` writes them).
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// Splits on `sep` outside double quotes (a quoted-string may hold `\"`).
fn split_unquoted(value: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&value[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&value[start..]);
    parts
}

/// The client's IP address: the socket's peer, or, when the peer is a
/// trusted proxy, the address it forwarded (see [`TrustedProxies`]).
///
/// Needs the peer address: serve with
/// `into_make_service_with_connect_info::<SocketAddr>()` (without it the
/// request fails with a `500`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    SecurityState: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = SecurityState::from_ref(state);
        client_ip(parts, state.trusted_proxies()).map(ClientIp)
    }
}

/// The client as the authentication service records it: its IP address
/// (as [`ClientIp`] finds it) and its `User-Agent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client(pub ClientInfo);

impl<S> FromRequestParts<S> for Client
where
    S: Send + Sync,
    SecurityState: FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = SecurityState::from_ref(state);
        let ip = client_ip(parts, state.trusted_proxies())?;
        let agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
        Ok(Client(ClientInfo::new(Some(ip), agent)))
    }
}

pub(crate) fn client_ip(parts: &Parts, proxies: &TrustedProxies) -> Result<IpAddr, Problem> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .ok_or_else(|| Problem::internal(&MissingConnectInfo))?;
    Ok(proxies.client_ip(peer, &parts.headers))
}

#[derive(Debug, thiserror::Error)]
#[error("no peer address: serve with into_make_service_with_connect_info::<SocketAddr>()")]
struct MissingConnectInfo;

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_layer_extractor_reads_connect_info_through_trusted_proxies() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let mut extensions = axum::http::Extensions::new();
        assert_eq!(proxies.request_client(&extensions, &forwarded), None);
        extensions.insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 2], 443))));
        assert_eq!(
            proxies.request_client(&extensions, &forwarded),
            Some(ip("203.0.113.9"))
        );
        let mut direct = axum::http::Extensions::new();
        direct.insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 4], 50000))));
        assert_eq!(
            proxies.request_client(&direct, &forwarded),
            Some(ip("198.51.100.4"))
        );
    }

    #[test]
    fn nobody_is_trusted_by_default_so_a_forged_header_is_ignored() {
        let proxies = TrustedProxies::none();
        let forged = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        assert_eq!(
            proxies.client_ip(ip("198.51.100.4"), &forged),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn a_header_from_an_untrusted_peer_is_ignored() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let forged = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            proxies.client_ip(ip("198.51.100.4"), &forged),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop_from_the_right() {
        let proxies: TrustedProxies = "10.0.0.0/8, 192.0.2.7".parse().unwrap();
        // The client prepended a forged hop; the real client is the first
        // address that a trusted proxy saw.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.50, 10.1.1.1")]);
        assert_eq!(proxies.client_ip(ip("192.0.2.7"), &h), ip("203.0.113.50"));
        // Every hop trusted: the leftmost is the client.
        let h = headers(&[("x-forwarded-for", "10.2.2.2, 10.1.1.1")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), ip("10.2.2.2"));
    }

    #[test]
    fn forwarded_is_parsed_and_wins_over_x_forwarded_for() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            (
                "forwarded",
                "for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.9.9.9;by=10.0.0.1",
            ),
        ]);
        assert_eq!(
            proxies.client_ip(ip("10.0.0.1"), &h),
            ip("2001:db8:cafe::17")
        );
        // Two header lines are one list, in order.
        let h = headers(&[
            ("forwarded", "for=192.0.2.60;proto=http"),
            ("forwarded", "for=10.3.3.3"),
        ]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), ip("192.0.2.60"));
    }

    #[test]
    fn unknown_hops_and_junk_are_handled_conservatively() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let h = headers(&[("forwarded", "for=unknown, for=10.4.4.4")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), ip("10.4.4.4"));
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = headers(&[("x-forwarded-for", "not-an-address")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = headers(&[("forwarded", "for=\"[2001:db8::1]")]);
        assert_eq!(proxies.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let proxies: TrustedProxies = "127.0.0.1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "198.51.100.23")]);
        assert_eq!(
            proxies.client_ip(ip("::ffff:127.0.0.1"), &h),
            ip("198.51.100.23")
        );
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.example".parse::<TrustedProxies>().is_err());
    }
}
