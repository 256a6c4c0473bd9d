//! The Docker daemon stopped, then started again, while swarm-sticky runs.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::changes::{create, labelled, serving, spread};
use crate::harness::{
    client::get_with,
    dockerd,
    swarm::{Network, docker, ensure_swarm},
};

/// `/api/discovery` as JSON.
fn discovery(admin: SocketAddr) -> serde_json::Value {
    let body = get_with(admin, "/api/discovery", None).expect("admin API").body;
    serde_json::from_str(&body).expect("json")
}

/// Waits (bounded) until `/api/discovery` satisfies `pred`, answering
/// requests on `addr` meanwhile through `each` (which may assert).
fn wait_discovery(
    admin: SocketAddr,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
    mut each: impl FnMut(),
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let view = discovery(admin);
        if pred(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "{what} not within {timeout:?}: {view}");
        each();
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon dies (SIGKILL, as in a crash or an OOM kill) while two tasks
/// serve. Its containers keep running (their shims survive) and so does
/// swarm-sticky: pinned clients stay on their task and new ones are spread
/// over both from the last table, while `/api/discovery` says
/// disconnected and the table's age grows. The daemon is started again as
/// `cargo xtask test` starts it; it stops the orphaned containers (swarm
/// mode has no live-restore) and Swarm starts replacements. swarm-sticky
/// reconnects, shows a fresh table, serves the replacements (a pinned
/// client moves to its slot's new task), and follows a change made
/// afterwards (scaling to 3).
///
/// SIGKILL and not SIGTERM: a graceful stop (`systemctl stop docker`)
/// stops every container on the node before dockerd exits (2 s here), so
/// there is nothing local to keep serving; a crash is the case in which
/// serving on matters, and the restart is the same in both.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn serving_goes_on_while_the_daemon_is_down_and_changes_are_seen_after() {
    ensure_swarm();
    let net = Network::new("daemon");
    let svc = create("daemon", &labelled(&net, "2", &[]));
    let (proxy, addr) = serving("127.0.0.1:18190", "127.0.0.1:19200", 2);
    let admin: SocketAddr = "127.0.0.1:19200".parse().expect("admin");
    let before: BTreeSet<String> = svc.hostnames().into_iter().collect();
    let first = get_with(addr, "/", None).expect("first request");
    let (cookie, pinned) = (first.set_cookie().expect("cookie"), first.whoami().expect("whoami"));

    let restart = dockerd::Restart;
    let killed_in = dockerd::stop("KILL");
    let down = Instant::now();
    let mut served = 0u32;
    let mut check = || {
        let r = get_with(addr, "/", Some(&cookie)).expect("a pinned request while the daemon is down");
        assert_eq!(r.whoami().as_deref(), Some(pinned.as_str()), "{}", r.body);
        served += 1;
    };
    wait_discovery(
        admin,
        "disconnected",
        Duration::from_secs(10),
        |v| v["connected"] == false,
        &mut check,
    );
    let view = wait_discovery(
        admin,
        "a table older than 3 s",
        Duration::from_secs(20),
        |v| v["table_age_secs"].as_f64().is_some_and(|a| a > 3.0),
        &mut check,
    );
    assert!(view["last_error"].is_string(), "{view}");
    let metric = |series: &str| crate::harness::client::metric(admin, series);
    assert_eq!(
        metric("swarm_sticky_docker_connected"),
        Some(0.0),
        "/metrics says disconnected too"
    );
    assert!(
        metric("swarm_sticky_backend_table_age_seconds").is_some_and(|a| a > 3.0),
        "the table's age in /metrics: {:?}",
        metric("swarm_sticky_backend_table_age_seconds")
    );
    assert_eq!(
        spread(addr, "/", 8),
        before,
        "new sessions spread over the running tasks"
    );
    eprintln!(
        "daemon killed in {killed_in:?}; {served} pinned requests served during {:?} without it",
        down.elapsed()
    );

    let pinged = dockerd::start();
    let view = wait_discovery(
        admin,
        "connected again",
        Duration::from_secs(30),
        |v| v["connected"] == true,
        || {},
    );
    assert!(view["table_age_secs"].as_f64().is_some_and(|a| a < 5.0), "{view}");
    assert_eq!(
        crate::harness::client::metric(admin, "swarm_sticky_docker_connected"),
        Some(1.0)
    );
    drop(restart);
    eprintln!(
        "daemon answered {pinged:?} after its start; reconnected after {:?}",
        down.elapsed()
    );

    // The restarted daemon stops the orphans; Swarm replaces them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let now: BTreeSet<String> = svc.hostnames().into_iter().collect();
        if now.len() == 2 && now.is_disjoint(&before) {
            break now;
        }
        assert!(Instant::now() < deadline, "no replacements within 60 s: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut seen = BTreeSet::new();
    while seen != after {
        assert!(
            Instant::now() < deadline,
            "the replacements {after:?} got no sessions (saw {seen:?}); stderr:\n{}",
            proxy.stderr()
        );
        seen.extend(spread(addr, "/", 4));
    }
    let moved = get_with(addr, "/", Some(&cookie)).expect("the pinned client after the restart");
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert!(after.contains(&moved.whoami().expect("whoami")), "{}", moved.body);
    eprintln!("replacements served {:?} after the daemon died", down.elapsed());

    docker(&["service", "scale", "--detach", &format!("{}=3", svc.name)]);
    while seen.len() < 3 {
        assert!(Instant::now() < deadline, "the third task got no sessions: {seen:?}");
        seen.extend(spread(addr, "/", 6));
    }
}
