//! A rolling update under load, through two managers at once.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use super::{answer, assert_sticks, cluster, pin, wait_all, wait_anchors};
use crate::harness::{
    client::get_with,
    multinode::{
        proxy::NodeProxy,
        service::{Overlay, SwarmService},
    },
};

/// Load threads.
const THREADS: usize = 2;
/// Tasks of the service: one on each of the 3 nodes.
const TASKS: usize = 3;
/// Hard caps of each load thread (the time cap binds first: a thread
/// sends about 450 requests a second here).
const MAX_REQUESTS: usize = 100_000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(120);

/// What one load thread saw.
pub(super) struct Load {
    pub(super) requests: usize,
    pub(super) failures: Vec<String>,
    /// The slowest request, and when it was sent.
    pub(super) slowest: (Duration, Duration),
    /// Whether it ran until told to stop (not cut short by a cap).
    pub(super) stopped: bool,
}

/// One load thread until `stop` (or its caps): alternating between the
/// managers, a new session (no cookie) and a request with its own
/// session's cookie, following every `Set-Cookie`.
pub(super) fn load(targets: [SocketAddr; 2], stop: &AtomicBool) -> Load {
    let start = Instant::now();
    let mut cookie: Option<String> = None;
    let mut out = Load {
        requests: 0,
        failures: Vec::new(),
        slowest: (Duration::ZERO, Duration::ZERO),
        stopped: false,
    };
    while !stop.load(Ordering::Relaxed) && out.requests < MAX_REQUESTS && start.elapsed() < MAX_LOAD_TIME {
        let target = targets[out.requests % 2];
        let with = if (out.requests / 2) % 2 == 1 {
            cookie.as_deref()
        } else {
            None
        };
        let sent = start.elapsed();
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let r = get_with(target, "/", with);
        let took = start.elapsed() - sent;
        if took > out.slowest.0 {
            out.slowest = (took, sent);
        }
        let set = r.as_ref().ok().and_then(|r| r.set_cookie());
        match answer(r) {
            Ok(_) => {
                if with.is_some() || cookie.is_none() {
                    cookie = set.or(cookie);
                }
            }
            Err(e) => out.failures.push(format!(
                "request {} to {target} ({}), sent {sent:?} into the load (unix {}.{:03}), failed after {:?}: {e}",
                out.requests,
                if with.is_some() { "with cookie" } else { "new" },
                at.as_secs(),
                at.subsec_millis(),
                start.elapsed() - sent
            )),
        }
        out.requests += 1;
    }
    out.stopped = stop.load(Ordering::Relaxed);
    out
}

/// Two managers and a worker; 3 replicas, one per node (the tutorial's
/// shape), with the Traefik v1 labels and `swarm-sticky.affinity=same-slot`;
/// swarm-sticky on both managers. One client is pinned to each slot before
/// the update.
///
/// One task per node: when a node's only task of a network stops, Docker
/// removes the network's `lb_` namespace there unless something else holds
/// it, and with it every connection from that node to the other nodes'
/// tasks (requests on them would wait for their response deadline). The
/// anchor each manager keeps holds the namespace.
/// `docker service update --force` (stop-first, one task at a time) runs
/// while 2 threads send new and cookie-carrying requests through both
/// managers: every one of them gets a whoami answer (no non-2xx, no
/// connection error). Afterwards, each pinned client's next request
/// reaches its slot's new task through either manager, with a new
/// cookie that both managers then honour.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn a_rolling_update_under_load_through_two_managers_loses_nothing() {
    let cluster = cluster(2, 1);
    let manager = &cluster.nodes[0];
    let net = Overlay::create(manager, "rollnet");
    let svc = SwarmService::tutorial(
        manager,
        "rolling",
        &net,
        "/",
        &["swarm-sticky.affinity=same-slot"],
        &[
            "--replicas",
            "3",
            "--replicas-max-per-node",
            "1",
            "--update-delay",
            "1s",
        ],
    );
    let before = svc.wait_running(manager, TASKS, Duration::from_secs(60));
    for node in &cluster.nodes {
        let here = before.iter().filter(|t| t.node == node.name).count();
        assert_eq!(here, 1, "one task on {}: {before:?}", node.name);
    }
    let old: BTreeSet<String> = before.iter().map(|t| t.container.clone()).collect();

    let proxies = [NodeProxy::start(&cluster, 0, &[]), NodeProxy::start(&cluster, 1, &[])];
    wait_all(&[&proxies[0], &proxies[1]], &svc.name, &old, Duration::from_secs(30));
    let anchored = wait_anchors(manager, &net, &["node1", "node2"], Duration::from_secs(90));
    eprintln!("both managers' anchors ran {anchored:?} after the tasks were served");
    // (slot, cookie) of one idle client per slot, issued alternately by
    // the two managers.
    let pinned: Vec<(u64, String)> = before
        .iter()
        .enumerate()
        .map(|(i, t)| (t.slot, pin(&proxies[i % 2], "/", |c| c == t.container).0))
        .collect();

    let stop = AtomicBool::new(false);
    let targets = [proxies[0].listen, proxies[1].listen];
    let started = Instant::now();
    let loads: Vec<Load> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS).map(|_| s.spawn(|| load(targets, &stop))).collect();
        let update = manager.try_docker(
            &["service", "update", "--force", "--detach=false", &svc.name],
            Duration::from_secs(100),
        );
        stop.store(true, Ordering::Relaxed);
        let loads = threads.into_iter().map(|t| t.join().expect("load thread")).collect();
        update.unwrap_or_else(|e| panic!("the update failed: {e}"));
        loads
    });
    let updated = started.elapsed();
    let requests: usize = loads.iter().map(|l| l.requests).sum();
    let failures: Vec<&String> = loads.iter().flat_map(|l| &l.failures).collect();
    eprintln!(
        "rolling update: {updated:?}, {requests} requests through both managers, {} failed; slowest (took, sent at) per thread: {:?}",
        failures.len(),
        loads.iter().map(|l| l.slowest).collect::<Vec<_>>()
    );
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed during the update, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        loads.iter().all(|l| l.stopped),
        "a load thread hit its cap before the update ended: {:?}",
        loads.iter().map(|l| l.requests).collect::<Vec<_>>()
    );

    let after = svc.wait_running(manager, TASKS, Duration::from_secs(30));
    let new: BTreeSet<String> = after.iter().map(|t| t.container.clone()).collect();
    assert!(
        new.is_disjoint(&old),
        "every task was replaced: {before:?} -> {after:?}"
    );
    let settled = wait_all(&[&proxies[0], &proxies[1]], &svc.name, &new, Duration::from_secs(30));
    eprintln!("rolling update: both managers served only the new tasks {settled:?} after it returned");
    for (i, (slot, cookie)) in pinned.iter().enumerate() {
        let task = after
            .iter()
            .find(|t| t.slot == *slot)
            .unwrap_or_else(|| panic!("no new task in slot {slot}: {after:?}"));
        let r = proxies[(i + 1) % 2]
            .get(Some(cookie))
            .expect("the pinned client's next request");
        assert_eq!(
            r.whoami().as_deref(),
            Some(task.container.as_str()),
            "the client of slot {slot} is not on its slot's new task: {r:?}"
        );
        let moved = r
            .set_cookie()
            .expect("the moved client gets a cookie naming the new task");
        for p in &proxies {
            assert_sticks(p, "/", &moved, &task.container, 10);
        }
    }
}
