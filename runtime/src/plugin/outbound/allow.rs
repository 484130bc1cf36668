//! The allow-list of one plugin's outbound requests, as the operator writes
//! it (`allowed_outbound_hosts = ["https://hooks.example.com"]`), and the two
//! checks made against it: is this origin listed, and may this origin's name
//! be reached at the addresses it resolved to. Pure: no I/O here.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One entry of `allowed_outbound_hosts`: a scheme, a host (a name, a
/// `*.`-prefixed domain for its subdomains, or an IP address) and a port
/// (the scheme's default when left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    scheme: Scheme,
    host: HostPattern,
    port: u16,
}

/// `http` or `https`: the schemes wasi-http requests can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub(crate) fn parse(scheme: &str) -> Option<Self> {
        match scheme.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this name (lower-cased).
    Name(String),
    /// Any name ending in `.<domain>` (not the domain itself).
    Subdomains(String),
    /// Exactly this address.
    Ip(IpAddr),
}

/// Why an `allowed_outbound_hosts` entry is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{entry:?} is not an origin: {reason} (write scheme, host and optional port, e.g. \"https://hooks.example.com\", \"https://*.example.com\" or \"http://127.0.0.1:9000\")"
)]
pub struct InvalidOrigin {
    entry: String,
    reason: &'static str,
}

impl FromStr for AllowedOrigin {
    type Err = InvalidOrigin;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| InvalidOrigin {
            entry: entry.to_owned(),
            reason,
        };
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| invalid("it has no scheme"))?;
        let scheme =
            Scheme::parse(scheme).ok_or_else(|| invalid("the scheme must be http or https"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(invalid("it has a path, query or user; an origin has none"));
        }
        let (host, port) = split_host_port(rest)
            .ok_or_else(|| invalid("its port is not a number from 1 to 65535"))?;
        if host.is_empty() {
            return Err(invalid("its host is empty"));
        }
        let host = if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            HostPattern::Ip(ip)
        } else if let Some(domain) = host.strip_prefix("*.") {
            if !valid_name(domain) {
                return Err(invalid("the domain after \"*.\" is not a host name"));
            }
            HostPattern::Subdomains(domain.to_ascii_lowercase())
        } else {
            if !valid_name(host) {
                return Err(invalid(
                    "its host is not a host name or IP address (\"*\" only as a leading \"*.\")",
                ));
            }
            HostPattern::Name(host.to_ascii_lowercase())
        };
        Ok(Self {
            port: port.unwrap_or(scheme.default_port()),
            scheme,
            host,
        })
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            HostPattern::Name(name) => f.write_str(name)?,
            HostPattern::Subdomains(domain) => write!(f, "*.{domain}")?,
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            HostPattern::Ip(ip) => write!(f, "{ip}")?,
        }
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// Splits `host[:port]` (an IPv6 host in brackets); `None` for a bad port.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(end) = authority.rfind(']') {
        match &authority[end + 1..] {
            "" => (authority, None),
            rest => (&authority[..=end], Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    match port {
        None => Some((host, None)),
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => None,
            Ok(port) => Some((host, Some(port))),
        },
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The origin of one outgoing request: what the allow-list is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) scheme: Scheme,
    /// The host as the request names it (lower-cased, IPv6 without brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Origin {
    /// The origin of `scheme://authority`, `None` if the authority has no
    /// host or a bad port.
    pub(crate) fn new(scheme: Scheme, authority: &str) -> Option<Self> {
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = split_host_port(authority)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return None;
        }
        Some(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(scheme.default_port()),
        })
    }

    /// The host as an IP address, when the request names one.
    pub(crate) fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl AllowedOrigin {
    /// Whether this entry lets a request reach `origin`.
    pub(crate) fn matches(&self, origin: &Origin) -> bool {
        if self.scheme != origin.scheme || self.port != origin.port {
            return false;
        }
        match &self.host {
            HostPattern::Name(name) => *name == origin.host,
            HostPattern::Subdomains(domain) => origin
                .host
                .strip_suffix(domain.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            HostPattern::Ip(ip) => origin.ip() == Some(*ip),
        }
    }

    /// Whether the operator, by writing this entry, named `address` itself:
    /// the entry is that IP address, or `localhost` and the address is a
    /// loopback one. Only then may a request reach an address that is not
    /// public (see [`is_public`]).
    pub(crate) fn names_address(&self, address: IpAddr) -> bool {
        match &self.host {
            HostPattern::Ip(ip) => *ip == address,
            HostPattern::Name(name) => name == "localhost" && address.is_loopback(),
            HostPattern::Subdomains(_) => false,
        }
    }
}

/// The first entry of `list` that lets a request reach `origin`.
pub(crate) fn find<'a>(list: &'a [AllowedOrigin], origin: &Origin) -> Option<&'a AllowedOrigin> {
    list.iter().find(|entry| entry.matches(origin))
}

