//! swarm-sticky deployed as a Swarm stack (`deploy/swarm-sticky.yml`, as
//! users deploy it) on two managers and a worker.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use super::{
    assert_sticks, cluster, pin,
    rolling::{Load, load},
    spread, wait_anchors,
};
use crate::harness::{
    client::get_with,
    multinode::{
        Cluster,
        proxy::PORT,
        service::{Overlay, SwarmService},
        stack::{Stack, StackEntry, build_image},
    },
};

/// The image deployed first, and the one the update moves to (the same
/// binary: what matters is that Swarm replaces every task).
const IMAGE: &str = "swarm-sticky:stack-1";
const NEXT: &str = "swarm-sticky:stack-2";

/// The pin directory of node `i`'s namespace in the host's bpffs (the
/// stack file mounts the host's bpffs).
fn pin_dir(cluster: &Cluster, i: usize) -> PathBuf {
    use std::os::unix::fs::MetadataExt as _;
    let ino = std::fs::metadata(cluster.nodes[i].netns_path())
        .expect("the node's namespace")
        .ino();
    PathBuf::from(format!("/sys/fs/bpf/swarm-sticky/net-{ino}"))
}

/// The services of the stack `name` (anchors included), by name.
fn stack_services(cluster: &Cluster, name: &str, extra: &[&str]) -> BTreeSet<String> {
    let label = format!("label=com.docker.stack.namespace={name}");
    let mut args = vec!["service", "ls", "--format", "{{.Name}}", "--filter", label.as_str()];
    args.extend_from_slice(extra);
    cluster.nodes[0].docker(&args).lines().map(str::to_owned).collect()
}

/// `docker service update ARGS` of the stack (start-first, one manager at
/// a time) while two clients send new and cookie-carrying requests through
/// both managers, a new connection each, until every manager runs a
/// healthy task of `image`. The requests sent and the failures.
fn update_under_load(edge: &Stack<'_>, entries: &[StackEntry; 2], args: &[&str], image: &str) -> (usize, Vec<String>) {
    let manager = &edge.cluster().nodes[0];
    let stop = AtomicBool::new(false);
    let targets = [entries[0].listen, entries[1].listen];
    let started = Instant::now();
    let service = edge.service();
    let mut update = vec!["service", "update", "--detach=false"];
    update.extend_from_slice(args);
    update.push(&service);
    let loads: Vec<Load> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2).map(|_| s.spawn(|| load(targets, &stop))).collect();
        let updated = manager.try_docker(&update, Duration::from_secs(180));
        // The last old task may still drain: let the load see that too.
        let drained = edge.wait_running(image, Duration::from_secs(60));
        stop.store(true, Ordering::Relaxed);
        let loads = threads.into_iter().map(|t| t.join().expect("load thread")).collect();
        updated.unwrap_or_else(|e| panic!("the update failed: {e}\n{}", edge.logs()));
        eprintln!("every manager ran a healthy {image} {drained:?} after the update returned");
        loads
    });
    assert!(loads.iter().all(|l| l.stopped), "a load thread hit its cap");
    let requests: usize = loads.iter().map(|l| l.requests).sum();
    let failures: Vec<String> = loads.into_iter().flat_map(|l| l.failures).collect();
    let refused = failures.iter().filter(|f| f.contains("refused")).count();
    eprintln!(
        "stack update ({}): {:?}, {requests} requests through both managers, {} failed ({refused} connections refused)",
        args.join(" "),
        started.elapsed(),
        failures.len()
    );
    (requests, failures)
}

