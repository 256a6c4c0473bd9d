//! Failover when backends die, and the 502/503 answers.

use std::net::SocketAddr;

use proxy_user::services::ServicesConfig;

use crate::harness::{
    backend::{Whoami, pairs, whoamis},
    proxy::{Client, TestProxy, get},
};

/// A backend killed mid-session: the session's GETs (on a kept-alive client
/// connection and on new ones) fail over to a live backend without an
/// error, with a new cookie, and then stick there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_fails_over() {
    let mut backends = whoamis(2);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let mut c = Client::connect(p.addr).await;
    let r = c.get("/", None).await;
    let (victim, cookie) = (r.backend().to_owned(), r.cookie.unwrap());
    for _ in 0..5 {
        assert_eq!(c.get("/", Some(&cookie)).await.backend(), victim);
    }
    let i = backends.iter().position(|b| b.name == victim).unwrap();
    backends[i].kill();
    let survivor = backends[1 - i].name.clone();
    let r = c.get("/", Some(&cookie)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.backend(), survivor);
    let moved = r.cookie.expect("failover sends a new cookie");
    for _ in 0..20 {
        let r = get(p.addr, "/", Some(&cookie)).await;
        assert_eq!((r.status.as_u16(), r.backend()), (200, survivor.as_str()));
        assert_eq!(c.get("/", Some(&moved)).await.backend(), survivor);
    }
}

/// No backend reachable → 502 with a short plain-text body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_reachable_is_502() {
    let mut b = Whoami::start("gone");
    let cfg = ServicesConfig::single("web", &[(b.name.clone(), b.addr)]);
    b.kill();
    let p = TestProxy::start(cfg);
    let r = get(p.addr, "/", None).await;
    assert_eq!(r.status, 502);
    assert!(r.body.len() < 100 && r.body.ends_with('\n'), "{}", r.body);
}

/// A request no rule matches → 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_is_503() {
    let backends = whoamis(1);
    let addr: SocketAddr = backends[0].addr;
    let text = format!(
        "[[services]]\nname = 'api'\nrule = {{ path_prefix = '/api' }}\nbackends = [{{ name = 'a', url = 'http://{addr}' }}]\n"
    );
    let p = TestProxy::start(ServicesConfig::from_toml_str(&text).unwrap());
    assert_eq!(get(p.addr, "/other", None).await.status, 503);
    assert_eq!(get(p.addr, "/api/x", None).await.backend(), "whoami-1");
}
