//! HTTP correctness: streaming bodies, upgrades, HTTP/2, HTTP/1.0, limits,
//! forwarding headers.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, header};
use proxy_user::services::ServicesConfig;
use sha2::{Digest as _, Sha256};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{
    backend::{pairs, streaming_backend, whoamis},
    proxy::{Client, TestProxy, WAIT, get, http1, http2, read_reply, untrusted_and_trusted, websocket},
};

/// Reads from a raw socket until EOF or `WAIT`, as text.
async fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A 10 MiB POST reaches the backend intact (SHA-256 compared).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_10_mib_arrives_intact() {
    let backends = whoamis(1);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let body: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let digest: String = Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
    let req = Request::post("/upload")
        .header(header::HOST, "x")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let r = Client::connect(p.addr).await.send(req).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains(&format!("body-bytes: {}", 10 * 1024 * 1024)),
        "{}",
        r.body
    );
    assert!(r.body.contains(&format!("body-sha256: {digest}")), "{}", r.body);
}

/// A slow streaming response is not buffered: the client gets the first
/// chunk while the backend has not sent the last one yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_response_is_not_buffered() {
    let (addr, mut requests) = streaming_backend().await;
    let p = TestProxy::start(ServicesConfig::single("web", &[("stream".into(), addr)]));
    let mut send = http1(p.addr).await;
    let req = Request::get("/")
        .header(header::HOST, "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp_fut = tokio::spawn(async move { send.send_request(req).await.unwrap() });
    let chunks = tokio::time::timeout(WAIT, requests.recv()).await.unwrap().unwrap();
    chunks.send(Bytes::from_static(b"first")).await.unwrap();
    let resp = tokio::time::timeout(WAIT, resp_fut).await.unwrap().unwrap();
    let mut body = resp.into_body();
    let frame = tokio::time::timeout(WAIT, body.frame())
        .await
        .expect("first chunk before the last is sent");
    assert_eq!(frame.unwrap().unwrap().into_data().unwrap(), "first");
    chunks.send(Bytes::from_static(b"last")).await.unwrap();
    drop(chunks);
    let rest = tokio::time::timeout(WAIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "last");
}

/// WebSocket through the proxy: the upgrade gets the sticky cookie and
/// messages echo both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo() {
    let backends = whoamis(2);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let (mut ws, resp) = websocket(p.addr).await;
    assert!(
        resp.headers().get(header::SET_COOKIE).is_some(),
        "the upgrade is sticky"
    );
    for i in 0..10 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let echo = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echo, Message::text(format!("hello {i}")));
    }
    ws.close(None).await.unwrap();
}

/// An HTTP/2 (h2c prior knowledge) client: parallel cookie-less streams of
/// one connection converge on one backend, and the cookie sticks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_client() {
    let backends = whoamis(3);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let (mut send, _conn) = http2(p.addr).await;
    let uri = format!("http://{}/", p.addr);
    // Ten parallel first streams, as a page's assets would be.
    let streams: Vec<_> = (0..10)
        .map(|_| {
            let mut send = send.clone();
            let req = Request::get(uri.as_str()).body(Full::new(Bytes::new())).unwrap();
            tokio::spawn(async move { read_reply(send.send_request(req).await.unwrap()).await })
        })
        .collect();
    let mut names = Vec::new();
    let mut cookie = None;
    for s in streams {
        let r = tokio::time::timeout(WAIT, s).await.unwrap().unwrap();
        assert_eq!(r.status, 200);
        cookie = cookie.or(r.cookie.clone());
        names.push(r.backend().to_owned());
    }
    let req = Request::get(uri.as_str()).body(Full::new(Bytes::new())).unwrap();
    names.push(
        read_reply(send.send_request(req).await.unwrap())
            .await
            .backend()
            .to_owned(),
    );
    assert!(names.iter().all(|n| *n == names[0]), "{names:?}");
    let cookie = cookie.unwrap();
    let fresh = get(p.addr, "/", Some(&cookie)).await;
    assert_eq!(fresh.backend(), names[0]);
}

/// A slowloris client (dribbling header bytes, never finishing the head)
/// gets 408 after the header timeout, while other clients are served
/// meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_gets_408_without_starving_others() {
    let backends = whoamis(1);
    let mut cfg = ServicesConfig::single("web", &pairs(&backends));
    cfg.limits.header_read_timeout = Duration::from_millis(1000);
    let p = TestProxy::start_with(cfg, proxy_user::cookie::Keyring::random(), 1);
    let slow = TcpStream::connect(p.addr).await.unwrap();
    let (mut slow_read, mut slow_write) = slow.into_split();
    slow_write.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let dribble = tokio::spawn(async move {
        for i in 0..100 {
            if slow_write
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let started = std::time::Instant::now();
    let mut c = Client::connect(p.addr).await;
    for _ in 0..20 {
        assert_eq!(c.get("/", None).await.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "others were served while the slow head was pending"
    );
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, slow_read.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    dribble.abort();
}

/// A request head over the limit gets 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_head_gets_431() {
    let backends = whoamis(1);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let big = "a".repeat(100 * 1024);
    let head = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(head.as_bytes()).await;
    let answer = read_all(&mut s).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{:?}",
        &answer[..answer.len().min(80)]
    );
}

/// HTTP/1.0 clients are served, and a missing Host is filled in for the
/// HTTP/1.1 upstream request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_client() {
    let backends = whoamis(1);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let answer = read_all(&mut s).await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer:?}");
    assert!(answer.contains("I'm whoami-1"));
    let host = format!("host: {}", backends[0].addr);
    assert!(
        answer.to_ascii_lowercase().contains(&host),
        "HTTP/1.1 upstream request gets a Host: {answer}"
    );
}

