//! Published listeners as `--listen` spells them: an address, the
//! protocol clients speak there (plain HTTP or HTTPS), and whether an L4
//! balancer in front announces each client with a PROXY protocol header.
//!
//! ```text
//! 0.0.0.0:8080  http://0.0.0.0:80  https://0.0.0.0:443
//! http+proxy://0.0.0.0:80  https+proxy://[::]:443
//! ```
//!
//! The data plane only sees the addresses; the proxy reads the rest per
//! accepted connection through the listener's index.

pub mod proxy_protocol;

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
    time::Duration,
};

use tokio::net::TcpStream;

/// What clients speak on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP/1.x or HTTP/2 with prior knowledge.
    Http,
    /// TLS, then HTTP/1.1 or HTTP/2 by ALPN.
    Https,
}

impl Scheme {
    /// `http` or `https`, as in URLs and `X-Forwarded-Proto`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// One published listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// The published address.
    pub addr: SocketAddr,
    /// Plain or TLS.
    pub scheme: Scheme,
    /// A PROXY protocol header (v1 or v2) is read from trusted sources.
    pub proxy_protocol: bool,
}

impl Listener {
    /// A plain HTTP listener on `addr`.
    pub const fn http(addr: SocketAddr) -> Self {
        Self {
            addr,
            scheme: Scheme::Http,
            proxy_protocol: false,
        }
    }
}

impl FromStr for Listener {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (scheme, proxy_protocol, rest) = match s.split_once("://") {
            None => (Scheme::Http, false, s),
            Some(("http", rest)) => (Scheme::Http, false, rest),
            Some(("https", rest)) => (Scheme::Https, false, rest),
            Some(("http+proxy", rest)) => (Scheme::Http, true, rest),
            Some(("https+proxy", rest)) => (Scheme::Https, true, rest),
            Some((other, _)) => {
                return Err(format!(
                    "{other:?} is not a listener scheme (http, https, http+proxy or https+proxy)"
                ));
            }
        };
        let addr = rest
            .trim_end_matches('/')
            .parse::<SocketAddr>()
            .map_err(|_| format!("{rest:?} is not an IP address with a port (e.g. 0.0.0.0:443 or [::]:443)"))?;
        Ok(Self {
            addr,
            scheme,
            proxy_protocol,
        })
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proxy = if self.proxy_protocol { "+proxy" } else { "" };
        write!(f, "{}{proxy}://{}", self.scheme.as_str(), self.addr)
    }
}

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a network (e.g. 10.0.0.0/8, fd00::/8 or 192.0.2.7)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Self { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// How often a connection whose first bytes arrive in pieces is peeked
/// again.
const PEEK_AGAIN: Duration = Duration::from_millis(2);

/// Peeks at the start of `stream` into `buf` until `done` holds for what
/// arrived, `buf` is full, or the peer closed (`Ok(0)`); returns the bytes
/// seen. The caller bounds the time it may take.
///
/// # Errors
/// When the socket fails.
pub async fn peek_until(stream: &TcpStream, buf: &mut [u8], done: impl Fn(&[u8]) -> bool) -> std::io::Result<usize> {
    let mut last = 0;
    loop {
        let n = stream.peek(buf).await?;
        if n == 0 || done(&buf[..n]) || n == buf.len() {
            return Ok(n);
        }
        if n == last {
            // A peek does not consume, so the socket stays readable: wait
            // a moment for the rest instead of spinning.
            tokio::time::sleep(PEEK_AGAIN).await;
        }
        last = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_spellings() {
        let l: Listener = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(l, Listener::http("0.0.0.0:8080".parse().unwrap()));
        let l: Listener = "https://[::]:443".parse().unwrap();
        assert_eq!((l.scheme, l.proxy_protocol), (Scheme::Https, false));
        let l: Listener = "https+proxy://127.0.0.1:8443/".parse().unwrap();
        assert_eq!((l.scheme, l.proxy_protocol), (Scheme::Https, true));
        assert_eq!(l.to_string(), "https+proxy://127.0.0.1:8443");
        let l: Listener = "http+proxy://127.0.0.1:80".parse().unwrap();
        assert_eq!((l.scheme, l.proxy_protocol), (Scheme::Http, true));
        assert!(
            "tls://0.0.0.0:443"
                .parse::<Listener>()
                .unwrap_err()
                .contains("not a listener scheme")
        );
        assert!(
            "https://example.com:443"
                .parse::<Listener>()
                .unwrap_err()
                .contains("IP address")
        );
        assert!("https://0.0.0.0".parse::<Listener>().is_err());
    }

    #[test]
    fn networks() {
        let n: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(n.contains("10.200.3.4".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope/8".parse::<Cidr>().is_err());
    }
}
