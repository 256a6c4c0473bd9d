//! A manager join-token rotation issued on another manager than the one
//! that issued a client's cookie.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use super::{assert_sticks, cluster, pin, wait_all};
use crate::harness::multinode::{
    proxy::NodeProxy,
    service::{Overlay, SwarmService},
};

/// The resync period the instances run with (seconds): the join token is
/// re-read that often.
const RESYNC: &str = "2";

/// Three managers, a global service, swarm-sticky on each with
/// `--resync 2`. `docker swarm join-token --rotate manager` on node2:
/// every instance switches to the new derived key within one resync
/// period (plus a margin for the Raft replication and the call). A cookie
/// issued by node1 before the rotation still reaches its container through
/// node2 and node1 afterwards, re-signed with the new key; the re-signed
/// cookie and a session started by node2 after the rotation are honoured
/// as they are by node1 and node3.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn a_join_token_rotation_on_one_manager_keeps_sessions_on_all() {
    const ROTATED: &str = "manager join token was rotated";
    let cluster = cluster(3, 0);
    let manager = &cluster.nodes[0];
    let net = Overlay::create(manager, "rotnet");
    let svc = SwarmService::tutorial(manager, "rotating", &net, "/", &[], &["--mode", "global"]);
    let tasks = svc.wait_running(manager, 3, Duration::from_secs(60));
    let all: BTreeSet<String> = tasks.iter().map(|t| t.container.clone()).collect();
    let on = |node: &str| {
        tasks
            .iter()
            .find(|t| t.node == node)
            .unwrap_or_else(|| panic!("no task on {node}: {tasks:?}"))
            .container
            .clone()
    };

    let mut proxies: Vec<NodeProxy> = (0..3)
        .map(|i| NodeProxy::start(&cluster, i, &["--resync", RESYNC]))
        .collect();
    wait_all(
        &proxies.iter().collect::<Vec<_>>(),
        &svc.name,
        &all,
        Duration::from_secs(30),
    );
    // A session on node3's task, issued by node1: every replay below
    // crosses nodes.
    let (c0, pinned0) = pin(&proxies[0], "/", |c| c == on("node3"));
    assert_sticks(&proxies[1], "/", &c0, &pinned0, 5);

    cluster.nodes[1].docker(&["swarm", "join-token", "--rotate", "-q", "manager"]);
    let rotated = Instant::now();
    let period = Duration::from_secs(RESYNC.parse().expect("seconds"));
    for p in &mut proxies {
        p.proxy.wait_for_line(ROTATED, period * 5);
        let took = rotated.elapsed();
        eprintln!("rotation: node{} switched keys within {took:?}", p.node + 1);
        assert!(
            took < period + Duration::from_secs(2),
            "node{} took {took:?} to switch keys, more than one resync period ({period:?}) and a margin",
            p.node + 1
        );
    }

    let mut resigned = None;
    for p in [&proxies[1], &proxies[0]] {
        let r = p.get(Some(&c0)).expect("the old cookie after the rotation");
        assert_eq!(
            r.whoami().as_deref(),
            Some(pinned0.as_str()),
            "node{} moved the session across the rotation: {r:?}",
            p.node + 1
        );
        let c = r.set_cookie().unwrap_or_else(|| {
            panic!(
                "node{} did not re-sign a cookie of the previous key (still signing with it?)",
                p.node + 1
            )
        });
        resigned.get_or_insert(c);
    }
    let resigned = resigned.expect("node2 re-signed the cookie");
    for p in [&proxies[0], &proxies[2]] {
        assert_sticks(p, "/", &resigned, &pinned0, 5);
    }
    let (c1, pinned1) = pin(&proxies[1], "/", |c| c == on("node1"));
    for p in [&proxies[0], &proxies[2]] {
        assert_sticks(p, "/", &c1, &pinned1, 5);
    }
}
