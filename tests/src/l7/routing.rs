//! Routing: rules with several hosts and prefixes (Traefik v1's
//! `Host:a,b` and `PathPrefix:/x,/y`), `PathPrefixStrip`, and prefixes
//! matched on whole segments of the path as a backend resolves it.

use proxy_user::services::ServicesConfig;

use crate::harness::{backend::Whoami, proxy::TestProxy, raw::exchange};

/// Sends `GET path` with `host` and returns the body.
async fn body_of(p: &TestProxy, host: &str, path: &str) -> String {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    exchange(p.addr, raw.as_bytes()).await.unwrap().body
}

/// `Host:a.example,b.example;PathPrefixStrip:/shop,/cart` routes both hosts
/// and both prefixes, and the backend sees the path without the prefix
/// and the prefix in `X-Forwarded-Prefix`; other requests go elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternatives_route_and_strip_removes_the_prefix() {
    let (shop, web) = (Whoami::start("whoami-shop"), Whoami::start("whoami-web"));
    let text = format!(
        "[[services]]\nname = 'shop'\nrule = {{ host = ['a.example', 'b.example'], path_prefix = ['/shop', '/cart'], strip_prefix = true }}\n\
         backends = [{{ name = '{}', url = 'http://{}' }}]\n\
         [[services]]\nname = 'web'\nbackends = [{{ name = '{}', url = 'http://{}' }}]\n",
        shop.name, shop.addr, web.name, web.addr
    );
    let p = TestProxy::start(ServicesConfig::from_toml_str(&text).unwrap());
    for (host, path, forwarded, prefix) in [
        ("a.example", "/shop/item/1?x=1", "/item/1?x=1", "/shop"),
        ("b.example", "/cart", "/", "/cart"),
        ("B.example.", "/cart/", "/", "/cart"),
    ] {
        let body = body_of(&p, host, path).await;
        assert!(body.starts_with("I'm whoami-shop"), "{host}{path}: {body}");
        assert!(
            body.contains(&format!("GET {forwarded} HTTP/1.1")),
            "{host}{path}: {body}"
        );
        assert!(
            body.to_ascii_lowercase()
                .contains(&format!("x-forwarded-prefix: {prefix}\n")),
            "{host}{path}: {body}"
        );
    }
    for (host, path) in [("c.example", "/shop/1"), ("a.example", "/shopping"), ("a.example", "/")] {
        let body = body_of(&p, host, path).await;
        assert!(body.starts_with("I'm whoami-web"), "{host}{path}: {body}");
        assert!(body.contains(&format!("GET {path} HTTP/1.1")), "{host}{path}: {body}");
    }
}

/// Path-prefix rules match whole segments of the path as a backend
/// resolves it: dot segments, encoded characters and doubled slashes do
/// not slip past `/admin`, and `/adminx` is not under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_prefixes_match_normalised_segments() {
    let (admin, web) = (Whoami::start("whoami-admin"), Whoami::start("whoami-web"));
    let text = format!(
        "[[services]]\nname = 'admin'\nrule = {{ path_prefix = '/admin' }}\nbackends = [{{ name = '{}', url = 'http://{}' }}]\n\
         [[services]]\nname = 'web'\nbackends = [{{ name = '{}', url = 'http://{}' }}]\n",
        admin.name, admin.addr, web.name, web.addr
    );
    let p = TestProxy::start(ServicesConfig::from_toml_str(&text).unwrap());
    for (path, want) in [
        ("/admin", "whoami-admin"),
        ("/admin/users", "whoami-admin"),
        ("/x/../admin", "whoami-admin"),
        ("/%61dmin/", "whoami-admin"),
        ("/x%2F..%2Fadmin", "whoami-admin"),
        ("//admin", "whoami-admin"),
        ("/./admin", "whoami-admin"),
        ("/adminx", "whoami-web"),
        ("/", "whoami-web"),
    ] {
        let body = body_of(&p, "x", path).await;
        assert!(body.starts_with(&format!("I'm {want}")), "{path}: {body}");
        // The backend gets the target as sent.
        assert!(body.contains(&format!("GET {path} HTTP/1.1")), "{path}: {body}");
    }
}
