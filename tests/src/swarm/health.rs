//! Docker HEALTHCHECK against a real engine: a task whose container turns
//! unhealthy gets no new sessions and its pinned clients fail over, before
//! Swarm itself fails the task.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use super::changes::{labelled, serving, spread};
use crate::harness::{
    client::get_with,
    swarm::{Network, Service, docker, ensure_swarm, health_image},
};

/// Two replicas with a HEALTHCHECK (`swarm-sticky probe` every second);
/// one is made unhealthy from inside its container. Within a bounded time
/// every new session goes to the healthy one and a client pinned to the
/// unhealthy one moves there with a new cookie, and this happens while the
/// unhealthy container still runs and Swarm still lists its task as
/// running (Swarm waits about 2 s, its gossip delay, before it stops the
/// container). Then Swarm replaces the task; the replacement's container
/// is healthy and gets sessions again.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn an_unhealthy_container_gets_no_sessions_and_its_clients_fail_over() {
    ensure_swarm();
    let net = Network::new("health");
    let args = labelled(&net, "2", &[]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let svc = Service::create_from("health", &refs, health_image());
    let (proxy, addr) = serving("127.0.0.1:18189", "127.0.0.1:19199", 2);

    let first = get_with(addr, "/", None).expect("first request");
    let cookie = first.set_cookie().expect("cookie");
    let victim = first.whoami().expect("whoami");
    let containers = svc.containers();
    let victim_id = containers
        .iter()
        .find(|(_, h)| *h == victim)
        .map(|(id, _)| id.clone())
        .expect("the pinned container");
    let healthy = containers
        .iter()
        .find(|(_, h)| *h != victim)
        .map(|(_, h)| h.clone())
        .expect("the other container");

    let flipped = Instant::now();
    Service::set_health(&victim_id, false);
    // Every new session on the healthy task: ten cookie-less requests in a
    // row (the balancer alternates, so an open gate would show at once).
    let mut streak = 0;
    while streak < 10 {
        assert!(
            flipped.elapsed() < Duration::from_secs(10),
            "new sessions still reach the unhealthy container 10 s after its health check started failing; stderr:\n{}",
            proxy.stderr()
        );
        match get_with(addr, "/", None).ok().and_then(|r| r.whoami()) {
            Some(n) if n == healthy => streak += 1,
            _ => streak = 0,
        }
    }
    let gated = flipped.elapsed();
    let moved = get_with(addr, "/", Some(&cookie)).expect("the pinned client's next request");
    assert_eq!(moved.whoami().as_deref(), Some(healthy.as_str()), "{}", moved.body);
    assert!(moved.set_cookie().is_some(), "the moved client gets a new cookie");
    let state = docker(&[
        "inspect",
        "-f",
        "{{.State.Running}} {{.State.Health.Status}}",
        &victim_id,
    ]);
    assert_eq!(
        state, "true unhealthy",
        "the gate closed {gated:?} after the flip, but only once the container was gone: the HEALTHCHECK state was not used"
    );
    eprintln!("no new sessions on the unhealthy container {gated:?} after its check began failing (it still ran)");

    // Swarm fails the task and starts a replacement, which takes sessions
    // once healthy (Swarm keeps it `starting` until then).
    let deadline = Instant::now() + Duration::from_secs(60);
    let replaced = loop {
        let now: BTreeSet<String> = svc.hostnames().into_iter().collect();
        if now.len() == 2 && !now.contains(&victim) {
            break now;
        }
        assert!(Instant::now() < deadline, "no replacement within 60 s: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut seen = BTreeSet::new();
    while seen != replaced {
        assert!(
            Instant::now() < deadline,
            "the replacement got no sessions: saw {seen:?}, running {replaced:?}"
        );
        seen.extend(spread(addr, "/", 4));
    }
    assert!(
        proxy.stderr().contains("HEALTHCHECK is not healthy"),
        "the unhealthy task was not reported"
    );
}
