//! No request may stall another, and every wait has a deadline: a pooled
//! connection still busy with an upload is never handed on, a stalled
//! request body gets 408, a backend that never answers gets 504 (or the
//! request moves where that is safe), and a cancelled HTTP/2 stream does
//! not keep its connection from idling out.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, header};
use proxy_user::{
    cookie::{Keyring, Sticky, unix_now},
    services::ServicesConfig,
};
use tokio::{io::AsyncWriteExt as _, net::TcpStream};

use crate::harness::{
    backend::Whoami,
    proxy::{TestProxy, get, http2},
    raw::{Behaviour, RawBackend, closes, read_reply},
};

/// A backend answers a POST (413) before reading its upload, and keeps
/// reading the upload afterwards, as Go does. The client uploads slowly.
/// The next request to that backend must not wait for the upload: it gets
/// a connection of its own at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_does_not_hand_a_busy_connection_to_the_next_request() {
    let backend = RawBackend::start("early", Behaviour::EarlyAnswer).await;
    let cfg = ServicesConfig::single("web", &[("early".into(), backend.addr)]);
    // One worker: one upstream pool, which the next request would draw from.
    let p = TestProxy::start_with(cfg, Keyring::random(), 1);
    let mut uploader = TcpStream::connect(p.addr).await.unwrap();
    uploader
        .write_all(b"POST /early HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n")
        .await
        .unwrap();
    uploader.write_all(&[b'u'; 1000]).await.unwrap();
    let early = read_reply(&mut uploader).await.expect("the early answer");
    assert_eq!(early.status, 413, "{early:?}");

    // The upload is still going on (99,000 bytes to come) when this GET
    // arrives.
    let r = tokio::time::timeout(Duration::from_secs(3), get(p.addr, "/", None))
        .await
        .expect("a GET waited behind another client's upload on a pooled connection");
    assert_eq!((r.status.as_u16(), r.backend()), (200, "early"), "{}", r.body);
    assert_eq!(backend.connections(), 2, "the busy connection was not reused");

    // The uploader finishes; its connection is closed rather than pooled.
    uploader.write_all(&[b'u'; 99_000]).await.unwrap();
    let r = get(p.addr, "/", None).await;
    assert_eq!(r.status, 200);
}

/// A client that sends one byte of a ten-byte body and stops gets 408 once
/// the service's request-body timeout passed, and its connection closes;
/// other requests are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_gets_408() {
    let whoami = Whoami::start("whoami-1");
    let mut cfg = ServicesConfig::single("web", &[(whoami.name.clone(), whoami.addr)]);
    cfg.services[0].timeouts.request_body = Some(Duration::from_millis(500));
    let p = TestProxy::start(cfg);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let start = Instant::now();
    s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nx")
        .await
        .unwrap();
    assert_eq!(get(p.addr, "/", None).await.status, 200, "others are served meanwhile");
    let r = read_reply(&mut s).await.expect("an answer to the stalled upload");
    let waited = start.elapsed();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(r.head.contains("connection: close"), "{}", r.head);
    assert!(waited >= Duration::from_millis(500), "answered after {waited:?}");
    assert!(closes(&mut s).await, "the connection closes after the 408");
}

/// A cookie naming `backend` of the service `web`.
fn cookie_for(p: &TestProxy, cfg: &ServicesConfig, backend: &str) -> String {
    let value = p
        .proxy
        .keyring()
        .load()
        .encode(
            "web",
            &Sticky {
                backend: backend.into(),
                issued_at: unix_now(),
            },
        )
        .unwrap();
    format!("{}={value}", cfg.services[0].cookie.name)
}

/// A backend that accepts requests and never answers: after the response
/// timeout a body-less GET moves to another backend (with a cookie naming
/// it), a POST gets 504, and both are counted on the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_gets_504_or_the_request_moves() {
    let hung = RawBackend::start("hung", Behaviour::Hang).await;
    let good = Whoami::start("good");
    let mut cfg = ServicesConfig::single("web", &[("hung".into(), hung.addr), (good.name.clone(), good.addr)]);
    cfg.limits.response_timeout = Duration::from_millis(500);
    let p = TestProxy::start(cfg.clone());
    let to_hung = cookie_for(&p, &cfg, "hung");

    let start = Instant::now();
    let r = get(p.addr, "/", Some(&to_hung)).await;
    assert_eq!((r.status.as_u16(), r.backend()), (200, "good"), "{}", r.body);
    assert!(
        r.cookie.is_some(),
        "the moved session gets a cookie naming its new backend"
    );
    assert!(start.elapsed() >= Duration::from_millis(500));

    let post = Request::post("/")
        .header(header::HOST, "x")
        .header(header::COOKIE, &to_hung)
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let start = Instant::now();
    let r = crate::harness::proxy::Client::connect(p.addr).await.send(post).await;
    assert_eq!(r.status, 504, "{}", r.body);
    let waited = start.elapsed();
    assert!(
        (Duration::from_millis(500)..Duration::from_secs(5)).contains(&waited),
        "{waited:?}"
    );
    let status = proxy_user::status::services(p.proxy.balancer());
    let hung_status = status[0].backends.iter().find(|b| b.name == "hung").unwrap();
    assert_eq!(hung_status.timeouts, 2);
}

/// An HTTP/2 client cancels its only stream (RST_STREAM) while the backend
/// has not answered: the connection still closes once it has been idle for
/// the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_http2_stream_lets_the_connection_idle_out() {
    let hung = RawBackend::start("hung", Behaviour::Hang).await;
    let mut cfg = ServicesConfig::single("web", &[("hung".into(), hung.addr)]);
    cfg.limits.idle_timeout = Duration::from_secs(1);
    let p = TestProxy::start(cfg);
    let (mut send, conn) = http2(p.addr).await;
    let req = Request::get(format!("http://{}/", p.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let pending = send.send_request(req);
    // Cancelled once the backend holds it.
    let cancelled = tokio::time::timeout(Duration::from_millis(300), pending).await;
    assert!(cancelled.is_err(), "the hung backend answered");
    let start = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(8), conn).await;
    assert!(
        closed.is_ok(),
        "the connection stayed open after its stream was cancelled"
    );
    assert!(start.elapsed() >= Duration::from_millis(500), "{:?}", start.elapsed());
    drop(send);
}
