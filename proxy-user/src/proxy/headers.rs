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

/// Removes hop-by-hop headers, including the names listed in `Connection`.
/// `Transfer-Encoding` is hyper's business: it re-frames every body.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

pub(super) fn prepare_request<B>(
    req: &mut Request<B>,
    cookie: &CookieConfig,
    peer: IpAddr,
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
    peer: IpAddr,
    trusted: bool,
    host_value: Option<&HeaderValue>,
    host: Option<&str>,
) {
    let peer_s = peer.to_string();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) if trusted => format!("{prev}, {peer_s}"),
        _ => peer_s.clone(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(&X_FORWARDED_FOR, v);
    }
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
    let for_ = if peer.is_ipv6() {
        format!("\"[{peer_s}]\"")
    } else {
        peer_s
    };
    let mut fwd = format!("for={for_};proto={proto}");
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
