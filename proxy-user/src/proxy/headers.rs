//! Header work of the request path: the request's host, upgrade
//! detection, hop-by-hop stripping, the upstream request rewrite (origin
//! form, Host kept, our cookie removed) and the forwarding headers
//! (`X-Forwarded-For/-Proto/-Host`, `Forwarded`; a peer's own values are
//! kept only when it is a trusted proxy).

use std::net::IpAddr;

use http::{
    HeaderMap, HeaderName, HeaderValue, Request, Uri, Version,
    header::{CONNECTION, FORWARDED, HOST, UPGRADE},
    request::Parts,
};

use crate::{cookie, services::CookieConfig};

pub(super) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(super) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Lower-case host without port, from the URI (HTTP/2) or `Host`.
pub(super) fn request_host<B>(req: &Request<B>) -> Option<String> {
    if let Some(h) = req.uri().host() {
        return Some(h.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase());
    }
    let raw = req.headers().get(HOST)?.to_str().ok()?;
    let authority: http::uri::Authority = raw.parse().ok()?;
    Some(
        authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
    )
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
    ip: String,
    xff: HeaderValue,
    forwarded_for: String,
}

impl PeerHeaders {
    pub(super) fn new(peer: IpAddr) -> Self {
        let ip = peer.to_string();
        let xff = HeaderValue::from_str(&ip).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        // RFC 7239: IPv6 addresses are bracketed and quoted.
        let forwarded_for = if peer.is_ipv6() {
            format!("for=\"[{ip}]\"")
        } else {
            format!("for={ip}")
        };
        Self { ip, xff, forwarded_for }
    }
}

pub(super) fn prepare_request<B>(
    req: &mut Request<B>,
    cookie: &CookieConfig,
    peer: &PeerHeaders,
    trusted: bool,
    host: Option<&str>,
    upgrade: bool,
) {
    let upgrade_value = if upgrade {
        req.headers().get(UPGRADE).cloned()
    } else {
        None
    };
    let original_host = req.headers().get(HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let headers = req.headers_mut();
    cookie::remove_cookie(headers, &cookie.name);
    strip_hop_by_hop(headers);
    if let Some(u) = upgrade_value {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, u);
    }
    if let Some(h) = &original_host {
        headers.insert(HOST, h.clone());
    }
    forwarding_headers(headers, peer, trusted, original_host.as_ref(), host);
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

fn forwarding_headers(
    headers: &mut HeaderMap,
    peer: &PeerHeaders,
    trusted: bool,
    host_value: Option<&HeaderValue>,
    host: Option<&str>,
) {
    let chained = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if trusted => HeaderValue::from_str(&format!("{prev}, {}", peer.ip)).ok(),
        _ => None,
    };
    headers.insert(&X_FORWARDED_FOR, chained.unwrap_or_else(|| peer.xff.clone()));
    let proto_trusted = trusted && headers.contains_key(&X_FORWARDED_PROTO);
    if !proto_trusted {
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
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
    if let Some(h) = host {
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

pub(super) fn clone_parts(p: &Parts) -> Parts {
    let mut b = Request::builder()
        .method(p.method.clone())
        .uri(p.uri.clone())
        .version(p.version);
    if let Some(h) = b.headers_mut() {
        *h = p.headers.clone();
    }
    // Method, URI and version came from a valid request.
    b.body(())
        .map_or_else(|_| Request::new(()).into_parts().0, |r| r.into_parts().0)
}
