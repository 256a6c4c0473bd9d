//! The classic tutorial as written, on two managers: an overlay network,
//! a global whoami service with the four Traefik v1 labels, and
//! swarm-sticky on both managers in place of Traefik.

use std::{collections::BTreeSet, time::Duration};

use super::{assert_sticks, cluster, pin, spread, wait_all};
use crate::harness::multinode::{
    proxy::NodeProxy,
    service::{Overlay, SwarmService},
};

/// Two managers, one task on each (global service). Both instances serve
/// both tasks (each reaches the other node's over the overlay), and
/// cookie-less clients spread over both through either manager. With no
/// `--cookie-key-file`, both derive the cookie key from the swarm's
/// manager join token: a cookie issued through one manager reaches the
/// same container through the other, 100 times out of 100, both ways and
/// for both tasks.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn the_tutorial_on_two_managers_shares_sessions() {
    let cluster = cluster(2, 0);
    let manager = &cluster.nodes[0];
    let net = Overlay::create(manager, "whoaminet");
    let svc = SwarmService::tutorial(manager, "whoami-service", &net, "/", &[], &["--mode", "global"]);
    let tasks = svc.wait_running(manager, 2, Duration::from_secs(60));
    let nodes: BTreeSet<&str> = tasks.iter().map(|t| t.node.as_str()).collect();
    assert_eq!(nodes.len(), 2, "a global service runs a task on each node: {tasks:?}");
    let containers: BTreeSet<String> = tasks.iter().map(|t| t.container.clone()).collect();

    let proxies = [NodeProxy::start(&cluster, 0, &[]), NodeProxy::start(&cluster, 1, &[])];
    for p in &proxies {
        assert!(
            p.proxy
                .stderr()
                .contains("cookie key derived from the swarm's manager join token"),
            "node{} did not derive its key from the join token:\n{}",
            p.node + 1,
            p.proxy.stderr()
        );
    }
    let took = wait_all(
        &[&proxies[0], &proxies[1]],
        &svc.name,
        &containers,
        Duration::from_secs(30),
    );
    eprintln!("both managers served both tasks {took:?} after the second one was ready");

    for p in &proxies {
        let seen = spread(p, "/", 8);
        assert_eq!(
            seen,
            containers,
            "cookie-less requests through node{} reached {seen:?}, not every task",
            p.node + 1
        );
    }
    for (issuer, replayer) in [(0, 1), (1, 0)] {
        for container in &containers {
            let (cookie, pinned) = pin(&proxies[issuer], "/", |c| c == container);
            assert_sticks(&proxies[replayer], "/", &cookie, &pinned, 100);
        }
    }
}
