//! Rolling updates seen precisely, with `--resync 60` so that the periodic
//! re-list cannot pass: Swarm sends no task events, and swarm-sticky must
//! follow a served service's tasks by itself while they move.

use std::{
    collections::BTreeSet,
    io::{Read as _, Write as _},
    net::SocketAddr,
    os::unix::net::UnixStream,
    path::Path,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use super::{cluster, pin, wait_all, wait_anchors};
use crate::harness::{
    client::get_with,
    multinode::{
        Node,
        proxy::NodeProxy,
        service::{Overlay, SwarmService},
    },
    swarm::health_image,
};

/// How soon a task that Swarm marks for shutdown must stop taking new
/// sessions.
const DRAIN_WITHIN: Duration = Duration::from_millis(500);
/// How soon every manager must serve a change that Docker announced.
const CHANGE_WITHIN: Duration = Duration::from_secs(1);

/// `GET path` on the node's Engine API (HTTP/1.0: the answer ends with
/// the connection), as JSON.
fn api(node: &Node, path: &str) -> serde_json::Value {
    let sock = node.host();
    let sock = Path::new(sock.strip_prefix("unix://").expect("a unix socket"));
    let mut s = UnixStream::connect(sock).expect("the node's Docker socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").expect("request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("response");
    let text = String::from_utf8_lossy(&raw);
    let (_, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// The tasks of `service` as the node's API lists them: (ID, slot,
/// desired state, state, container ID shortened to 12).
fn tasks(node: &Node, service: &str) -> Vec<(String, u64, String, String, String)> {
    let path = format!("/v1.41/tasks?filters=%7B%22service%22%3A%5B%22{service}%22%5D%7D");
    api(node, &path)
        .as_array()
        .expect("a task list")
        .iter()
        .map(|t| {
            (
                t["ID"].as_str().unwrap_or_default().to_string(),
                t["Slot"].as_u64().unwrap_or(0),
                t["DesiredState"].as_str().unwrap_or_default().to_string(),
                t["Status"]["State"].as_str().unwrap_or_default().to_string(),
                t["Status"]["ContainerStatus"]["ContainerID"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(12)
                    .collect(),
            )
        })
        .collect()
}

/// Polls (every 20 ms, bounded) until `found` picks something; returns it
/// and when it was seen.
fn poll<T>(what: &str, timeout: Duration, mut found: impl FnMut() -> Option<T>) -> (T, Instant) {
    let start = Instant::now();
    loop {
        if let Some(t) = found() {
            return (t, Instant::now());
        }
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The state `container` has in `proxy`'s table, if it is there.
fn state_of(proxy: &NodeProxy, service: &str, container: &str) -> Option<String> {
    proxy
        .backends(service)
        .into_iter()
        .find(|b| b.container == container)
        .map(|b| b.state)
}

/// Stops the client when the test's main thread leaves its scope, also by
/// a failed assertion (the scope would otherwise wait for the client's
/// last request).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits until every proxy serves `container` (a task Docker listed
/// running at `running`); panics unless each did within
/// [`CHANGE_WITHIN`] of that.
fn served_within(proxies: &[NodeProxy], service: &str, container: &str, running: Instant, what: &str) {
    for p in proxies {
        let (_, served) = poll(&format!("{what} served"), Duration::from_secs(10), || {
            state_of(p, service, container).filter(|s| s == "healthy")
        });
        let lag = served - running;
        eprintln!(
            "node{}: {what} served {lag:?} after Docker listed it running",
            p.node + 1
        );
        assert!(lag < CHANGE_WITHIN, "node{} took {lag:?} to serve {what}", p.node + 1);
    }
}

/// One request of the pinned client.
#[derive(Debug)]
struct Sample {
    /// Through which manager (0 or 1).
    via: usize,
    /// The container that answered, or what went wrong.
    answer: Result<String, String>,
    /// Whether the answer carried a new cookie.
    new_cookie: bool,
}

/// The client: requests with its cookie every 50 ms, through each manager
/// in turn, taking every new cookie as a browser would, into `samples`;
/// until `stop` (or 2,400 requests).
fn client(managers: [SocketAddr; 2], mut cookie: String, stop: &AtomicBool, samples: &Mutex<Vec<Sample>>) {
    for i in 0..2400 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let via = i % 2;
        let sample = match get_with(managers[via], "/", Some(&cookie)) {
            Ok(r) if r.status == 200 => {
                let new = r.set_cookie();
                let answer = r.whoami().ok_or_else(|| format!("no whoami body: {:?}", r.body));
                if let Some(c) = &new {
                    cookie.clone_from(c);
                }
                Sample {
                    via,
                    answer,
                    new_cookie: new.is_some(),
                }
            }
            Ok(r) => Sample {
                via,
                answer: Err(format!("status {}: {:?}", r.status, r.body)),
                new_cookie: false,
            },
            Err(e) => Sample {
                via,
                answer: Err(format!("connection: {e}")),
                new_cookie: false,
            },
        };
        samples.lock().expect("samples").push(sample);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two managers and a worker, three tasks (one per node) of a `same-slot`
/// service whose containers ignore their stop signal for 3 s (so a task
/// marked for shutdown keeps running that long), swarm-sticky on both
/// managers with `--resync 60`. `docker service update` to the same image
/// with a HEALTHCHECK (so each new task stays `starting` until its first
/// check, a second: the gap of a stop-first update):
/// (a) the first task Swarm marks for shutdown gets no new session
///     through either manager from 0.5 s after the mark;
/// (b) a client pinned to slot 1, sending through both managers in turn,
///     gets only 200s, is served by a stand-in while its slot has no
///     running task, never receives a cookie naming another slot, and
///     ends on slot 1's new task through both managers;
/// (c) each manager serves a new task, and a scale-down, within 1 s of
///     Docker showing it;
/// (d) a container killed on the worker (no event reaches the managers)
///     leaves both tables after the first failed connections, with every
///     request answered, and its replacement is served within 1 s.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn rolling_updates_drain_at_once_and_same_slot_clients_wait_for_their_slot() {
    let with_health = health_image();
    let cluster = cluster(2, 1);
    cluster.load_image(with_health);
    let manager = &cluster.nodes[0];
    let net = Overlay::create(manager, "rollnet");
    let svc = SwarmService::tutorial(
        manager,
        "roll",
        &net,
        "/",
        &["swarm-sticky.affinity=same-slot"],
        &[
            "--replicas",
            "3",
            "--replicas-max-per-node",
            "1",
            "--stop-signal",
            "SIGWINCH",
            "--stop-grace-period",
            "3s",
            "--update-parallelism",
            "1",
            "--update-delay",
            "1s",
        ],
    );
    let before = svc.wait_running(manager, 3, Duration::from_secs(60));
    let proxies = [
        NodeProxy::start(&cluster, 0, &["--resync", "60"]),
        NodeProxy::start(&cluster, 1, &["--resync", "60"]),
    ];
    let all: BTreeSet<String> = before.iter().map(|t| t.container.clone()).collect();
    wait_all(&[&proxies[0], &proxies[1]], &svc.name, &all, Duration::from_secs(60));
    wait_anchors(manager, &net, &["node1", "node2"], Duration::from_secs(90));
    let old1 = before.iter().find(|t| t.slot == 1).expect("slot 1").container.clone();
    let (cookie, _) = pin(&proxies[0], "/", |c| c == old1);

    let stop = AtomicBool::new(false);
    let samples = Mutex::new(Vec::new());
    let new1 = std::thread::scope(|s| {
        s.spawn(|| client([proxies[0].listen, proxies[1].listen], cookie, &stop, &samples));
        let _stop = StopOnDrop(&stop);
        manager.docker(&[
            "service",
            "update",
            "--detach",
            "--no-resolve-image",
            "--image",
            with_health,
            &svc.name,
        ]);
        // (a) The first task marked for shutdown, still running.
        let (marked, at) = poll("a task marked for shutdown", Duration::from_secs(30), || {
            tasks(manager, &svc.name)
                .into_iter()
                .find(|t| t.2 == "shutdown" && t.3 == "running")
                .map(|t| t.4)
        });
        for p in &proxies {
            let (state, seen) = poll("the marked task draining", Duration::from_secs(5), || {
                state_of(p, &svc.name, &marked).filter(|s| s != "healthy")
            });
            eprintln!(
                "node{}: {marked} {state} {:?} after Swarm's mark was seen",
                p.node + 1,
                seen - at
            );
        }
        std::thread::sleep(DRAIN_WITHIN.saturating_sub(at.elapsed()));
        for p in &proxies {
            for _ in 0..10 {
                let r = p.get(None).expect("a new session during the update");
                assert_ne!(
                    r.whoami().as_deref(),
                    Some(marked.as_str()),
                    "node{} gave a new session to a task marked for shutdown {:?} earlier",
                    p.node + 1,
                    at.elapsed()
                );
            }
        }
        assert!(
            tasks(manager, &svc.name)
                .iter()
                .any(|t| t.4 == marked && t.3 == "running"),
            "the marked task stopped before the check, which then proved nothing"
        );
        // (c) The first new task: from Docker listing it running to every
        // manager serving it.
        let (fresh, running) = poll("a new task running", Duration::from_secs(60), || {
            tasks(manager, &svc.name)
                .into_iter()
                .find(|t| t.2 == "running" && t.3 == "running" && !all.contains(&t.4))
                .map(|t| t.4)
        });
        served_within(&proxies, &svc.name, &fresh, running, "a new task");
        poll("the update completed", Duration::from_secs(120), || {
            let state = manager.docker(&["service", "inspect", "-f", "{{.UpdateStatus.State}}", &svc.name]);
            (state == "completed").then_some(())
        });
        let after = svc.wait_running(manager, 3, Duration::from_secs(30));
        let new1 = after.iter().find(|t| t.slot == 1).expect("slot 1").container.clone();
        // The client's latest answers through both managers come from
        // slot 1's new task (within a re-list or two).
        poll("the client on slot 1's new task", Duration::from_secs(10), || {
            let samples = samples.lock().expect("samples");
            [0, 1]
                .iter()
                .all(|via| {
                    samples
                        .iter()
                        .rev()
                        .find(|s| s.via == *via)
                        .is_some_and(|s| s.answer.as_deref() == Ok(new1.as_str()))
                })
                .then_some(())
        });
        new1
    });
    let samples = samples.into_inner().expect("samples");

    let failed: Vec<&Sample> = samples.iter().filter(|s| s.answer.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        samples.len()
    );
    let answers: Vec<&str> = samples.iter().map(|s| s.answer.as_deref().unwrap_or("")).collect();
    let stray: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.new_cookie && s.answer.as_deref() != Ok(new1.as_str()))
        .collect();
    assert!(
        stray.is_empty(),
        "the client got a cookie naming another slot's task: {stray:?}; answers: {answers:?}"
    );
    let stand_ins = answers.iter().filter(|a| **a != old1 && **a != new1).count();
    assert!(
        stand_ins > 0,
        "no request was served by a stand-in, so the gap was not exercised: {answers:?}"
    );
    eprintln!(
        "the pinned client: {} requests, {stand_ins} served by a stand-in, on slot 1's new task after",
        samples.len()
    );

    // (d) A container killed on the worker: the managers get no event for
    // it. The first failed connection to it makes each manager list again
    // (with `--resync 60`, polling would take a minute), and every GET is
    // answered meanwhile. Swarm's replacement is then served within 1 s
    // of Docker listing it.
    let on_worker = svc
        .running(manager)
        .into_iter()
        .find(|t| t.node == "node3")
        .expect("a task on the worker");
    cluster.nodes[2].docker(&["kill", &on_worker.container]);
    let killed = Instant::now();
    let mut requests = 0;
    for p in &proxies {
        poll("the killed container out of the table", Duration::from_secs(10), || {
            requests += 1;
            let r = p.get(None).expect("a request after the kill");
            assert_eq!(r.status, 200, "node{}: {r:?}", p.node + 1);
            (state_of(p, &svc.name, &on_worker.container).is_none()).then_some(())
        });
    }
    eprintln!(
        "a container killed on the worker left both managers' tables {:?} after the kill ({requests} requests, all answered)",
        killed.elapsed()
    );
    let (replacement, running) = poll("the killed task's replacement running", Duration::from_secs(60), || {
        tasks(manager, &svc.name)
            .into_iter()
            .find(|t| t.2 == "running" && t.3 == "running" && t.1 == on_worker.slot && t.4 != on_worker.container)
            .map(|t| t.4)
    });
    served_within(&proxies, &svc.name, &replacement, running, "the replacement");

    // (c) A scale-down: from the command's return to every manager taking
    // no new session on the removed task.
    let now: Vec<String> = svc.running(manager).into_iter().map(|t| t.container).collect();
    manager.docker(&["service", "scale", "--detach", &format!("{}=2", svc.name)]);
    let scaled = Instant::now();
    for p in &proxies {
        poll("the scale-down served", Duration::from_secs(10), || {
            let available = p
                .backends(&svc.name)
                .into_iter()
                .filter(|b| b.state == "healthy" && now.contains(&b.container))
                .count();
            (available == 2).then_some(())
        });
    }
    let lag = scaled.elapsed();
    eprintln!("both managers served the scale-down {lag:?} after the command returned");
    assert!(lag < CHANGE_WITHIN, "a scale-down took {lag:?} to reach both managers");
}
