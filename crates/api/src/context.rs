use std::net::IpAddr;
use std::sync::Arc;

use flowchat_domain::config::Config;
use flowchat_domain::token::SessionSecret;
use flowchat_store::Store;
use http::HeaderMap;

use crate::followers::Followers;

pub use flowchat_domain::Platform;

/// The client's address as the runtime adapter determined it (the socket
/// peer locally, the platform's forwarding header when deployed). Adapters
/// put it in the request's extensions; handlers never trust client headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub String);

impl ClientIp {
    /// The address from `trusted_header` when the deployment names one and
    /// it holds an address, else `peer` (the connection's own), else
    /// `unknown`. Any other header is ignored: a client can write headers,
    /// only the proxy in front of this process can be trusted to overwrite
    /// one. In a list (`x-forwarded-for`) the last entry counts: it is the
    /// one the nearest proxy added, the earlier ones are the client's word.
    pub fn resolve(
        headers: &HeaderMap,
        trusted_header: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Self {
        let from_header = trusted_header
            .and_then(|name| headers.get(name))
            .and_then(|value| value.to_str().ok())
            .and_then(|list| list.rsplit(',').next())
            .and_then(|last| last.trim().parse::<IpAddr>().ok());
        match from_header.or(peer) {
            Some(ip) => ClientIp(ip.to_canonical().to_string()),
            None => ClientIp("unknown".to_owned()),
        }
    }

    /// The key rate limits count this client under. An IPv6 client is
    /// given a whole /64 (the usual smallest assignment), so rotating
    /// through its own addresses does not buy more requests.
    pub fn rate_key(&self) -> String {
        match self.0.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(IpAddr::V4(v4)) => v4.to_string(),
            Ok(IpAddr::V6(v6)) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
            Err(_) => self.0.clone(),
        }
    }
}

/// Everything a handler may use, built once per process.
pub struct AppContext {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub platform: Arc<dyn Platform>,
    pub(crate) secret: SessionSecret,
    /// Open followers in this process, counted per session and per IP.
    pub(crate) followers: Arc<Followers>,
}

impl AppContext {
    /// `secret` signs session tokens: the runtime settles it at start-up
    /// (required in production, generated in development).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        platform: Arc<dyn Platform>,
        secret: SessionSecret,
    ) -> Self {
        let followers = Arc::new(Followers::new(
            config.rate_limits.followers_per_session,
            config.rate_limits.followers_per_ip,
        ));
        Self {
            config: Arc::new(config),
            store,
            platform,
            secret,
            followers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_trusted_header_is_read() {
        let peer = Some("127.0.0.1".parse().unwrap());
        let spoofed = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-real-ip", "203.0.113.9"),
        ]);
        assert_eq!(ClientIp::resolve(&spoofed, None, peer).0, "127.0.0.1");
        assert_eq!(
            ClientIp::resolve(&spoofed, Some("cf-connecting-ip"), peer).0,
            "127.0.0.1"
        );
        assert_eq!(ClientIp::resolve(&spoofed, None, None).0, "unknown");
        let listed = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9 ")]);
        assert_eq!(
            ClientIp::resolve(&listed, Some("x-forwarded-for"), peer).0,
            "203.0.113.9"
        );
        let junk = headers(&[("x-real-ip", "not-an-address")]);
        assert_eq!(
            ClientIp::resolve(&junk, Some("x-real-ip"), peer).0,
            "127.0.0.1"
        );
        let mapped = headers(&[("x-real-ip", "::ffff:192.0.2.1")]);
        assert_eq!(
            ClientIp::resolve(&mapped, Some("x-real-ip"), None).0,
            "192.0.2.1"
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let key = |ip: &str| ClientIp(ip.to_owned()).rate_key();
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("unknown"), "unknown");
    }
}
