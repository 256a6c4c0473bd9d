//! A node lost: first a worker (its dockerd killed as in a crash), then a
//! manager (its dockerd and its swarm-sticky). Swarm marks a lost node
//! `down` after about 10 s but keeps listing its tasks as running (desired
//! state `shutdown`); swarm-sticky holds them down with the reason, so the
//! clients pinned there fail over at once, and the clients of the
//! surviving tasks keep their backend through every remaining manager.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::{assert_sticks, cluster, pin};
use crate::harness::multinode::{
    Cluster, Node,
    proxy::NodeProxy,
    service::{Overlay, SwarmService, Task},
};

/// The connect timeout a pinned client would wait for a task whose node is
/// gone, if the task were still taken for alive.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until `manager`'s API says node `name` is `down`; returns when.
fn wait_node_down(manager: &Node, name: &str, timeout: Duration) -> Instant {
    let start = Instant::now();
    loop {
        let state = manager.try_docker(
            &["node", "inspect", "-f", "{{.Status.State}}", name],
            Duration::from_secs(10),
        );
        if state.as_deref() == Ok("down") {
            return Instant::now();
        }
        assert!(
            start.elapsed() < timeout,
            "Swarm did not mark {name} down within {timeout:?}: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every proxy in `proxies` shows the task running in
/// `container` `down` with a reason naming `node`.
fn wait_down(proxies: &[&NodeProxy], service: &str, container: &str, node: &str, timeout: Duration) {
    let start = Instant::now();
    for p in proxies {
        loop {
            let backends = p.backends(service);
            let b = backends.iter().find(|b| b.container == container);
            if b.is_some_and(|b| b.state == "down" && b.reason.contains(node)) {
                break;
            }
            assert!(
                start.elapsed() < timeout,
                "node{} does not show {container} (on {node}) down with the reason after {timeout:?}: {backends:?}",
                p.node + 1
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The proxies still running.
fn live(proxies: &[Option<NodeProxy>]) -> Vec<&NodeProxy> {
    proxies.iter().flatten().collect()
}

/// The client pinned by `cookie` to the task on a lost node: through every
/// proxy, its next request is answered at once by another task, with a new
/// cookie, and that cookie sticks.
fn fails_over_at_once(proxies: &[&NodeProxy], cookie: &str, lost: &str) {
    for p in proxies {
        let start = Instant::now();
        let r = p.get(Some(cookie)).expect("the pinned client's next request");
        let took = start.elapsed();
        let now = r.whoami().unwrap_or_else(|| panic!("no whoami answer: {r:?}"));
        assert_ne!(now, lost, "node{} still sends the client to the lost task", p.node + 1);
        assert!(
            took < CONNECT_TIMEOUT,
            "node{} took {took:?}: it tried the lost task before failing over",
            p.node + 1
        );
        let moved = r.set_cookie().expect("the moved client gets a new cookie");
        assert_sticks(p, "/", &moved, &now, 5);
    }
}

/// After the node of `lost` (the task, and when its node was killed) is
/// gone: once Swarm marks it down, every proxy holds the task down with the
/// reason; its client (`clients` by node) fails over at once; the clients
/// of the `survivors` keep their task through every proxy.
fn check_loss(
    cluster: &Cluster,
    proxies: &[&NodeProxy],
    service: &str,
    (lost, killed): (&Task, Instant),
    clients: &BTreeMap<String, String>,
    survivors: &[Task],
) {
    let marked = wait_node_down(&cluster.nodes[0], &lost.node, Duration::from_secs(60));
    wait_down(proxies, service, &lost.container, &lost.node, Duration::from_secs(60));
    eprintln!(
        "{} lost: Swarm marked it down {:?} after the kill; every remaining manager held its task down {:?} after that",
        lost.node,
        marked - killed,
        marked.elapsed()
    );
    fails_over_at_once(proxies, &clients[&lost.node], &lost.container);
    for task in survivors {
        for p in proxies {
            assert_sticks(p, "/", &clients[&task.node], &task.container, 5);
        }
    }
}

/// Three managers and a worker, one task of a replicated service on each
/// node, swarm-sticky on every manager, one client pinned to each task.
/// The worker's dockerd is killed: once Swarm says the node is down, every
/// manager shows its task down with the reason, and its client fails over
/// at once; the other three clients keep their task through every
/// manager. Then manager 3's dockerd and swarm-sticky are killed: the two
/// remaining managers (still a quorum) do the same for node 3's task.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn a_lost_node_fails_its_clients_over_at_once_and_the_others_keep_theirs() {
    let mut cluster = cluster(3, 1);
    let manager = &cluster.nodes[0];
    let net = Overlay::create(manager, "lossnet");
    let svc = SwarmService::tutorial(
        manager,
        "loss",
        &net,
        "/",
        &[],
        &["--replicas", "4", "--replicas-max-per-node", "1"],
    );
    let tasks = svc.wait_running(manager, 4, Duration::from_secs(60));
    let on = |node: &str| -> Task {
        tasks
            .iter()
            .find(|t| t.node == node)
            .unwrap_or_else(|| panic!("no task on {node}: {tasks:?}"))
            .clone()
    };
    let containers = tasks.iter().map(|t| t.container.clone()).collect();
    let mut proxies: Vec<Option<NodeProxy>> = (0..3).map(|i| Some(NodeProxy::start(&cluster, i, &[]))).collect();
    super::wait_all(&live(&proxies), &svc.name, &containers, Duration::from_secs(60));
    let clients: BTreeMap<String, String> = tasks
        .iter()
        .map(|t| {
            let (cookie, _) = pin(live(&proxies)[0], "/", |c| c == t.container);
            (t.node.clone(), cookie)
        })
        .collect();

    let killed = Instant::now();
    cluster.kill_node(3);
    let survivors = [on("node1"), on("node2"), on("node3")];
    check_loss(
        &cluster,
        &live(&proxies),
        &svc.name,
        (&on("node4"), killed),
        &clients,
        &survivors,
    );

    let killed = Instant::now();
    proxies[2] = None;
    cluster.kill_node(2);
    check_loss(
        &cluster,
        &live(&proxies),
        &svc.name,
        (&on("node3"), killed),
        &clients,
        &survivors[..2],
    );
}
