//! Changes in the swarm while clients are pinned: scaling, a killed
//! container, and the other label spellings next to a broken one.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::tutorial::{first_answer, start_proxy_on};
use crate::harness::{
    client::get_with,
    swarm::{Network, Service, docker, ensure_swarm},
};

pub(super) fn labelled(net: &Network, replicas: &str, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["--replicas", replicas, "--network", &net.name]
        .iter()
        .map(ToString::to_string)
        .collect();
    for l in [
        format!("traefik.docker.network={}", net.name),
        "traefik.port=8000".into(),
    ]
    .iter()
    .chain(extra)
    {
        args.extend(["--label".to_string(), l.clone()]);
    }
    args
}

pub(super) fn create(tag: &str, args: &[String]) -> Service {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Service::create(tag, &refs)
}

/// Distinct whoami names seen over `n` cookie-less requests to `path`.
pub(super) fn spread(addr: SocketAddr, path: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .filter_map(|_| get_with(addr, path, None).ok()?.whoami())
        .collect()
}

/// Starts swarm-sticky on `listen` and waits (bounded) until `tasks`
/// different tasks answer through it.
pub(super) fn serving(listen: &str, admin: &str, tasks: usize) -> (crate::harness::process::Proxy, SocketAddr) {
    let proxy = start_proxy_on(listen, admin);
    let addr: SocketAddr = listen.parse().expect("addr");
    first_answer(addr, &proxy);
    let deadline = Instant::now() + Duration::from_secs(60);
    while spread(addr, "/", tasks * 4).len() < tasks {
        assert!(Instant::now() < deadline, "{tasks} tasks never answered");
    }
    (proxy, addr)
}

/// Scaling 3 → 5: once the new containers run, they get new sessions
/// within 2 s.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn scaled_up_tasks_get_sessions_within_two_seconds() {
    ensure_swarm();
    let net = Network::new("scale");
    let svc = create("scale", &labelled(&net, "3", &[]));
    let (_proxy, addr) = serving("127.0.0.1:18185", "127.0.0.1:19195", 3);

    docker(&["service", "scale", "--detach", &format!("{}=5", svc.name)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while svc.hostnames().len() < 5 {
        assert!(
            Instant::now() < deadline,
            "the swarm did not run 5 containers within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let running = Instant::now();
    let mut seen = BTreeSet::new();
    while seen.len() < 5 {
        seen.extend(spread(addr, "/", 5));
        assert!(
            running.elapsed() < Duration::from_secs(2),
            "2 s after the 5th container ran, only {} tasks got sessions: {seen:?}",
            seen.len()
        );
    }
    eprintln!("all 5 tasks served {:?} after the last one ran", running.elapsed());
}

/// A pinned task's container is killed: the client's next request is
/// answered by another task, with a new cookie.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn a_killed_container_fails_over_on_the_next_request() {
    ensure_swarm();
    let net = Network::new("kill");
    let svc = create("kill", &labelled(&net, "2", &[]));
    let (_proxy, addr) = serving("127.0.0.1:18186", "127.0.0.1:19196", 2);
    let r = get_with(addr, "/", None).expect("first");
    let (cookie, pinned) = (r.set_cookie().expect("cookie"), r.whoami().expect("whoami"));
    let ids = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={}", svc.name),
    ]);
    let victim = ids
        .lines()
        .find(|id| docker(&["inspect", "-f", "{{.Config.Hostname}}", id]) == pinned)
        .expect("the pinned container");
    docker(&["kill", victim]);

    let r = get_with(addr, "/", Some(&cookie)).expect("the next request is answered");
    assert_eq!(r.status, 200, "{}", r.body);
    let now = r.whoami().expect("whoami");
    assert_ne!(now, pinned, "answered by the killed container?");
    assert!(r.set_cookie().is_some(), "the moved client gets a new cookie");
}

