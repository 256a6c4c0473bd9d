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

/// Active health checks take a backend that accepts but never answers HTTP out
/// of the rotation, so new sessions avoid it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_check_takes_hung_backend_out() {
    let backends = whoamis(1);
    let hung = crate::harness::backend::Tripwire::start().await;
    let text = format!(
        "[[services]]\nname = 'web'\nhealth = {{ path = '/', interval_ms = 100, timeout_ms = 200 }}\n\
         backends = [{{ name = 'whoami-1', url = 'http://{}' }}, {{ name = 'hung', url = 'http://{}' }}]\n",
        backends[0].addr, hung.addr
    );
    let p = TestProxy::start(ServicesConfig::from_toml_str(&text).unwrap());
    let checker = proxy_user::balance::spawn_health_checks(p.proxy.balancer().clone());
    let deadline = tokio::time::Instant::now() + crate::harness::proxy::WAIT;
    loop {
        let table = p.proxy.balancer().table();
        let b = table.services[0].backend("hung").unwrap();
        if !p.proxy.balancer().is_up(b) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hung backend never marked unhealthy"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for _ in 0..10 {
        assert_eq!(get(p.addr, "/", None).await.backend(), "whoami-1");
    }
    checker.abort();
}

/// A POST pinned to a backend that no longer accepts connections is not
/// lost: its body was not sent yet, so it goes to another backend intact,
/// with a new cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_to_dead_backend_fails_over_before_sending() {
    let mut backends = whoamis(2);
    let key = proxy_user::cookie::Keyring::random();
    let first = TestProxy::start_with(ServicesConfig::single("web", &pairs(&backends)), key.clone(), 1);
    // A session on whoami-1, then whoami-1 dies before the next request;
    // a second proxy with the same key (no pooled connections) gets it.
    let mut cookie = None;
    while cookie.is_none() {
        let r = get(first.addr, "/", None).await;
        if r.backend() == "whoami-1" {
            cookie = r.cookie;
        }
    }
    let p = TestProxy::start_with(ServicesConfig::single("web", &pairs(&backends)), key, 1);
    backends[0].kill();
    let req = hyper::Request::post("/form")
        .header(hyper::header::HOST, "x")
        .header(hyper::header::COOKIE, cookie.unwrap())
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"name=value")))
        .unwrap();
    let r = Client::connect(p.addr).await.send(req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.backend(), "whoami-2");
    assert!(r.body.contains("body-bytes: 10"), "{}", r.body);
    assert!(r.cookie.is_some());
}
