//! What the proxy believes of a request: one authority for routing and
//! for what the backend sees, normalised paths for routing, no spoofable
//! or ambiguous headers from untrusted clients, upgrades only where a
//! service allows them, and an access log that escapes what clients sent
//! and records every request, even those cancelled or refused early.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, header};
use proxy_user::{
    access_log::{AccessLog, AccessLogConfig, AccessLogFormat},
    balance::Balancer,
    cookie::{Keyring, KeyringHandle},
    proxy::Proxy,
    services::ServicesConfig,
};
use tokio::{io::AsyncWriteExt as _, net::TcpStream};

use crate::harness::{
    backend::{Whoami, pairs, whoamis},
    proxy::{Client, TestProxy, WAIT, http2, read_reply, untrusted_and_trusted},
    raw::{Behaviour, RawBackend, closes, exchange},
};

/// Services `a` (host a.example) and `b` (host b.example), one whoami each.
fn two_hosts(a: &Whoami, b: &Whoami) -> ServicesConfig {
    let text = format!(
        "[[services]]\nname = 'a'\nrule = {{ host = 'a.example' }}\nbackends = [{{ name = '{}', url = 'http://{}' }}]\n\
         [[services]]\nname = 'b'\nrule = {{ host = 'b.example' }}\nbackends = [{{ name = '{}', url = 'http://{}' }}]\n",
        a.name, a.addr, b.name, b.addr
    );
    ServicesConfig::from_toml_str(&text).unwrap()
}

/// An absolute-form target names the host (RFC 9112 §3.2.2): it routes the
/// request, and the backend's Host and both forwarding headers say the
/// same, without the userinfo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_target_is_the_one_authority() {
    let (a, b) = (Whoami::start("whoami-a"), Whoami::start("whoami-b"));
    let p = TestProxy::start(two_hosts(&a, &b));
    let r = exchange(
        p.addr,
        b"GET http://user:pw@b.example/x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let body = r.body.to_ascii_lowercase();
    assert!(body.starts_with("i'm whoami-b"), "{body}");
    assert!(body.contains("\nhost: b.example\n"), "{body}");
    assert!(body.contains("x-forwarded-host: b.example\n"), "{body}");
    assert!(body.contains("host=\"b.example\""), "{body}");
    assert!(!body.contains("a.example") && !body.contains("user"), "{body}");
}

/// A trailing dot is the same host; the port is kept for the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_dot_host_matches_its_rule() {
    let (a, b) = (Whoami::start("whoami-a"), Whoami::start("whoami-b"));
    let p = TestProxy::start(two_hosts(&a, &b));
    let r = exchange(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: A.Example.:8080\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let body = r.body.to_ascii_lowercase();
    assert!(body.starts_with("i'm whoami-a"), "{body}");
    assert!(body.contains("\nhost: a.example:8080\n"), "{body}");
}

/// Several Host headers, HTTP/1.1 without Host, and hosts that are not
/// `host[:port]` get 400, and the connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorities_get_400() {
    let (a, b) = (Whoami::start("whoami-a"), Whoami::start("whoami-b"));
    let p = TestProxy::start(two_hosts(&a, &b));
    let cases: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: u@a.example\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.example:99999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.example/evil\r\n\r\n",
    ];
    for raw in cases {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        let r = crate::harness::raw::read_reply(&mut s).await.unwrap();
        assert_eq!(r.status, 400, "{}: {r:?}", String::from_utf8_lossy(raw));
        assert!(closes(&mut s).await, "{}", String::from_utf8_lossy(raw));
    }
}

/// HTTP/2: a Host that differs from `:authority` is malformed (RFC 9113
/// §8.3.1); one that agrees is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_host_must_agree_with_the_authority() {
    let (a, b) = (Whoami::start("whoami-a"), Whoami::start("whoami-b"));
    let p = TestProxy::start(two_hosts(&a, &b));
    let (mut send, _conn) = http2(p.addr).await;
    for (host, want) in [("b.example", 400), ("a.example", 200)] {
        let req = Request::get("http://a.example/")
            .header(header::HOST, host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = tokio::time::timeout(WAIT, send.send_request(req))
            .await
            .unwrap()
            .unwrap();
        let r = read_reply(resp).await;
        assert_eq!(r.status, want, "Host {host}: {}", r.body);
    }
}

