//! A manager with no task of the service: the anchor gives it a namespace
//! on the overlay network (a real two-node swarm, see
//! `harness::multinode`).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::tutorial::first_answer;
use crate::harness::{
    client::get_with,
    multinode::{Cluster, service::SwarmService},
    process::Proxy,
    swarm::{IMAGE, ensure_swarm, test_image},
};

/// Node 1 (manager, where swarm-sticky runs) and node 2 (worker, where the
/// only task runs, on a non-attachable overlay as in the tutorial). Node 1
/// has no namespace on the network, so swarm-sticky creates an anchor
/// service constrained to node 1 from an image it builds from its own
/// binary; the namespace appears, and the task on node 2 answers through
/// it (over VXLAN between the two namespaces), sticky. Removing the
/// service removes the anchor.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn a_manager_without_tasks_anchors_the_network_and_reaches_remote_tasks() {
    ensure_swarm();
    test_image();
    // The cluster fences its overlays' address pool off in the host
    // namespace.
    let cluster = Cluster::new(1, 1);
    let (manager, worker) = (&cluster.nodes[0], &cluster.nodes[1]);
    cluster.load_image(IMAGE);
    let net = format!("ss-anchor-{}", std::process::id());
    let net_id = manager.docker(&["network", "create", "-d", "overlay", &net]);
    let svc = format!("ss-remote-{}", std::process::id());
    SwarmService::create(
        manager,
        &svc,
        &[
            "--replicas",
            "1",
            "--constraint",
            "node.role==worker",
            "--network",
            &net,
            "--label",
            &format!("traefik.docker.network={net}"),
            "--label",
            "traefik.port=8000",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let remote = loop {
        let ids = worker.docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={svc}"),
        ]);
        if let Some(id) = ids.lines().next() {
            break worker.docker(&["inspect", "-f", "{{.Config.Hostname}}", id]);
        }
        assert!(Instant::now() < deadline, "the task did not run on node 2 within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    let lb = manager.netns_dir().join(format!("lb_{}", &net_id[..9]));
    assert!(!lb.exists(), "node 1 has a namespace on the network before any anchor");

    let state = cluster.dir.join("state");
    let args: Vec<String> = [
        "run",
        "--docker",
        "--docker-host",
        &manager.host(),
        "--docker-netns-dir",
        &manager.netns_dir().display().to_string(),
        "--resync",
        "2",
        "--listen",
        "127.0.0.1:18193",
        "--steering",
        "reuseport",
        "--workers",
        "2",
        "--admin",
        "127.0.0.1:19203",
        "--state-dir",
        &state.display().to_string(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let mut proxy = Proxy::spawn_here(&args);
    proxy.wait_ready();
    let ready = Instant::now();
    proxy.wait_for_line("created an anchor", Duration::from_secs(60));
    let anchored = ready.elapsed();
    let addr: SocketAddr = "127.0.0.1:18193".parse().expect("addr");
    let r = first_answer(addr, &proxy);
    assert_eq!(r.whoami().as_deref(), Some(remote.as_str()), "{}", r.body);
    eprintln!(
        "anchor created {anchored:?} after swarm-sticky was ready (image build included); the task on node 2 answered after {:?}",
        ready.elapsed()
    );
    let anchors = manager.docker(&[
        "service",
        "ls",
        "-q",
        "--filter",
        "label=com.swarm-sticky.anchor.network",
    ]);
    assert_eq!(anchors.lines().count(), 1, "one anchor: {anchors}");
    let placed = manager.docker(&["service", "ps", "-q", "--filter", "node=node1", anchors.trim()]);
    assert!(!placed.is_empty(), "the anchor runs on node 1");
    let cookie = r.set_cookie().expect("cookie");
    for _ in 0..20 {
        let again = get_with(addr, "/", Some(&cookie)).expect("replay");
        assert_eq!(again.whoami().as_deref(), Some(remote.as_str()));
    }

    manager.docker(&["service", "rm", &svc]);
    proxy.wait_for_line("removed the anchor", Duration::from_secs(30));
    let left = manager.docker(&[
        "service",
        "ls",
        "-q",
        "--filter",
        "label=com.swarm-sticky.anchor.network",
    ]);
    assert!(left.is_empty(), "anchor left behind: {left}");
    drop(proxy);
}
