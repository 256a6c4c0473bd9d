//! HTTPS policy of a service on the request path: the redirect of plain
//! HTTP requests to HTTPS, and the HSTS header.
//!
//! The redirect keeps the method and body (308) and the path and query as
//! sent. Its host is never one a client can choose freely, since a
//! `Location` built from any `Host` would let a forged request send
//! victims elsewhere: it is the request's host when the service's rule
//! names it, the rule's first host when the request's is another, and the
//! request's host (already checked to be a valid `host[:port]`) only when
//! the rule names no host, so that it routes there anyway. ACME HTTP-01
//! challenges are never redirected: a CA validates them over plain HTTP.

use http::{HeaderValue, Response, StatusCode, header::LOCATION};

use super::{ProxyBody, answer::plain, authority::Authority};
use crate::routing::Service;

/// Where ACME HTTP-01 challenges are answered.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// Whether a request that came over plain HTTP to `svc` is redirected.
pub(super) fn applies(svc: &Service, path: &str) -> bool {
    svc.config.tls.redirect_https && !path.starts_with(ACME_CHALLENGE)
}

/// The 308 to the same resource over HTTPS on `port`; `None` when no host
/// can be named (no `Host`, and a rule that names none).
pub(super) fn to_https(
    svc: &Service,
    authority: Option<&Authority>,
    path_and_query: &str,
    port: u16,
) -> Option<Response<ProxyBody>> {
    let hosts = &svc.config.rule.hosts;
    let asked = authority.map(|a| a.host.as_str());
    let host = match asked {
        Some(h) if hosts.is_empty() || hosts.iter().any(|r| r == h) => h,
        _ => hosts.first()?.as_str(),
    };
    let mut location = String::with_capacity(16 + host.len() + path_and_query.len());
    location.push_str("https://");
    if host.contains(':') {
        // An IPv6 literal.
        location.push('[');
        location.push_str(host);
        location.push(']');
    } else {
        location.push_str(host);
    }
    if port != 443 {
        location.push(':');
        location.push_str(&port.to_string());
    }
    location.push_str(path_and_query);
    let location = HeaderValue::from_str(&location).ok()?;
    let mut resp = plain(StatusCode::PERMANENT_REDIRECT, "moved to HTTPS\n");
    resp.headers_mut().insert(LOCATION, location);
    add_hsts(svc, &mut resp);
    Some(resp)
}

/// Adds the service's HSTS header, when it has one.
pub(super) fn add_hsts<B>(svc: &Service, resp: &mut Response<B>) {
    if let Some(hsts) = &svc.hsts {
        resp.headers_mut()
            .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
}
