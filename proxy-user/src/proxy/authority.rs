//! The request's authority: the one host that routes a request and that
//! the backend and both forwarding headers see, so that a client cannot
//! reach one service's backends while presenting another's host.
//!
//! * HTTP/1 (RFC 9112 §3.2): exactly one `Host`, required in HTTP/1.1; an
//!   absolute-form target's authority replaces it (§3.2.2).
//! * HTTP/2 (RFC 9113 §8.3.1): `:authority`, else `Host`; a request
//!   carrying both with different values is malformed.
//!
//! Userinfo is dropped, the host is lower-cased and loses a trailing dot
//! (`example.com.` is `example.com`), and anything that is not a host name
//! or an IP literal with an optional port is refused (400).

use std::net::Ipv6Addr;

use http::{HeaderValue, Request, Version, header::HOST};

/// The request's authority, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Authority {
    /// Lower-case host without port, brackets or trailing dot: what rules
    /// match.
    pub(super) host: String,
    /// `host[:port]` (IPv6 in brackets): the upstream `Host`, and the host
    /// of `X-Forwarded-Host` and `Forwarded`.
    pub(super) value: HeaderValue,
}

/// Why a request's authority is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum AuthorityError {
    /// More than one `Host` header.
    #[error("several Host headers")]
    SeveralHosts,
    /// HTTP/1.1 without `Host`.
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    /// Not `host[:port]`.
    #[error("invalid Host")]
    Invalid,
    /// HTTP/2 `Host` differs from `:authority`.
    #[error("Host differs from :authority")]
    Mismatch,
}

impl AuthorityError {
    /// The 400 body.
    pub(super) fn message(self) -> &'static str {
        match self {
            Self::SeveralHosts => "bad request: several Host headers\n",
            Self::MissingHost => "bad request: HTTP/1.1 needs a Host header\n",
            Self::Invalid => "bad request: invalid Host\n",
            Self::Mismatch => "bad request: Host differs from :authority\n",
        }
    }
}

/// The authority of `req`, or `None` for a request that has none (HTTP/1.0
/// without `Host`, or an empty one).
pub(super) fn of<B>(req: &Request<B>) -> Result<Option<Authority>, AuthorityError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(AuthorityError::SeveralHosts);
    }
    let from_host = host.map(|h| parse(h.as_bytes(), Some(h), false)).transpose()?.flatten();
    let from_target = req
        .uri()
        .authority()
        .map(|a| parse(a.as_str().as_bytes(), None, true))
        .transpose()?
        .flatten();
    match (req.version(), from_target) {
        (Version::HTTP_2, Some(target)) => match from_host {
            Some(h) if h != target => Err(AuthorityError::Mismatch),
            _ => Ok(Some(target)),
        },
        (_, Some(target)) => Ok(Some(target)),
        (Version::HTTP_11, None) if host.is_none() => Err(AuthorityError::MissingHost),
        (_, None) => Ok(from_host),
    }
}

/// Parses `[userinfo@]host[:port]`; userinfo only where `userinfo_ok`
/// (a URI's authority, not a `Host` header). `Ok(None)` for an empty one.
/// `original` is the header `raw` came from: when it is already in normal
/// form (the usual case), it is reused rather than rebuilt.
fn parse(raw: &[u8], original: Option<&HeaderValue>, userinfo_ok: bool) -> Result<Option<Authority>, AuthorityError> {
    let (raw, had_userinfo) = match raw.iter().rposition(|&b| b == b'@') {
        Some(at) if userinfo_ok => (&raw[at + 1..], true),
        Some(_) => return Err(AuthorityError::Invalid),
        None => (raw, false),
    };
    if raw.is_empty() {
        return Ok(None);
    }
    if raw[0] == b'[' {
        return parse_ipv6(raw).map(Some);
    }
    let (name, port) = match raw.iter().position(|&b| b == b':') {
        Some(colon) => (&raw[..colon], Some(&raw[colon + 1..])),
        None => (raw, None),
    };
    let trimmed = name.strip_suffix(b".").unwrap_or(name);
    let valid = !trimmed.is_empty()
        && trimmed
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !valid {
        return Err(AuthorityError::Invalid);
    }
    let port = port.map(parse_port).transpose()?.flatten();
    // Only ASCII passed the check above.
    let host = std::str::from_utf8(trimmed)
        .map_err(|_| AuthorityError::Invalid)?
        .to_ascii_lowercase();
    let normal_already = !had_userinfo
        && trimmed.len() == name.len()
        && !trimmed.iter().any(u8::is_ascii_uppercase)
        && port.map_or(raw.len() == name.len(), |(_, canonical)| canonical);
    let value = match original {
        Some(v) if normal_already => v.clone(),
        _ => {
            let text = match port {
                Some((p, _)) => format!("{host}:{p}"),
                None => host.clone(),
            };
            HeaderValue::from_str(&text).map_err(|_| AuthorityError::Invalid)?
        }
    };
    Ok(Some(Authority { host, value }))
}

