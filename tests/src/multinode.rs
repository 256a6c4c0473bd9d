//! End-to-end tests on a real multi-node swarm (root; `cargo xtask test`):
//! one `dockerd` per network namespace (`harness::multinode`), and
//! swarm-sticky on each manager as that node's host service would run,
//! with eBPF steering, on the node's LAN address. The test's clients run
//! in the host namespace and connect only to the nodes' LAN addresses;
//! the overlays' address pool is fenced off there.
//!
//! * `tutorial.rs`: the tutorial on two managers, cookies good on both;
//! * `matrix.rs`: three managers and a worker, every issuer × replayer,
//!   and a manager with no local task (its anchor);
//! * `node_loss.rs`: a worker, then a manager, lost: their tasks held down
//!   at once, everyone else keeps their task;
//! * `partition.rs`: one manager of three cut off, then healed;
//! * `rolling.rs`: a rolling update under load through two managers;
//! * `rotation.rs`: a join-token rotation issued on another manager;
//! * `stack.rs`: swarm-sticky deployed as a Swarm stack, updated
//!   start-first under load, and removed;
//! * `updates.rs`: a rolling update seen precisely (`--resync 60`): drain
//!   at once, same-slot clients wait for their slot, changes within 1 s.

mod acme;
mod matrix;
mod node_loss;
mod partition;
mod rolling;
mod rotation;
mod stack;
mod tutorial;
mod updates;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use crate::harness::{
    client::Response,
    multinode::{
        Cluster, Node,
        proxy::{Entry, NodeProxy},
        service::Overlay,
    },
    swarm::{IMAGE, require_engine, test_image},
};

/// A cluster with the test image on every node (built on the host's
/// engine, which `cargo xtask test` provides).
fn cluster(managers: usize, workers: usize) -> Cluster {
    require_engine();
    test_image();
    let cluster = Cluster::new(managers, workers);
    cluster.load_image(IMAGE);
    cluster
}

/// A whoami answer (status 200 and `I'm <name>`): the name, else a
/// description of what came back.
fn answer(r: std::io::Result<Response>) -> Result<String, String> {
    match r {
        Ok(r) if r.status == 200 => r
            .whoami()
            .ok_or_else(|| format!("200 without a whoami body: {:?}", r.body)),
        Ok(r) => Err(format!("status {}: {:?}", r.status, r.body)),
        Err(e) => Err(format!("connection: {e}")),
    }
}

/// Cookie-less requests to `path` through `proxy` (a new connection each)
/// until one reaches a container `wanted` accepts; its cookie and the
/// container. Panics after 40 attempts.
fn pin(proxy: &impl Entry, path: &str, wanted: impl Fn(&str) -> bool) -> (String, String) {
    let mut seen = Vec::new();
    for _ in 0..40 {
        let r = proxy.get_path(path, None).expect("a cookie-less request");
        let name = r.whoami().unwrap_or_else(|| panic!("no whoami answer: {r:?}"));
        if wanted(&name) {
            let cookie = r.set_cookie().expect("a new session gets a cookie");
            return (cookie, name);
        }
        seen.push(name);
    }
    panic!(
        "40 new sessions through node{} never reached the container wanted: {seen:?}",
        proxy.node() + 1
    );
}

/// The containers that `n` cookie-less requests to `path` through `proxy`
/// reach (a new connection each).
fn spread(proxy: &impl Entry, path: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| answer(proxy.get_path(path, None)).unwrap_or_else(|e| panic!("node{}: {e}", proxy.node() + 1)))
        .collect()
}

/// Sends `n` requests with `cookie` to `path` through `proxy`; panics
/// unless every one reaches `container` and none gets a new cookie.
fn assert_sticks(proxy: &impl Entry, path: &str, cookie: &str, container: &str, n: usize) {
    for i in 0..n {
        let r = proxy.get_path(path, Some(cookie)).expect("a replay");
        assert_eq!(
            r.whoami().as_deref(),
            Some(container),
            "replay {i} through node{} left {container}: {r:?}",
            proxy.node() + 1
        );
        assert!(
            r.set_cookie().is_none(),
            "node{} re-issued a valid cookie (rejected it?): {r:?}",
            proxy.node() + 1
        );
    }
}

/// Waits until every proxy serves exactly `expected` for `service`;
/// returns the time the slowest took.
fn wait_all(proxies: &[&NodeProxy], service: &str, expected: &BTreeSet<String>, timeout: Duration) -> Duration {
    let start = Instant::now();
    for p in proxies {
        p.wait_containers(service, expected, timeout.saturating_sub(start.elapsed()));
    }
    start.elapsed()
}

/// Waits until the anchor of the overlay `net` runs on each of the
/// managers `nodes` (`node1`, …): from then on their namespace on it
/// stays while local tasks are replaced. Returns how long that took.
fn wait_anchors(manager: &Node, net: &Overlay, nodes: &[&str], timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let anchors = manager.docker(&[
            "service",
            "ls",
            "-q",
            "--filter",
            &format!("label=com.swarm-sticky.anchor.network={}", net.id),
        ]);
        let mut running: Vec<String> = anchors
            .lines()
            .flat_map(|a| {
                let ps = manager.docker(&[
                    "service",
                    "ps",
                    "--filter",
                    "desired-state=running",
                    "--format",
                    "{{.Node}} {{.CurrentState}}",
                    a,
                ]);
                ps.lines()
                    .filter(|l| l.contains(" Running"))
                    .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect();
        running.sort();
        if running == nodes {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "anchors of {} run on {running:?}, not {nodes:?}, after {timeout:?}",
            net.name
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
