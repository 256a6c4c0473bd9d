//! Upstream connections: a backend sees many requests on one kept-alive
//! connection, and a pooled connection that breaks after a request was
//! written replays a body-less GET, HEAD or OPTIONS on a fresh one, while
//! any other request gets 502 (it may have been acted on).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, header};
use proxy_user::{cookie::Keyring, services::ServicesConfig};

use crate::harness::{
    proxy::{Client, TestProxy, get},
    raw::{Behaviour, RawBackend},
};

/// One worker (one pool) in front of `backend`.
fn proxy_for(backend: &RawBackend) -> TestProxy {
    let cfg = ServicesConfig::single("web", &[("raw".into(), backend.addr)]);
    TestProxy::start_with(cfg, Keyring::random(), 1)
}

/// 50 requests, on one client connection and then on ten new ones, reach
/// the backend over a single upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_are_reused() {
    let backend = RawBackend::start("raw", Behaviour::EarlyAnswer).await;
    let p = proxy_for(&backend);
    let mut c = Client::connect(p.addr).await;
    for _ in 0..40 {
        let r = c.get("/", None).await;
        assert_eq!((r.status.as_u16(), r.backend()), (200, "raw"), "{}", r.body);
    }
    for _ in 0..10 {
        assert_eq!(get(p.addr, "/", None).await.status, 200);
    }
    assert_eq!(
        backend.connections(),
        1,
        "every request went over the pooled connection"
    );
}

fn request(method: Method, body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("/")
        .header(header::HOST, "x")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

/// The backend answers the first request of each connection and drops the
/// second after reading it. A GET, HEAD or OPTIONS whose pooled connection
/// broke that way is replayed on a new connection and answered; a POST or
/// PUT (or a GET with a body) gets 502 and is never sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_pooled_connection_replays_only_safe_requests() {
    let backend = RawBackend::start("raw", Behaviour::DropSecond).await;
    let p = proxy_for(&backend);
    let mut c = Client::connect(p.addr).await;
    // Opens the first connection, which goes back to the pool.
    assert_eq!(c.send(request(Method::GET, b"")).await.status, 200);
    let mut connections = 1;
    for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
        let r = c.send(request(method.clone(), b"")).await;
        assert_eq!(r.status, 200, "{method}: {}", r.body);
        connections += 1;
        assert_eq!(
            backend.connections(),
            connections,
            "{method} was replayed on a new connection"
        );
    }
    for (method, body) in [
        (Method::POST, &b"order=1"[..]),
        (Method::PUT, b"x"),
        (Method::GET, b"with a body"),
    ] {
        let r = c.send(request(method.clone(), body)).await;
        assert_eq!(r.status, 502, "{method}: {}", r.body);
        assert_eq!(backend.connections(), connections, "{method} was not sent again");
        // The next request opens a connection, which the pool keeps.
        assert_eq!(c.send(request(Method::GET, b"")).await.status, 200);
        connections += 1;
    }
}
