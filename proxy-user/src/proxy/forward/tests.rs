//! Request rewriting without sockets: hop-by-hop headers, the upstream
//! request's target, Host, cookie and forwarding headers.

use http::{
    HeaderMap, HeaderName, HeaderValue, Request, Version,
    header::{COOKIE, FORWARDED, HOST},
};

use super::super::{authority, headers::*};
use crate::listener::Scheme;

/// Hop-by-hop headers go, including those named by Connection.
#[test]
fn hop_by_hop() {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("connection", "close, x-private"),
        ("x-private", "1"),
        ("keep-alive", "5"),
        ("te", "trailers"),
        ("x-kept", "1"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    strip_hop_by_hop(&mut h);
    assert_eq!(h.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["x-kept"]);
}

/// The upstream request: origin form, Host from the authority, our cookie
/// removed, forwarding headers appended only for trusted peers.
#[test]
fn upstream_request_rewrite() {
    let cookie = crate::services::CookieConfig::for_service("web");
    let mut r = Request::get("http://shop.example/a?b=1")
        .version(Version::HTTP_2)
        .header(COOKIE, format!("{}=v; other=2", cookie.name))
        .header("x-forwarded-for", "203.0.113.9")
        .body(())
        .unwrap();
    let a = authority::of(&r).unwrap();
    prepare_request(
        &mut r,
        &cookie,
        &PeerHeaders::new("127.0.0.1".parse().unwrap(), Scheme::Http),
        false,
        a.as_ref(),
        false,
    );
    assert_eq!(r.uri(), "/a?b=1");
    assert_eq!(r.version(), Version::HTTP_11);
    assert_eq!(r.headers()[HOST], "shop.example");
    assert_eq!(r.headers()[COOKIE], "other=2");
    assert_eq!(
        r.headers()["x-forwarded-for"],
        "127.0.0.1",
        "an untrusted peer's chain is replaced"
    );
    assert_eq!(r.headers()[FORWARDED], "for=127.0.0.1;proto=http;host=\"shop.example\"");

    let mut r = Request::get("/")
        .version(Version::HTTP_10)
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .body(())
        .unwrap();
    prepare_request(
        &mut r,
        &cookie,
        &PeerHeaders::new("::1".parse().unwrap(), Scheme::Http),
        true,
        None,
        false,
    );
    assert_eq!(r.headers()["x-forwarded-for"], "203.0.113.9, ::1");
    assert_eq!(r.headers()["x-forwarded-proto"], "https");
    assert_eq!(r.headers()[FORWARDED], "for=\"[::1]\";proto=https");
}
