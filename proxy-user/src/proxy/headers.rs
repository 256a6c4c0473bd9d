//! Header work of the request path: upgrade detection, hop-by-hop
//! stripping, the upstream request rewrite (origin form, `Host` from the
//! request's one authority, our cookie removed, spoofable and ambiguous
//! headers dropped) and the forwarding headers (`X-Forwarded-For/-Proto/
//! -Host`, `Forwarded`; a peer's own values are kept only when it is a
//! trusted proxy).

use std::net::IpAddr;

use http::{
    HeaderMap, HeaderName, HeaderValue, Request, Uri, Version,
    header::{CONNECTION, FORWARDED, HOST, UPGRADE},
    request::Parts,
};

use super::authority::Authority;
use crate::{cookie, listener::Scheme, services::CookieConfig};

pub(super) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(super) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Client-address and routing claims that backends believe and only a
/// trusted proxy may make: an untrusted peer's are removed.
fn is_spoofable(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "x-real-ip" | "true-client-ip" | "x-client-ip" | "x-forwarded-port" | "x-forwarded-prefix"
    )
}

/// The request's `Host` header or target authority as sent (for the
/// access log; routing uses [`super::authority`]).
pub(super) fn raw_host<B>(req: &Request<B>) -> Option<String> {
    match req.headers().get(HOST) {
        Some(h) => Some(String::from_utf8_lossy(h.as_bytes()).into_owned()),
        None => req.uri().authority().map(|a| a.as_str().to_owned()),
    }
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

pub(super) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11 && req.headers().contains_key(UPGRADE) && connection_has(req.headers(), "upgrade")
}

/// Whether `req` asks for an upgrade to a protocol in `allowed`
/// (lower-case names; `websocket/13` counts as `websocket`). Any other
/// upgrade is forwarded as a plain request: `Upgrade` is hop-by-hop.
pub(super) fn is_allowed_upgrade<B>(req: &Request<B>, allowed: &[String]) -> bool {
    is_upgrade(req)
        && req.headers().get_all(UPGRADE).iter().all(|v| {
            v.as_bytes().split(|&b| b == b',').all(|p| {
                let name = p.trim_ascii().split(|&b| b == b'/').next().unwrap_or_default();
                allowed.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(name))
            })
        })
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == http::header::TRANSFER_ENCODING || HOP_BY_HOP.contains(&name.as_str())
}

/// Removes hop-by-hop headers, including the names listed in `Connection`.
/// `Transfer-Encoding` is hyper's business: it re-frames every body.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names first: most messages have none of them, and
    // a scan is cheaper than nine hashed removals.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(http::header::TRANSFER_ENCODING);
}

/// The client's address as forwarding headers spell it, built once per
/// connection.
pub(super) struct PeerHeaders {
    /// `http` or `https`: how the client reached us.
    proto: &'static str,
    ip: String,
    xff: HeaderValue,
    forwarded_for: String,
}

impl PeerHeaders {
    pub(super) fn new(peer: IpAddr, scheme: Scheme) -> Self {
        let ip = peer.to_string();
        let xff = HeaderValue::from_str(&ip).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        // RFC 7239: IPv6 addresses are bracketed and quoted.
        let forwarded_for = if peer.is_ipv6() {
            format!("for=\"[{ip}]\"")
        } else {
            format!("for={ip}")
        };
        Self {
            proto: scheme.as_str(),
            ip,
            xff,
            forwarded_for,
        }
    }
}