/// An untrusted client's client-address claims and header names with `_`
/// (which CGI/WSGI backends fold into `-`) never reach the backend; a
/// trusted proxy's claims do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofable_and_underscore_headers_are_dropped() {
    let backends = whoamis(1);
    let (untrusted, trusted) = untrusted_and_trusted(&pairs(&backends));
    let req = || {
        Request::post("/")
            .header(header::HOST, "x")
            .header("x-real-ip", "203.0.113.66")
            .header("true-client-ip", "203.0.113.66")
            .header("x-client-ip", "203.0.113.66")
            .header("x-forwarded-port", "1")
            .header("x-forwarded-prefix", "/evil")
            .header("transfer_encoding", "chunked")
            .header("x_user", "admin")
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap()
    };
    let r = Client::connect(untrusted.addr).await.send(req()).await;
    let body = r.body.to_ascii_lowercase();
    assert_eq!(r.status, 200, "{body}");
    assert!(body.contains("body-bytes: 5"), "the body kept its framing: {body}");
    for gone in [
        "x-real-ip",
        "true-client-ip",
        "x-client-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "transfer_encoding",
        "x_user",
        "203.0.113.66",
    ] {
        assert!(!body.contains(gone), "{gone} reached the backend: {body}");
    }
    let body = Client::connect(trusted.addr)
        .await
        .send(req())
        .await
        .body
        .to_ascii_lowercase();
    assert!(body.contains("x-real-ip: 203.0.113.66"), "{body}");
    assert!(!body.contains("x_user"), "{body}");
}

/// `Upgrade` to a protocol the service does not allow is dropped (the
/// request is forwarded as a plain one); a service may allow more than
/// `websocket`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_upgrades_are_forwarded() {
    let backends = whoamis(1);
    let strict = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let mut cfg = ServicesConfig::single("web", &pairs(&backends));
    cfg.services[0].upgrades.push("foo".into());
    let lenient = TestProxy::start(cfg);
    let raw = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n";
    let r = exchange(strict.addr, raw).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.body.to_ascii_lowercase().contains("upgrade: foo"), "{}", r.body);
    let r = exchange(lenient.addr, raw).await.unwrap();
    assert!(r.body.to_ascii_lowercase().contains("upgrade: foo"), "{}", r.body);
}

/// A backend that switches protocols without being asked gets the client
/// a 502, not a tunnel; CONNECT gets 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unasked_101_is_502_and_connect_is_405() {
    let rogue = RawBackend::start("rogue", Behaviour::SwitchUnasked).await;
    let p = TestProxy::start(ServicesConfig::single("web", &[("rogue".into(), rogue.addr)]));
    let r = exchange(p.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert_eq!(r.status, 502, "{r:?}");
    let r = exchange(p.addr, b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(rogue.connections(), 1, "CONNECT never reached a backend");
}

/// The access log writes what clients sent with non-printable and
/// non-ASCII bytes escaped, a 499 line for a request the client gave up
/// on, and a line for a request hyper refused while parsing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_escapes_and_misses_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let hung = RawBackend::start("hung", Behaviour::Hang).await;
    let web = Whoami::start("whoami-web");
    let text = format!(
        "[[services]]\nname = 'hang'\nrule = {{ path_prefix = '/hang' }}\nbackends = [{{ name = 'hung', url = 'http://{}' }}]\n\
         [[services]]\nname = 'web'\nbackends = [{{ name = '{}', url = 'http://{}' }}]\n",
        hung.addr, web.name, web.addr
    );
    let log = AccessLog::open(&AccessLogConfig {
        format: AccessLogFormat::Json,
        file: Some(path.clone()),
    })
    .unwrap();
    let balancer = Arc::new(Balancer::new(ServicesConfig::from_toml_str(&text).unwrap()));
    let proxy = Proxy::new(
        balancer,
        KeyringHandle::new(Keyring::random()),
        log,
        proxy_user::proxy::Edge::default(),
    );
    let p = TestProxy::serve(proxy, 1);

    let r = exchange(
        p.addr,
        b"GET /caf\xc3\xa9\xe2\x80\xae HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let r = exchange(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: a\xe2\x80\xaeb\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400, "{r:?}");
    // Given up on: the client closes while the backend has not answered.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    wait_for(|| hung.connections() == 1).await;
    drop(s);
    // Refused by the parser.
    let r = exchange(p.addr, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(r.status, 400);

    let lines = wait_for_lines(&path, 4).await;
    let raw = std::fs::read(&path).unwrap();
    assert!(
        raw.iter().all(|&b| b == b'\n' || (0x20..0x7f).contains(&b)),
        "raw bytes in the log: {}",
        String::from_utf8_lossy(&raw)
    );
    let entries: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |status: u64, what: &str| {
        entries
            .iter()
            .find(|e| e["status"] == status && e.to_string().contains(what))
            .unwrap_or_else(|| panic!("no {status} line with {what}: {lines:?}"))
    };
    assert_eq!(find(200, "caf")["path"], "/caf\\xc3\\xa9\\xe2\\x80\\xae");
    assert_eq!(find(400, "xaeb")["host"], "a\\xe2\\x80\\xaeb");
    assert_eq!(find(499, "/hang")["service"], "hang");
    assert_eq!(find(400, "\"method\":\"-\"")["path"], "-");
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("condition within the wait");
}

async fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let waited = tokio::time::timeout(WAIT, async {
        loop {
            lines = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
            if lines.len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{n} access log lines expected, got {lines:?}");
    lines
}
