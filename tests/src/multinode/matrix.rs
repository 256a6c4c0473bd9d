//! Three managers and a worker: every manager routes every other
//! manager's cookies identically, a manager with no local task of a
//! service reaches the service's tasks on other nodes through the anchor
//! swarm-sticky makes for it, and the worker's crash moves nobody onto a
//! lost task.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use super::{answer, assert_sticks, cluster, pin, spread, wait_all, wait_anchors};
use crate::harness::multinode::{
    Cluster,
    proxy::NodeProxy,
    service::{Overlay, SwarmService, Task},
};

/// Replays of each cookie through each manager.
const REPLAYS: usize = 5;

/// `everywhere`: 4 replicas, at most one per node, so a task on each of
/// the 4 nodes. For each of the 3 managers, one cookie per task (4
/// cookies), each replayed `REPLAYS` times through each manager: the 3×3
/// matrix "issued by i, replayed at j" has 20 replays per cell, and every
/// one reaches the issuer's container. `away`: on a network of its own,
/// 3 replicas on every node but node3 (a manager); node3 has no namespace
/// on that network, so its swarm-sticky creates an anchor there and
/// serves the 3 remote tasks, sticky, with cookies every manager honours.
/// The other managers, which have local tasks besides remote ones, anchor
/// their networks too (so the namespace stays when the local tasks are
/// replaced): one anchor per manager and network, each on its node. Last, the worker crashes
/// ([`worker_crash`]).
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn every_manager_routes_every_cookie_alike_and_a_manager_without_tasks_anchors() {
    let mut cluster = cluster(3, 1);
    let manager = &cluster.nodes[0];
    let all_net = Overlay::create(manager, "allnet");
    let everywhere = SwarmService::tutorial(
        manager,
        "everywhere",
        &all_net,
        "/",
        &[],
        &["--replicas", "4", "--replicas-max-per-node", "1"],
    );
    let away_net = Overlay::create(manager, "awaynet");
    let away = SwarmService::tutorial(
        manager,
        "away",
        &away_net,
        "/away",
        &[],
        &[
            "--replicas",
            "3",
            "--replicas-max-per-node",
            "1",
            "--constraint",
            "node.hostname!=node3",
        ],
    );

    let tasks = everywhere.wait_running(manager, 4, Duration::from_secs(60));
    let nodes: BTreeSet<&str> = tasks.iter().map(|t| t.node.as_str()).collect();
    assert_eq!(nodes.len(), 4, "one task on each node: {tasks:?}");
    let all: BTreeSet<String> = tasks.iter().map(|t| t.container.clone()).collect();
    let away_tasks = away.wait_running(manager, 3, Duration::from_secs(60));
    assert!(
        away_tasks.iter().all(|t| t.node != "node3"),
        "the constraint keeps node3 free: {away_tasks:?}"
    );
    let away_all: BTreeSet<String> = away_tasks.iter().map(|t| t.container.clone()).collect();
    let lb = cluster.nodes[2].netns_dir().join(format!("lb_{}", &away_net.id[..9]));
    assert!(!lb.exists(), "node3 has a namespace on awaynet before any anchor");

    let mut proxies: Vec<NodeProxy> = (0..3).map(|i| NodeProxy::start(&cluster, i, &[])).collect();
    let took = wait_all(&refs(&proxies), &everywhere.name, &all, Duration::from_secs(30));
    eprintln!("all 3 managers served the 4 tasks {took:?} after the last one was ready");

    // One session per task and issuer, replayed through every manager.
    for issuer in &proxies {
        for container in &all {
            let (cookie, pinned) = pin(issuer, "/", |c| c == container);
            for replayer in &proxies {
                assert_sticks(replayer, "/", &cookie, &pinned, REPLAYS);
            }
        }
    }

    let anchored = proxies[2]
        .proxy
        .wait_for_line("created an anchor: this node had no namespace", Duration::from_secs(60));
    eprintln!("node3: {anchored}");
    let took = wait_all(&refs(&proxies), &away.name, &away_all, Duration::from_secs(30));
    eprintln!("all 3 managers served the 3 away tasks {took:?} after the anchor");
    assert!(lb.exists(), "the anchor gave node3 a namespace on awaynet");
    // One anchor per manager and network, each on its node.
    for net in [&all_net, &away_net] {
        wait_anchors(manager, net, &["node1", "node2", "node3"], Duration::from_secs(60));
    }
    let seen = spread(&proxies[2], "/away", 6);
    assert_eq!(seen, away_all, "node3 reaches every remote task of away");
    for container in &away_all {
        let (cookie, pinned) = pin(&proxies[2], "/away", |c| c == container);
        for replayer in &proxies {
            assert_sticks(replayer, "/away", &cookie, &pinned, REPLAYS);
        }
    }

    worker_crash(&mut cluster, &proxies, &everywhere.name, &tasks);
}

/// The worker (node4) crashes (its dockerd and containerd are SIGKILLed;
/// its containers keep running, cut off from the overlay's control plane).
/// Once Swarm marks it down, every manager stops offering its task to new
/// sessions, and new sessions spread over the other 3 tasks. A client
/// pinned to node4's task keeps getting answers through every manager:
/// from the orphaned container while it is still reachable, or from
/// another task with a new cookie that every manager honours.
fn worker_crash(cluster: &mut Cluster, proxies: &[NodeProxy], service: &str, tasks: &[Task]) {
    let lost = tasks
        .iter()
        .find(|t| t.node == "node4")
        .unwrap_or_else(|| panic!("no task on node4: {tasks:?}"))
        .container
        .clone();
    let (cookie, _) = pin(&proxies[0], "/", |c| c == lost);
    cluster.kill_node(3);
    let killed = Instant::now();
    for p in proxies {
        let deadline = killed + Duration::from_secs(60);
        while p.backends(service).iter().any(|b| b.container == lost && b.available) {
            assert!(
                Instant::now() < deadline,
                "node{} still offers node4's task to new sessions 60 s after the crash",
                p.node + 1
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    eprintln!(
        "worker crash: every manager stopped offering node4's task {:?} after the kill",
        killed.elapsed()
    );
    let rest: BTreeSet<String> = tasks
        .iter()
        .map(|t| t.container.clone())
        .filter(|c| *c != lost)
        .collect();
    for p in proxies {
        let seen = spread(p, "/", 9);
        assert_eq!(seen, rest, "new sessions through node{} after the crash", p.node + 1);
    }
    for p in proxies {
        let r = p.get(Some(&cookie)).expect("the client pinned to node4's task");
        let now = answer(Ok(r.clone())).unwrap_or_else(|e| panic!("node{}: {e}", p.node + 1));
        match r.set_cookie() {
            Some(moved) => {
                assert_ne!(now, lost, "a new cookie, yet the same container");
                eprintln!("worker crash: node{} moved the client to {now}", p.node + 1);
                for q in proxies {
                    assert_sticks(q, "/", &moved, &now, REPLAYS);
                }
            }
            None => {
                assert_eq!(now, lost, "moved without a new cookie");
                eprintln!("worker crash: node{} still reaches the orphaned container", p.node + 1);
            }
        }
    }
}

fn refs(proxies: &[NodeProxy]) -> Vec<&NodeProxy> {
    proxies.iter().collect()
}