/// `port = *DIGIT` (an empty port is the default one, `None`); with
/// whether it was written canonically (no leading zero).
fn parse_port(p: &[u8]) -> Result<Option<(u16, bool)>, AuthorityError> {
    if p.is_empty() {
        return Ok(None);
    }
    if p.len() > 5 || !p.iter().all(u8::is_ascii_digit) {
        return Err(AuthorityError::Invalid);
    }
    let n = p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let n = u16::try_from(n).map_err(|_| AuthorityError::Invalid)?;
    Ok(Some((n, p[0] != b'0' || p.len() == 1)))
}

/// `[v6]` or `[v6]:port`, written back in canonical form.
fn parse_ipv6(raw: &[u8]) -> Result<Authority, AuthorityError> {
    let end = raw.iter().position(|&b| b == b']').ok_or(AuthorityError::Invalid)?;
    let literal = std::str::from_utf8(&raw[1..end]).map_err(|_| AuthorityError::Invalid)?;
    let ip: Ipv6Addr = literal.parse().map_err(|_| AuthorityError::Invalid)?;
    let port = match raw[end + 1..].split_first() {
        None => None,
        Some((b':', p)) => parse_port(p)?,
        Some(_) => return Err(AuthorityError::Invalid),
    };
    let text = match port {
        Some((p, _)) => format!("[{ip}]:{p}"),
        None => format!("[{ip}]"),
    };
    let value = HeaderValue::from_str(&text).map_err(|_| AuthorityError::Invalid)?;
    Ok(Authority {
        host: ip.to_string(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;

    fn req(version: Version, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().method(Method::GET).uri(uri).version(version);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        b.body(()).unwrap()
    }

    fn authority(version: Version, uri: &str, hosts: &[&str]) -> Result<Option<(String, String)>, AuthorityError> {
        of(&req(version, uri, hosts)).map(|a| a.map(|a| (a.host, a.value.to_str().unwrap().to_owned())))
    }

    fn ok(host: &str, value: &str) -> Result<Option<(String, String)>, AuthorityError> {
        Ok(Some((host.to_owned(), value.to_owned())))
    }

    #[test]
    fn host_header_is_normalised() {
        let v11 = Version::HTTP_11;
        assert_eq!(authority(v11, "/", &["Example.COM"]), ok("example.com", "example.com"));
        assert_eq!(
            authority(v11, "/", &["example.com.:8080"]),
            ok("example.com", "example.com:8080")
        );
        assert_eq!(authority(v11, "/", &["example.com:"]), ok("example.com", "example.com"));
        assert_eq!(
            authority(v11, "/", &["example.com:080"]),
            ok("example.com", "example.com:80")
        );
        assert_eq!(authority(v11, "/", &["[::1]:80"]), ok("::1", "[::1]:80"));
        assert_eq!(authority(v11, "/", &["10.0.0.1"]), ok("10.0.0.1", "10.0.0.1"));
    }

    #[test]
    fn bad_hosts_are_refused() {
        let v11 = Version::HTTP_11;
        for bad in [
            "a b",
            "user@example.com",
            "example.com:99999",
            "example.com:80x",
            "[::1",
            "[not-an-ip]",
            "exa\"mple",
            "example.com/path",
            ".",
        ] {
            assert_eq!(authority(v11, "/", &[bad]), Err(AuthorityError::Invalid), "{bad}");
        }
        assert_eq!(
            authority(v11, "/", &["a.example", "b.example"]),
            Err(AuthorityError::SeveralHosts)
        );
        assert_eq!(authority(v11, "/", &[]), Err(AuthorityError::MissingHost));
    }

    #[test]
    fn http10_may_omit_host() {
        assert_eq!(authority(Version::HTTP_10, "/", &[]), Ok(None));
        assert_eq!(authority(Version::HTTP_11, "/", &[""]), Ok(None));
    }

    #[test]
    fn absolute_form_replaces_host_and_drops_userinfo() {
        let v11 = Version::HTTP_11;
        assert_eq!(
            authority(v11, "http://b.example/x", &["a.example"]),
            ok("b.example", "b.example")
        );
        assert_eq!(
            authority(v11, "http://user:pw@b.example:81/x", &["a.example"]),
            ok("b.example", "b.example:81")
        );
        assert_eq!(authority(v11, "http://b.example/x", &[]), ok("b.example", "b.example"));
    }

    #[test]
    fn http2_host_must_agree_with_authority() {
        let v2 = Version::HTTP_2;
        assert_eq!(authority(v2, "http://a.example/", &[]), ok("a.example", "a.example"));
        assert_eq!(
            authority(v2, "http://a.example/", &["A.example."]),
            ok("a.example", "a.example")
        );
        assert_eq!(
            authority(v2, "http://a.example/", &["b.example"]),
            Err(AuthorityError::Mismatch)
        );
        assert_eq!(authority(v2, "/", &["b.example"]), ok("b.example", "b.example"));
    }
}
