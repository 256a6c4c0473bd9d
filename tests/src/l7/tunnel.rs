//! Upgraded connections through an in-process proxy on loopback: bytes
//! both ways (SHA-256), backpressure, FIN, half-close and RST, many short
//! connections, the idle timeout, the connection cap and the drain.

use std::{
    io::{Read as _, Write as _},
    time::{Duration, Instant},
};

use proxy_user::{cookie::Keyring, proxy::Proxy, services::ServicesConfig};

use crate::harness::{
    proxy::TestProxy,
    tunnel::{EARLY, RawBackend, Seen, scenarios, upgrade},
};

/// A proxy in front of one [`RawBackend`].
fn setup() -> (TestProxy, RawBackend) {
    let backend = RawBackend::start("127.0.0.1:0");
    let services = ServicesConfig::single("ws", &[("b1".to_owned(), backend.addr)]);
    let proxy = Proxy::standalone(services, Keyring::random());
    (TestProxy::serve(proxy, 2), backend)
}

/// 1 MiB and 100 MiB echo intact (SHA-256), with a client half-close;
/// the backend's tunnel counters count both directions.
#[test]
fn tunnel_echo_1_mib_and_100_mib() {
    let (p, _b) = setup();
    scenarios::echo(p.addr, 1 << 20);
    scenarios::echo(p.addr, 100 << 20);
    // The counters are added when each tunnel task ends, just after the
    // client saw its EOF. Down also carries the backend's early bytes.
    let up = (1u64 << 20) + (100 << 20);
    let down = up + 2 * EARLY.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = proxy_user::status::services(p.proxy.balancer());
        let b = &status[0].backends[0];
        if (b.tunnel_bytes_up, b.tunnel_bytes_down) == (up, down) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tunnel bytes up {} down {}, want {up} and {down}",
            b.tunnel_bytes_up,
            b.tunnel_bytes_down
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A paused reader on either side stalls the writer; nothing is lost.
#[test]
fn tunnel_slow_readers_stall_writers() {
    let (p, b) = setup();
    scenarios::slow_backend_reader(p.addr, &b);
    scenarios::slow_client_reader(p.addr, &b);
}

/// FIN, half-close and RST propagate both ways.
#[test]
fn tunnel_close_half_close_and_reset_propagate() {
    let (p, b) = setup();
    scenarios::client_close_and_reset(p.addr, &b);
    scenarios::backend_close_and_reset(p.addr);
    scenarios::backend_half_close(p.addr, &b);
}

/// 1,000 short upgraded connections all echo.
#[test]
fn tunnel_many_short_connections() {
    let (p, _b) = setup();
    scenarios::many_short(p.addr, 1000);
}

/// A tunnel with no byte either way for the idle timeout is closed on both
/// sides, and not before.
#[test]
fn tunnel_idle_timeout_closes_both_sides() {
    let backend = RawBackend::start("127.0.0.1:0");
    let mut services = ServicesConfig::single("ws", &[("b1".to_owned(), backend.addr)]);
    services.limits.idle_timeout = Duration::from_millis(1000);
    let p = TestProxy::serve(Proxy::standalone(services, Keyring::random()), 1);
    let (mut client, _) = upgrade(p.addr, "/watch", b"");
    let start = Instant::now();
    let seen = backend
        .seen
        .recv_timeout(Duration::from_secs(10))
        .expect("the backend saw the idle close");
    assert_eq!(seen, Seen::Eof);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "closed {:?} after the upgrade, before the idle timeout",
        start.elapsed()
    );
    let mut buf = [0u8; 8];
    assert_eq!(client.read(&mut buf).expect("read"), 0, "the client sees EOF too");
}

/// An open tunnel holds its connection's slot: with one worker capped at
/// one connection, a second client is served only once the first closes.
#[test]
fn tunnel_counts_under_the_connection_cap() {
    let backend = RawBackend::start("127.0.0.1:0");
    let services = ServicesConfig::single("ws", &[("b1".to_owned(), backend.addr)]);
    let p = TestProxy::serve_capped(Proxy::standalone(services, Keyring::random()), 1, 1);
    let target = p.addr;
    let (first, _) = upgrade(target, "/echo", b"");
    let (tx, rx) = std::sync::mpsc::channel();
    let second = std::thread::spawn(move || {
        let r = upgrade(target, "/echo", b"");
        let _ = tx.send(());
        r
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "a second connection was served while the only slot was taken"
    );
    drop(first);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("served once the slot is free");
    drop(second.join().expect("second client"));
}

/// On stop (SIGTERM), an open tunnel keeps working for the grace period,
/// then it is closed and the workers exit.
#[test]
fn tunnel_is_drained_like_a_request() {
    let backend = RawBackend::start("127.0.0.1:0");
    let services = ServicesConfig::single("ws", &[("b1".to_owned(), backend.addr)]);
    let p = TestProxy::serve(Proxy::standalone(services, Keyring::random()), 1);
    let target = p.addr;
    let (mut conn, _) = upgrade(target, "/echo", b"");
    let stopping = std::thread::spawn(move || p.stop());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(target).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    conn.write_all(b"still").expect("write during the drain");
    let mut got = [0u8; 5];
    conn.read_exact(&mut got).expect("echo during the drain");
    assert_eq!(&got, b"still");
    stopping.join().expect("the workers stopped after the grace period");
    let mut rest = Vec::new();
    // After the grace period the tunnel is closed (EOF or reset).
    let _ = conn.read_to_end(&mut rest);
    assert!(rest.is_empty(), "bytes after the drain: {}", rest.len());
}
