//! The classic tutorial as written, with swarm-sticky in place of Traefik:
//! an overlay network, a whoami service with the four Traefik v1 labels,
//! and `swarm-sticky run --docker` on the host.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use crate::harness::{
    client::{Response, get_with},
    process::Proxy,
    swarm::{Network, Service, ensure_swarm},
};

/// Where the test's swarm-sticky listens (loopback of the host).
const LISTEN: &str = "127.0.0.1:18181";

fn start_proxy() -> Proxy {
    let state = std::env::temp_dir().join(format!("ss-tutorial-{}", std::process::id()));
    let args: Vec<String> = [
        "run",
        "--docker",
        "--resync",
        "2",
        "--listen",
        LISTEN,
        "--steering",
        "reuseport",
        "--workers",
        "2",
        "--admin",
        "127.0.0.1:19191",
        "--state-dir",
        &state.display().to_string(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let mut p = Proxy::spawn_here(&args);
    p.wait_ready();
    p
}

/// Waits (bounded) until the proxy answers with a whoami body.
fn first_answer(addr: SocketAddr, proxy: &Proxy) -> Response {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = get_with(addr, "/", None)
            && r.status == 200
            && r.whoami().is_some()
        {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no whoami answer through the proxy within 60 s; stderr:\n{}",
            proxy.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tutorial_case(tag: &str, mode: &[&str], tasks: usize) {
    ensure_swarm();
    let net = Network::new(tag);
    let labels = [
        format!("traefik.docker.network={}", net.name),
        "traefik.port=8000".into(),
        "traefik.frontend.rule=PathPrefix:/".into(),
        "traefik.backend.loadbalancer.stickiness=true".into(),
    ];
    let mut args: Vec<&str> = mode.to_vec();
    args.extend(["--network", &net.name]);
    for l in &labels {
        args.extend(["--label", l.as_str()]);
    }
    let svc = Service::create(tag, &args);
    let proxy = start_proxy();
    let addr: SocketAddr = LISTEN.parse().expect("addr");

    // Wait until every task is in the table (the first answer may come
    // while the others are still starting).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = BTreeSet::new();
    while seen.len() < tasks {
        let r = first_answer(addr, &proxy);
        seen.insert(r.whoami().expect("whoami"));
        assert!(
            Instant::now() < deadline,
            "only {seen:?} of {tasks} tasks answered within 60 s"
        );
    }
    let hostnames: BTreeSet<String> = svc.hostnames().into_iter().collect();
    assert!(
        seen.is_subset(&hostnames),
        "answers {seen:?} are not the service's containers {hostnames:?}"
    );

    // The first response sets the cookie; 100 replays reach the same container.
    let first = get_with(addr, "/", None).expect("first request");
    let cookie = first.set_cookie().expect("the first response sets the sticky cookie");
    let pinned = first.whoami().expect("whoami");
    for i in 0..100 {
        let r = get_with(addr, "/", Some(&cookie)).expect("replay");
        assert_eq!(
            r.whoami().as_deref(),
            Some(pinned.as_str()),
            "replay {i} left the pinned container"
        );
        assert!(r.set_cookie().is_none(), "a valid cookie is not re-issued");
    }
    // Cookie-less requests spread over every task.
    let spread: BTreeSet<String> = (0..tasks * 4)
        .filter_map(|_| get_with(addr, "/", None).ok()?.whoami())
        .collect();
    assert_eq!(spread.len(), tasks, "cookie-less requests reached {spread:?}");
}

/// `--replicas 3`: sticky with the cookie, spread over the 3 tasks without.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn tutorial_replicated_service_is_sticky() {
    tutorial_case("tutrep", &["--replicas", "3"], 3);
}

/// `--mode global` (one task on this single-node swarm).
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn tutorial_global_service_is_sticky() {
    tutorial_case("tutglob", &["--mode", "global"], 1);
}
