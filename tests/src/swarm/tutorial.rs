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
    start_proxy_on(LISTEN, "127.0.0.1:19191")
}

/// Starts `swarm-sticky run --docker` on `listen`, with its own admin
/// address and its own state directory (so its own generated key).
pub(super) fn start_proxy_on(listen: &str, admin: &str) -> Proxy {
    let state = std::env::temp_dir().join(format!(
        "ss-tutorial-{}-{}",
        std::process::id(),
        listen.replace([':', '.'], "-")
    ));
    let args: Vec<String> = [
        "run",
        "--docker",
        "--resync",
        "2",
        "--listen",
        listen,
        "--steering",
        "reuseport",
        "--workers",
        "2",
        "--admin",
        admin,
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
pub(super) fn first_answer(addr: SocketAddr, proxy: &Proxy) -> Response {
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
    // Migration from Traefik v1: the cookie has the name Traefik v1 gave
    // it, and a Traefik v1 cookie (a task's URL) lands on that task once
    // and is replaced by a signed one under the same name.
    let v1_name = proxy_user::discovery::traefik_v1::cookie_name(&svc.name, None);
    assert!(
        cookie.starts_with(&format!("{v1_name}=")),
        "{cookie} is not named like Traefik v1's {v1_name}"
    );
    let format = format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", net.name);
    for (id, host) in svc.containers() {
        let ip = crate::harness::swarm::docker(&["inspect", "-f", &format, &id]);
        let r = get_with(addr, "/", Some(&format!("{v1_name}=http://{ip}:8000"))).expect("Traefik v1 cookie");
        assert_eq!(
            r.whoami().as_deref(),
            Some(host.as_str()),
            "the Traefik v1 cookie for {ip} moved"
        );
        let signed = r.set_cookie().expect("a Traefik v1 cookie is replaced");
        assert!(signed.starts_with(&format!("{v1_name}=")), "{signed}");
        let again = get_with(addr, "/", Some(&signed)).expect("signed replacement");
        assert_eq!(again.whoami().as_deref(), Some(host.as_str()));
        assert!(again.set_cookie().is_none());
    }

    // Cookie-less requests spread over every task.
    let spread: BTreeSet<String> = (0..tasks * 4)
        .filter_map(|_| get_with(addr, "/", None).ok()?.whoami())
        .collect();
    assert_eq!(spread.len(), tasks, "cookie-less requests reached {spread:?}");

    // The admin API names each backend's task and container.
    let admin: SocketAddr = "127.0.0.1:19191".parse().expect("addr");
    let body = get_with(admin, "/api/services", None).expect("admin API").body;
    let services: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let ours = services
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == svc.name.as_str()))
        .unwrap_or_else(|| panic!("no service {} in {body}", svc.name));
    let containers: Vec<String> = svc.containers().into_iter().map(|(id, _)| id).collect();
    let backends = ours["backends"].as_array().expect("backends");
    assert_eq!(backends.len(), tasks, "{ours}");
    for b in backends {
        let task = &b["task"];
        assert!(
            task["task"]
                .as_str()
                .is_some_and(|t| b["name"].as_str().is_some_and(|n| n.starts_with(t))),
            "the identity is the task plus its slot: {b}"
        );
        let container = task["container"].as_str().unwrap_or_default();
        assert!(
            !container.is_empty()
                && containers
                    .iter()
                    .any(|c| container.starts_with(c.as_str()) || c.starts_with(container)),
            "container {container:?} is not one of {containers:?}"
        );
        assert!(task["node"].as_str().is_some_and(|n| !n.is_empty()), "{b}");
    }
    // The cookie names a task's identity, never an overlay address.
    use base64::Engine as _;
    let value = cookie.split_once('=').expect("name=value").1;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .expect("base64url");
    let holds = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(
        backends
            .iter()
            .any(|b| holds(b["name"].as_str().unwrap_or("-").as_bytes())),
        "the cookie names none of the tasks: {raw:?}"
    );
    for b in backends {
        let addr: SocketAddr = b["addr"].as_str().and_then(|a| a.parse().ok()).expect("addr");
        let std::net::IpAddr::V4(ip) = addr.ip() else { continue };
        assert!(
            !holds(addr.ip().to_string().as_bytes()) && !holds(&ip.octets()),
            "the cookie holds {addr}: {raw:?}"
        );
    }
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

/// A second swarm-sticky (another published port, standing in for a
/// second manager, with a state directory of its own) accepts the cookies
/// the first issued and routes them to the same tasks: both derive the key
/// from the swarm's manager join token.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn a_second_instance_accepts_the_first_ones_cookies() {
    ensure_swarm();
    let net = Network::new("twomgr");
    let labels = [
        format!("traefik.docker.network={}", net.name),
        "traefik.port=8000".into(),
    ];
    let mut args: Vec<&str> = vec!["--replicas", "2", "--network", &net.name];
    for l in &labels {
        args.extend(["--label", l.as_str()]);
    }
    let _svc = Service::create("twomgr", &args);
    let first = start_proxy_on("127.0.0.1:18183", "127.0.0.1:19193");
    let second = start_proxy_on("127.0.0.1:18184", "127.0.0.1:19194");
    let (a, b): (SocketAddr, SocketAddr) = (
        "127.0.0.1:18183".parse().expect("a"),
        "127.0.0.1:18184".parse().expect("b"),
    );
    first_answer(a, &first);
    first_answer(b, &second);
    assert!(
        first.stderr().contains("derived from the swarm's manager join token"),
        "{}",
        first.stderr()
    );
    for _ in 0..10 {
        let r = get_with(a, "/", None).expect("first instance");
        let cookie = r.set_cookie().expect("cookie from the first instance");
        let pinned = r.whoami().expect("whoami");
        let on_second = get_with(b, "/", Some(&cookie)).expect("second instance");
        assert_eq!(
            on_second.whoami().as_deref(),
            Some(pinned.as_str()),
            "the second instance moved the session"
        );
        assert!(
            on_second.set_cookie().is_none(),
            "the second instance rejected the first one's cookie"
        );
    }
}