/// Whether `address` is a public unicast address: not loopback, private
/// (RFC 1918, unique local), link-local, shared (CGNAT), unspecified,
/// multicast, broadcast or documentation. A name an operator allowed must
/// resolve to one of these unless the operator wrote the address itself, so
/// a DNS answer cannot turn an allowed name into a way into the host's own
/// network.
pub(crate) fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_broadcast()
                || ip.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && ip.segments()[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        let (scheme, authority) = url.split_once("://").expect("scheme");
        Origin::new(Scheme::parse(scheme).expect("scheme"), authority).expect("origin")
    }

    fn allowed(entry: &str) -> AllowedOrigin {
        entry.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn entries_parse_and_print_back() {
        for entry in [
            "https://hooks.example.com",
            "http://127.0.0.1:9000",
            "https://*.example.com",
            "http://[::1]:8080",
            "http://localhost:9000",
        ] {
            assert_eq!(allowed(entry).to_string(), entry);
        }
        assert_eq!(
            allowed("HTTPS://Hooks.Example.com:443/").to_string(),
            "https://hooks.example.com"
        );
        for bad in [
            "hooks.example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://example.com:0",
            "https://example.com:99999",
            "https://",
            "https://*",
            "https://a.*.example.com",
            "https://user@example.com",
        ] {
            assert!(bad.parse::<AllowedOrigin>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn scheme_host_and_port_must_all_match() {
        let entry = allowed("https://hooks.example.com");
        assert!(entry.matches(&origin("https://hooks.example.com")));
        assert!(entry.matches(&origin("https://HOOKS.example.com:443")));
        assert!(!entry.matches(&origin("http://hooks.example.com")));
        assert!(!entry.matches(&origin("https://hooks.example.com:8443")));
        assert!(!entry.matches(&origin("https://evil.example.com")));
        assert!(!entry.matches(&origin("https://hooks.example.com.evil.net")));
        let entry = allowed("http://127.0.0.1:9000");
        assert!(entry.matches(&origin("http://127.0.0.1:9000")));
        assert!(!entry.matches(&origin("http://127.0.0.1:9001")));
        assert!(!entry.matches(&origin("http://localhost:9000")));
    }

    #[test]
    fn a_wildcard_covers_subdomains_only() {
        let entry = allowed("https://*.example.com");
        assert!(entry.matches(&origin("https://a.example.com")));
        assert!(entry.matches(&origin("https://a.b.example.com")));
        assert!(!entry.matches(&origin("https://example.com")));
        assert!(!entry.matches(&origin("https://badexample.com")));
    }

    #[test]
    fn only_addresses_the_operator_wrote_may_be_private() {
        let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
        let private: IpAddr = "10.1.2.3".parse().expect("ip");
        let public: IpAddr = "93.184.216.34".parse().expect("ip");
        assert!(is_public(public));
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        assert!(allowed("http://127.0.0.1:9000").names_address(loopback));
        assert!(allowed("http://localhost:9000").names_address(loopback));
        assert!(!allowed("https://hooks.example.com").names_address(loopback));
        assert!(!allowed("https://*.example.com").names_address(private));
        assert!(!allowed("http://127.0.0.1:9000").names_address(private));
    }
}
