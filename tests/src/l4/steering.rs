//! sk_lookup steering: every connection is served, nothing listens on the
//! published port, and connections spread evenly over the workers.

use std::net::SocketAddr;

use super::{PORT, admin, backend, start};
use crate::harness::{
    client::{accepted_per_worker, get, listening_ports},
    netns::TestNet,
};

const CONNECTIONS: u64 = 1000;
const WORKERS: u64 = 4;

fn spread_case(v6: bool) {
    let net = TestNet::new();
    let _backend = backend(&net);
    let listen = if v6 {
        format!("[::]:{PORT}")
    } else {
        format!("0.0.0.0:{PORT}")
    };
    let mut proxy = start(&net, 0, &["--listen", &listen, "--workers", "4", "--steering", "ebpf"]);
    proxy.wait_ready();

    let listening = net.server.run(listening_ports);
    assert!(
        !listening.contains(&PORT),
        "something listens on the published port: {listening:?}"
    );
    assert!(
        !listening.is_empty(),
        "the workers' own sockets should be listed: {listening:?}"
    );

    let target = SocketAddr::new(net.server_ip(v6), PORT);
    let failures: Vec<String> = net.client.run(move || {
        (0..CONNECTIONS)
            .filter_map(|i| match get(target, "/") {
                Ok(r) if r.status == 200 && r.body.starts_with("I'm w1") => None,
                Ok(r) => Some(format!("#{i}: status {} body {:?}", r.status, r.body)),
                Err(e) => Some(format!("#{i}: {e}")),
            })
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {CONNECTIONS} connections failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    let status = net
        .server
        .run(|| crate::harness::client::admin_status(admin(0)))
        .expect("admin status");
    assert_eq!(
        status["services"][0]["backends"][0]["name"], "w1",
        "the admin API shows the routing table"
    );
    let counts = net.server.run(|| accepted_per_worker(admin(0)));
    assert_eq!(counts.len() as u64, WORKERS);
    assert_eq!(counts.iter().sum::<u64>(), CONNECTIONS, "per-worker accepts {counts:?}");
    let steered = net
        .server
        .run(|| crate::harness::client::metric(admin(0), r#"swarm_sticky_steered_connections_total{result="worker"}"#));
    assert!(
        steered.is_some_and(|n| n >= CONNECTIONS as f64),
        "the eBPF steering counter in /metrics: {steered:?}"
    );
    let bound = CONNECTIONS as f64 / WORKERS as f64 * 1.25;
    for (w, c) in counts.iter().enumerate() {
        assert!(
            (*c as f64) <= bound,
            "worker {w} got {c} of {CONNECTIONS} (bound {bound}): {counts:?}"
        );
    }
}

/// 1,000 IPv4 connections from another namespace, none refused, none
/// handled by a socket on the published port, at most 1.25x the fair share
/// per worker.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn ipv4_connections_are_steered_and_spread() {
    spread_case(false);
}

/// The same over IPv6 (`[::]:8080`).
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn ipv6_connections_are_steered_and_spread() {
    spread_case(true);
}

/// A port the program does not own passes untouched: with steering active,
/// a plain listener on another port still gets its own connections.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn other_ports_pass_untouched() {
    let net = TestNet::new();
    let _backend = backend(&net);
    let mut proxy = start(
        &net,
        0,
        &["--listen", "0.0.0.0:8080", "--workers", "2", "--steering", "ebpf"],
    );
    proxy.wait_ready();
    let other = net
        .server
        .run(|| std::net::TcpListener::bind("0.0.0.0:8081").expect("bind 8081"));
    let target = SocketAddr::new(net.server_ip(false), 8081);
    let connected = net
        .client
        .run(move || std::net::TcpStream::connect(target).and_then(|s| s.local_addr()));
    let local = connected.expect("connect to the plain listener");
    let (_, peer) = other.accept().expect("the plain listener got the connection");
    assert_eq!(peer, local);
    let steered = net.server.run(|| accepted_per_worker(admin(0)));
    assert_eq!(
        steered.iter().sum::<u64>(),
        0,
        "a worker took a connection for port 8081"
    );
}

/// A published address that another program listens on is refused:
/// steering would silently take that program's connections.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn an_address_in_use_is_refused() {
    let net = TestNet::new();
    let _other = net
        .server
        .run(|| std::net::TcpListener::bind("0.0.0.0:8080").expect("bind 8080"));
    let mut proxy = start(&net, 0, &["--listen", "0.0.0.0:8080", "--steering", "ebpf"]);
    let status = proxy.wait_exit(std::time::Duration::from_secs(20));
    assert!(!status.success());
    assert!(proxy.stderr().contains("0.0.0.0:8080 is in use"), "{}", proxy.stderr());
}

/// The forwarding headers name the client as the proxy saw it: a client in
/// its own namespace, whose address differs from the proxy's (on loopback
/// both are 127.0.0.1, so a test there cannot tell them apart).
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn forwarding_headers_name_the_client() {
    let net = TestNet::new();
    let _backend = backend(&net);
    let (any4, any6) = (format!("0.0.0.0:{PORT}"), format!("[::]:{PORT}"));
    let mut proxy = start(&net, 0, &["--listen", &any4, "--listen", &any6, "--steering", "ebpf"]);
    proxy.wait_ready();
    for v6 in [false, true] {
        let target = SocketAddr::new(net.server_ip(v6), PORT);
        let (client, forwarded) = if v6 {
            (net.client_v6.to_string(), format!("for=\"[{}]\"", net.client_v6))
        } else {
            (net.client_v4.to_string(), format!("for={}", net.client_v4))
        };
        let r = net
            .client
            .run(move || crate::harness::client::request(target, "GET", "/", &[("X-Forwarded-For", "203.0.113.7")]))
            .expect("request from the client namespace");
        let body = r.body.to_ascii_lowercase();
        assert!(body.starts_with("i'm w1"), "{body}");
        assert!(
            body.contains(&format!("x-forwarded-for: {client}\n")),
            "an untrusted client's own X-Forwarded-For is replaced by its address: {body}"
        );
        assert!(body.contains(&format!("forwarded: {forwarded};proto=http;")), "{body}");
        assert!(!body.contains("203.0.113.7"), "{body}");
    }
}