/// The Traefik v2 and swarm-sticky spellings route by their rules; a
/// service with a broken label is left out with a warning, and the others
/// keep working.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn v2_and_own_labels_work_and_a_bad_label_is_reported() {
    ensure_swarm();
    let net = Network::new("labels");
    let v2 = create(
        "v2",
        &labelled(
            &net,
            "1",
            &[
                "traefik.http.routers.web.rule=PathPrefix(`/v2`)".into(),
                "traefik.http.services.web.loadbalancer.sticky.cookie.name=v2sess".into(),
            ],
        ),
    );
    let mut own_args: Vec<String> = ["--replicas", "1", "--network", &net.name]
        .iter()
        .map(ToString::to_string)
        .collect();
    for l in [
        "swarm-sticky.port=8000".to_string(),
        format!("swarm-sticky.network={}", net.name),
        "swarm-sticky.rule.path-prefix=/own".into(),
    ] {
        own_args.extend(["--label".into(), l]);
    }
    let own = create("own", &own_args);
    let bad_args: Vec<String> = [
        "--replicas",
        "1",
        "--network",
        &net.name,
        "--label",
        "swarm-sticky.port=http",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let bad = create("bad", &bad_args);

    let proxy = start_proxy_on("127.0.0.1:18187", "127.0.0.1:19197");
    let addr: SocketAddr = "127.0.0.1:18187".parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = |path: &str| {
        get_with(addr, path, None)
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| r.whoami())
    };
    while answer("/v2").is_none() || answer("/own").is_none() {
        assert!(
            Instant::now() < deadline,
            "v2/own services not served within 60 s; stderr:\n{}",
            proxy.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        v2.hostnames().contains(&answer("/v2").expect("v2")),
        "/v2 is served by the v2 service"
    );
    assert!(
        own.hostnames().contains(&answer("/own").expect("own")),
        "/own is served by the own-labels service"
    );
    let v2_response = get_with(addr, "/v2", None).expect("v2");
    assert!(
        v2_response.set_cookie().is_some_and(|c| c.starts_with("v2sess=")),
        "{}",
        v2_response.head
    );
    let warning = format!("service={}", bad.name);
    let log = proxy.stderr();
    assert!(
        log.lines().any(|l| l.contains(&warning) && l.contains("not a port")),
        "no warning for the bad label:\n{log}"
    );
    // The admin API shows the same warning and the watcher's state.
    let admin: SocketAddr = "127.0.0.1:19197".parse().expect("admin");
    let body = get_with(admin, "/api/discovery", None).expect("admin discovery").body;
    let view: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(view["connected"], true, "{view}");
    assert!(view["table_age_secs"].as_f64().is_some(), "{view}");
    let listed =
        view["warnings"].as_array().expect("warnings").iter().any(|w| {
            w["service"] == bad.name.as_str() && w["warning"].as_str().is_some_and(|t| t.contains("not a port"))
        });
    assert!(listed, "the bad label is not on the admin API: {view}");
    // And /metrics says the same.
    let metric = |series: &str| crate::harness::client::metric(admin, series);
    assert_eq!(metric("swarm_sticky_docker_connected"), Some(1.0));
    assert!(
        metric("swarm_sticky_backend_table_age_seconds").is_some_and(|a| (0.0..60.0).contains(&a)),
        "{:?}",
        metric("swarm_sticky_backend_table_age_seconds")
    );
    let listed = view["warnings"].as_array().map_or(0, Vec::len);
    assert!(listed > 0);
    assert_eq!(metric("swarm_sticky_label_warnings"), Some(listed as f64));
}

/// `docker service update --force` (a rolling update, one task at a time)
/// under a bounded load of pinned clients: not one non-2xx response, and
/// afterwards every answer comes from a new container.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn a_rolling_update_under_load_answers_every_request() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    };
    ensure_swarm();
    let net = Network::new("roll");
    let svc = create("roll", &labelled(&net, "3", &[]));
    let (_proxy, addr) = serving("127.0.0.1:18188", "127.0.0.1:19198", 3);
    let before: BTreeSet<String> = svc.hostnames().into_iter().collect();

    let stop = Arc::new(AtomicBool::new(false));
    let (done, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, done, bad) = (stop.clone(), done.clone(), bad.clone());
            std::thread::spawn(move || {
                let mut cookie: Option<String> = None;
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match get_with(addr, "/", cookie.as_deref()) {
                        Ok(r) if r.status == 200 => {
                            if let Some(c) = r.set_cookie() {
                                cookie = Some(c);
                            }
                        }
                        _ => {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();
    docker(&["service", "update", "--force", "--quiet", &svc.name]);
    // The CLI waits for the update to converge; then the new tasks serve.
    let after: BTreeSet<String> = svc.hostnames().into_iter().collect();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    let (done, bad) = (done.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    assert!(done > 100, "only {done} requests during the update");
    assert_eq!(bad, 0, "{bad} of {done} requests failed during the rolling update");
    assert!(
        before.is_disjoint(&after),
        "the update replaced every container: {before:?} → {after:?}"
    );
    let now = spread(addr, "/", 12);
    assert!(
        now.is_subset(&after),
        "answers {now:?} come from the new containers {after:?}"
    );
}