/// Removes header names with `_` (CGI and WSGI servers fold `_` and `-`, so
/// `transfer_encoding` could reframe a body there; nginx drops them too)
/// and, from an untrusted peer, the [spoofable](is_spoofable) claims. One
/// scan of the names: most requests have none of them.
fn drop_ambiguous(headers: &mut HeaderMap, trusted: bool) {
    let doomed = |name: &HeaderName| name.as_str().contains('_') || (!trusted && is_spoofable(name));
    if !headers.keys().any(doomed) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| doomed(n)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

/// Rewrites a client request for the backend: our cookie removed,
/// hop-by-hop and ambiguous headers dropped (`upgrade` keeps the upgrade),
/// `Host` set to the request's authority, forwarding headers added,
/// origin form, HTTP/1.1.
pub(super) fn prepare_request<B>(
    req: &mut Request<B>,
    cookie: &CookieConfig,
    peer: &PeerHeaders,
    trusted: bool,
    authority: Option<&Authority>,
    upgrade: bool,
) {
    let upgrade_value = if upgrade {
        req.headers().get(UPGRADE).cloned()
    } else {
        None
    };
    let headers = req.headers_mut();
    cookie::remove_cookie(headers, &cookie.name);
    strip_hop_by_hop(headers);
    drop_ambiguous(headers, trusted);
    if let Some(u) = upgrade_value {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, u);
    }
    match authority {
        Some(a) => {
            headers.insert(HOST, a.value.clone());
        }
        None => {
            headers.remove(HOST);
        }
    }
    forwarding_headers(headers, peer, trusted, authority.map(|a| &a.value));
    // Origin form for the HTTP/1.1 upstream (HTTP/2 requests carry the
    // absolute form).
    if req.uri().authority().is_some() {
        let pq = req.uri().path_and_query().map_or("/", http::uri::PathAndQuery::as_str);
        if let Ok(uri) = pq.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    *req.version_mut() = Version::HTTP_11;
}

/// `X-Forwarded-For/-Proto/-Host` and `Forwarded`, all naming the same
/// host (`host_value`, the request's authority).
fn forwarding_headers(headers: &mut HeaderMap, peer: &PeerHeaders, trusted: bool, host_value: Option<&HeaderValue>) {
    let chained = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if trusted => HeaderValue::from_str(&format!("{prev}, {}", peer.ip)).ok(),
        _ => None,
    };
    headers.insert(&X_FORWARDED_FOR, chained.unwrap_or_else(|| peer.xff.clone()));
    let proto_trusted = trusted && headers.contains_key(&X_FORWARDED_PROTO);
    if !proto_trusted {
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(peer.proto));
    }
    let proto = headers
        .get(&X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http")
        .to_owned();
    if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match host_value {
            Some(h) => {
                headers.insert(&X_FORWARDED_HOST, h.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    let mut fwd = format!("{};proto={proto}", peer.forwarded_for);
    // The authority is `host[:port]` of token characters (see
    // `authority.rs`), safe inside a quoted string.
    if let Some(h) = host_value.and_then(|h| h.to_str().ok()) {
        fwd.push_str(";host=\"");
        fwd.push_str(h);
        fwd.push('"');
    }
    let value = match headers.get(FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(prev) if trusted => format!("{prev}, {fwd}"),
        _ => fwd,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(FORWARDED, v);
    }
}

static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Removes the rule's matched `prefix` from the request's path (the
/// normalised one: the prefix matched that) and names it in
/// `X-Forwarded-Prefix`, as Traefik v1's `PathPrefixStrip` does: `/api/x?q`
/// under `/api` goes on as `/x?q`, `/api` itself as `/`.
pub(super) fn strip_prefix<B>(req: &mut Request<B>, prefix: &str) {
    let path = crate::services::path::normalize(req.uri().path());
    let rest = path.strip_prefix(prefix).unwrap_or(&path);
    let mut target = String::with_capacity(rest.len() + 1);
    if !rest.starts_with('/') {
        target.push('/');
    }
    target.push_str(rest);
    if let Some(q) = req.uri().query() {
        target.push('?');
        target.push_str(q);
    }
    if let Ok(uri) = target.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    if let Ok(v) = HeaderValue::from_str(prefix) {
        req.headers_mut().insert(&X_FORWARDED_PREFIX, v);
    }
}

/// A copy of a request head (without its extensions), kept to replay an
/// idempotent request.
pub(super) fn clone_parts(p: &Parts) -> Parts {
    let mut r = Request::new(());
    p.method.clone_into(r.method_mut());
    p.uri.clone_into(r.uri_mut());
    *r.version_mut() = p.version;
    p.headers.clone_into(r.headers_mut());
    r.into_parts().0
}