/// The tutorial (a global whoami service with the Traefik v1 labels, one
/// task on each of the three nodes) and the stack deployed next to it:
///
/// * every manager runs one healthy swarm-sticky task with eBPF steering,
///   serves all three tasks (anchors for the worker's, in the stack), and
///   a cookie issued through either manager sticks through the other;
/// * `docker service update --image` of the stack (start-first) while two
///   clients send new and cookie-carrying requests through both managers,
///   a new connection each: not one connection refused, not one request
///   failed; every task is replaced, the new ones took the published port
///   over from the old, and a session from before the update still sticks;
/// * then, with SO_REUSEPORT steering forced (`--env-add
///   SWARM_STICKY_STEERING=reuseport`, itself an update under load), an
///   image update under the same load: its failures are reported for
///   `docs/deploy.md`, not held to zero;
/// * `docker stack rm`: the stack's services, its anchors and their
///   containers are gone from every node, and so are the eBPF pins; the
///   published port refuses connections again.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn the_stack_serves_sticky_updates_start_first_without_a_refusal_and_leaves_nothing() {
    let cluster = cluster(2, 1);
    let manager = &cluster.nodes[0];
    let started = Instant::now();
    build_image(&cluster, &[IMAGE, NEXT]);
    eprintln!(
        "the stack's image built and loaded on 3 nodes in {:?}",
        started.elapsed()
    );
    let net = Overlay::create(manager, "whoaminet");
    let svc = SwarmService::tutorial(manager, "whoami-service", &net, "/", &[], &["--mode", "global"]);
    let tasks = svc.wait_running(manager, 3, Duration::from_secs(60));
    let containers: BTreeSet<String> = tasks.iter().map(|t| t.container.clone()).collect();

    let mut edge = Stack::deploy(&cluster, "edge", IMAGE, PORT);
    let took = edge.wait_running(IMAGE, Duration::from_secs(120));
    eprintln!("the stack ran healthy on both managers {took:?} after the deploy");
    for i in 0..2 {
        let status = edge.status(i);
        assert_eq!(
            status["dataplane"]["steering"],
            "ebpf",
            "the stack's swarm-sticky on node{} did not get eBPF steering: {}",
            i + 1,
            status["dataplane"]
        );
    }
    edge.wait_containers(&svc.name, &containers, Duration::from_secs(60));
    wait_anchors(manager, &net, &["node1", "node2"], Duration::from_secs(90));
    let anchors = stack_services(&cluster, "edge", &["--filter", "label=com.swarm-sticky.anchor.node"]);
    assert_eq!(anchors.len(), 2, "one anchor per manager, in the stack: {anchors:?}");

    let entries = [edge.entry(0), edge.entry(1)];
    for e in &entries {
        assert_eq!(spread(e, "/", 15), containers, "cookie-less requests miss a task");
    }
    for (issuer, replayer) in [(0, 1), (1, 0)] {
        for c in &containers {
            let (cookie, pinned) = pin(&entries[issuer], "/", |x| x == c);
            assert_sticks(&entries[replayer], "/", &cookie, &pinned, 20);
        }
    }
    let kept = pin(&entries[0], "/", |_| true);

    let before = edge.running();
    let (requests, failures) = update_under_load(&edge, &entries, &["--image", NEXT], NEXT);
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed during the stack's update, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    let after = edge.running();
    for (node, (task, _)) in &before {
        let (new, image) = after
            .get(node)
            .unwrap_or_else(|| panic!("no task on {node}: {after:?}"));
        assert_ne!(new, task, "the task on {node} was not replaced");
        assert!(image.starts_with(NEXT), "{node} runs {image}");
    }
    let logs = edge.logs();
    assert_eq!(
        logs.matches("taking over the published address").count(),
        2,
        "each new task takes the published port over from the old one:\n{logs}"
    );
    for i in 0..2 {
        assert_eq!(edge.status(i)["dataplane"]["steering"], "ebpf");
    }
    assert_sticks(&entries[1], "/", &kept.0, &kept.1, 20);

    // Where the engine cannot grant eBPF, SO_REUSEPORT steering: measured
    // (docs/deploy.md), not held to zero.
    let (_, moved) = update_under_load(&edge, &entries, &["--env-add", "SWARM_STICKY_STEERING=reuseport"], NEXT);
    for i in 0..2 {
        assert_eq!(edge.status(i)["dataplane"]["steering"], "reuseport");
    }
    eprintln!("from eBPF to SO_REUSEPORT steering: {} failed", moved.len());
    let (requests, failures) = update_under_load(&edge, &entries, &["--image", IMAGE], IMAGE);
    eprintln!(
        "with SO_REUSEPORT steering, an image update: {} of {requests} failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );

    edge.remove();
    let deadline = Instant::now() + Duration::from_secs(90);
    let leftovers = || {
        let mut left: Vec<String> = stack_services(&cluster, "edge", &[]).into_iter().collect();
        left.extend(stack_services(
            &cluster,
            "edge",
            &["--filter", "label=com.swarm-sticky.anchor.node"],
        ));
        for node in &cluster.nodes {
            let ps = node.docker(&[
                "ps",
                "-a",
                "--format",
                "{{.Names}}",
                "--filter",
                "label=com.docker.stack.namespace=edge",
            ]);
            left.extend(ps.lines().map(|c| format!("{}: container {c}", node.name)));
            let anchors = node.docker(&[
                "ps",
                "-a",
                "--format",
                "{{.Names}}",
                "--filter",
                "name=swarm-sticky-anchor",
            ]);
            left.extend(anchors.lines().map(|c| format!("{}: anchor container {c}", node.name)));
        }
        for i in 0..2 {
            // The directory itself stays: it is the lock of the pins.
            let pins: Vec<String> = std::fs::read_dir(pin_dir(&cluster, i))
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.path().display().to_string())
                        .collect()
                })
                .unwrap_or_default();
            left.extend(pins);
        }
        left
    };
    loop {
        let left = leftovers();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "90 s after `docker stack rm`, still there: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for e in &entries {
        let r = get_with(e.listen, "/", None);
        assert!(
            r.as_ref()
                .is_err_and(|err| err.kind() == std::io::ErrorKind::ConnectionRefused),
            "after `docker stack rm` the published port still answers on {}: {r:?}",
            e.listen
        );
    }
}
