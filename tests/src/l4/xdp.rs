//! XDP: per-port counters match what the client sent, and the SYN guard
//! drops above its rate and passes below it.
//!
//! How packets count: every TCP packet towards a published port that
//! arrives on the interface is counted once, handshake included — a
//! request on a fresh connection is SYN, ACK, the request segment, the ACKs
//! of the response, FIN and the last ACK, exactly as the client's
//! netfilter OUTPUT counter sees them. Bytes are counted from the Ethernet
//! header on (netfilter counts from the IP header: 14 bytes less each).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::{PORT, admin, backend, start};
use crate::harness::{
    client::{admin_status, get},
    netns::TestNet,
};

/// (packets, bytes) of the client's OUTPUT rule for the published port.
fn netfilter_counts(net: &TestNet) -> (u64, u64) {
    let out = net.client.exec("iptables", &["-L", "OUTPUT", "-v", "-n", "-x"]);
    let line = out
        .lines()
        .find(|l| l.contains(&format!("dpt:{PORT}")))
        .expect("the counting rule");
    let mut cols = line.split_whitespace();
    let pkts = cols.next().and_then(|c| c.parse().ok()).expect("packets column");
    let bytes = cols.next().and_then(|c| c.parse().ok()).expect("bytes column");
    (pkts, bytes)
}

/// (packets, bytes, syns, syns dropped) of the published port, from the admin API.
fn xdp_counts(net: &TestNet) -> (u64, u64, u64, u64) {
    let status = net.server.run(|| admin_status(admin(0))).expect("admin status");
    let ports = status["dataplane"]["xdp_ports"].as_array().expect("xdp_ports").clone();
    let p = ports
        .iter()
        .find(|p| p["port"] == PORT)
        .expect("counters for the published port");
    let n = |k: &str| p[k].as_u64().expect("counter");
    (n("packets"), n("bytes"), n("syns"), n("syns_dropped"))
}

/// 50 requests on fresh connections: the XDP packet and byte counters equal
/// the client's netfilter counters, and there is one SYN per connection.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn counters_equal_the_packets_sent() {
    let net = TestNet::new();
    let _backend = backend(&net);
    let mut proxy = start(
        &net,
        0,
        &[
            "--listen",
            "0.0.0.0:8080",
            "--workers",
            "2",
            "--steering",
            "ebpf",
            "--xdp-iface",
            &net.server_if,
        ],
    );
    proxy.wait_ready();
    net.client
        .exec("iptables", &["-A", "OUTPUT", "-p", "tcp", "--dport", &PORT.to_string()]);

    let target = SocketAddr::new(net.server_ip(false), PORT);
    let ok = net.client.run(move || {
        (0..50)
            .filter(|_| matches!(get(target, "/"), Ok(r) if r.status == 200))
            .count()
    });
    assert_eq!(ok, 50);

    // The last ACKs may still be on their way: wait (bounded) for them.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (pkts, bytes) = netfilter_counts(&net);
        let (xp, xb, syns, dropped) = xdp_counts(&net);
        if xp == pkts || Instant::now() > deadline {
            assert_eq!(xp, pkts, "XDP packets vs the client's netfilter count");
            assert_eq!(xb, bytes + 14 * pkts, "XDP bytes = IP bytes + Ethernet headers");
            assert_eq!(syns, 50, "one SYN per connection");
            assert_eq!(dropped, 0);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let series = format!(r#"swarm_sticky_xdp_syns_total{{port="{PORT}"}}"#);
    let syns = net
        .server
        .run(move || crate::harness::client::metric(admin(0), &series));
    assert_eq!(syns, Some(50.0), "/metrics shows the XDP counters too");
}

/// With a guard of 20 SYN/s and bursts of 5, a burst of 40 connection
/// attempts loses most of its SYNs; afterwards 10 connections at 10/s all
/// pass and nothing more is dropped.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn syn_guard_drops_above_its_rate_and_passes_below() {
    let net = TestNet::new();
    let _backend = backend(&net);
    let args = [
        "--listen",
        "0.0.0.0:8080",
        "--workers",
        "2",
        "--steering",
        "ebpf",
        "--xdp-iface",
        &net.server_if,
        "--syn-rate",
        "20",
        "--syn-burst",
        "5",
    ];
    let mut proxy = start(&net, 0, &args);
    proxy.wait_ready();
    let target = SocketAddr::new(net.server_ip(false), PORT);

    // 40 non-blocking connects at once; keep the sockets until counted, and
    // close them before the kernel would retransmit a dropped SYN (1 s).
    let sockets = net.client.run(move || {
        (0..40)
            .map(|_| {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM.nonblocking(), None)
                    .expect("socket");
                let _ = s.connect(&target.into());
                s
            })
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + Duration::from_millis(800);
    let dropped = loop {
        let (_, _, syns, dropped) = xdp_counts(&net);
        if syns >= 40 || Instant::now() > deadline {
            break dropped;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(sockets);
    assert!(dropped >= 30, "only {dropped} of 40 burst SYNs dropped (burst 5, 20/s)");

    // Let the source's allowance recover, then stay below the rate.
    std::thread::sleep(Duration::from_millis(600));
    let ok = net.client.run(move || {
        (0..10)
            .filter(|_| {
                let r = get(target, "/");
                std::thread::sleep(Duration::from_millis(100));
                matches!(r, Ok(r) if r.status == 200)
            })
            .count()
    });
    assert_eq!(ok, 10, "connections below the rate must pass");
    let (_, _, _, after) = xdp_counts(&net);
    assert_eq!(after, dropped, "nothing dropped below the rate");
}