/// Upstream requests: hop-by-hop headers (and the names listed in
/// Connection) stripped, our cookie removed but others kept, Host kept,
/// forwarding headers added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_headers() {
    let backends = whoamis(1);
    let cfg = ServicesConfig::single("web", &pairs(&backends));
    let ours = cfg.services[0].cookie.name.clone();
    let p = TestProxy::start(cfg);
    let cookie = get(p.addr, "/", None).await.cookie.unwrap();
    let req = Request::get("/h")
        .header(header::HOST, "shop.example:8080")
        .header(header::CONNECTION, "keep-alive, X-Secret")
        .header("x-secret", "1")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header(header::COOKIE, format!("a=1; {cookie}; b=2"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = Client::connect(p.addr).await.send(req).await;
    let body = r.body.to_ascii_lowercase();
    assert!(body.contains("host: shop.example:8080"), "{body}");
    assert!(
        !body.contains("x-secret") && !body.contains("keep-alive:") && !body.contains("\nte:"),
        "{body}"
    );
    assert!(body.contains("cookie: a=1; b=2"), "{body}");
    assert!(!body.contains(&ours.to_ascii_lowercase()), "{body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1"), "{body}");
    assert!(body.contains("x-forwarded-proto: http"), "{body}");
    assert!(body.contains("x-forwarded-host: shop.example:8080"), "{body}");
    // RFC 7239 §5.3: `host` is the Host header as received, port included,
    // the same value as X-Forwarded-Host.
    assert!(
        body.contains("forwarded: for=127.0.0.1;proto=http;host=\"shop.example:8080\""),
        "{body}"
    );
    assert!(r.cookie.is_none());
}

/// Secure is set for a trusted `X-Forwarded-Proto: https`, not for an
/// untrusted peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_from_trusted_proxy_only() {
    let backends = whoamis(1);
    let (untrusted, trusted) = untrusted_and_trusted(&pairs(&backends));
    let req = || {
        Request::get("/")
            .header(header::HOST, "x")
            .header("x-forwarded-proto", "https")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let set_cookie =
        |r: &crate::harness::proxy::Reply| r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    let r = Client::connect(trusted.addr).await.send(req()).await;
    assert!(set_cookie(&r).ends_with("; Secure"), "{}", set_cookie(&r));
    let r = Client::connect(untrusted.addr).await.send(req()).await;
    assert!(!set_cookie(&r).contains("Secure"), "{}", set_cookie(&r));
    assert!(r.body.to_ascii_lowercase().contains("x-forwarded-proto: http\n"));
}

/// SIGTERM drain: once workers stop accepting, the request in flight still
/// completes with its whole body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_request() {
    let (addr, mut requests) = streaming_backend().await;
    let p = TestProxy::start(ServicesConfig::single("web", &[("stream".into(), addr)]));
    let proxy_addr = p.addr;
    let mut send = http1(proxy_addr).await;
    let req = Request::get("/")
        .header(header::HOST, "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp_fut = tokio::spawn(async move { send.send_request(req).await.unwrap() });
    let chunks = tokio::time::timeout(WAIT, requests.recv()).await.unwrap().unwrap();
    chunks.send(Bytes::from_static(b"first ")).await.unwrap();
    let mut body = tokio::time::timeout(WAIT, resp_fut).await.unwrap().unwrap().into_body();
    let first = tokio::time::timeout(WAIT, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first ");
    let stopping = tokio::task::spawn_blocking(move || p.stop());
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(proxy_addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting after stop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    chunks.send(Bytes::from_static(b"last")).await.unwrap();
    drop(chunks);
    let rest = tokio::time::timeout(WAIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "last");
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
}

/// An HTTP/2 connection without requests is closed after the idle timeout
/// (gracefully, with GOAWAY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connection_is_closed() {
    let backends = whoamis(1);
    let mut cfg = ServicesConfig::single("web", &pairs(&backends));
    cfg.limits.idle_timeout = Duration::from_millis(300);
    let p = TestProxy::start(cfg);
    let (mut send, conn) = http2(p.addr).await;
    let req = Request::get(format!("http://{}/", p.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        read_reply(send.send_request(req).await.unwrap()).await.backend(),
        "whoami-1"
    );
    let started = std::time::Instant::now();
    tokio::time::timeout(WAIT, conn)
        .await
        .expect("connection closed by the proxy")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200), "closed too early");
}
