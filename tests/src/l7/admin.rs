//! The admin API of a running `swarm-sticky run` with static backends:
//! its JSON and metrics follow the traffic, a drain shows up and takes
//! effect, write actions need the token, and reload works from the API.

use std::time::Duration;

use crate::harness::{
    backend::Whoami,
    client::{self, Response},
    instance::{Instance, wait_until},
};

const TOKEN: &str = "test-token-0123456789abcdef";

fn backend_flags(backends: &[&Whoami]) -> Vec<String> {
    backends
        .iter()
        .flat_map(|b| ["--backend".to_owned(), format!("{}=http://{}", b.name, b.addr)])
        .collect()
}

fn token_file(dir: &std::path::Path) -> String {
    let path = dir.join("admin.token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path.display().to_string()
}

fn post(i: &Instance, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    client::request(i.admin, "POST", path, &headers).unwrap()
}

fn backend<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["services"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no backend {name} in {status}"))
}

/// Counters in `/api/status` and `/metrics` match the requests sent (new
/// sessions, sticky hits, a forged cookie); draining one backend shows in
/// both, moves new sessions away from it and keeps its pinned client.
#[test]
fn api_and_metrics_follow_traffic_and_drain() {
    let dir = tempfile::tempdir().unwrap();
    let (w1, w2) = (Whoami::start("w1"), Whoami::start("w2"));
    let mut args = backend_flags(&[&w1, &w2]);
    args.extend(["--admin-token-file".to_owned(), token_file(dir.path())]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let i = Instance::start(dir.path(), &args);
    assert_eq!(i.admin_get("/readyz").status, 200);

    let fresh: Vec<Response> = (0..10).map(|_| client::get(i.listen, "/").unwrap()).collect();
    assert!(fresh.iter().all(|r| r.status == 200));
    let on_w1 = fresh.iter().find(|r| r.whoami().as_deref() == Some("w1")).unwrap();
    let cookie = on_w1.set_cookie().unwrap();
    for _ in 0..5 {
        let r = client::get_with(i.listen, "/", Some(&cookie)).unwrap();
        assert_eq!(r.whoami().as_deref(), Some("w1"));
    }
    let (name, value) = cookie.split_once('=').unwrap();
    // A character inside the tag (not the last one, whose low bits
    // must stay zero in canonical base64): a signature mismatch.
    let mid = value.len() - 3;
    let swapped = if &value[mid..=mid] == "A" { "B" } else { "A" };
    let forged = format!("{name}={}{swapped}{}", &value[..mid], &value[mid + 1..]);
    assert_eq!(client::get_with(i.listen, "/", Some(&forged)).unwrap().status, 200);

    let st = i.admin_json("/api/status");
    let svc = &st["services"][0];
    assert_eq!(svc["requests"], 16, "{svc}");
    assert_eq!(svc["decisions"]["new"], 10, "{svc}");
    assert_eq!(svc["decisions"]["hit"], 5, "{svc}");
    assert_eq!(svc["decisions"]["rejected"], 1, "{svc}");
    assert_eq!(svc["rejected"]["forged"], 1, "{svc}");
    let (b1, b2) = (backend(&st, "w1"), backend(&st, "w2"));
    assert_eq!(b1["sticky_hits"], 5);
    assert_eq!(
        b1["sessions"].as_u64().unwrap() + b2["sessions"].as_u64().unwrap(),
        11,
        "ten new sessions and one after the forged cookie"
    );
    assert_eq!(b1["state"], "healthy");
    let accepted: u64 = st["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["accepted"].as_u64().unwrap())
        .sum();
    assert_eq!(accepted, 16, "one connection per request");
    assert_eq!(st["access"]["writes"], true);

    let w1_requests = b1["requests"].as_f64().unwrap();
    let series = r#"swarm_sticky_requests_total{service="default",backend="w1",code="200"}"#;
    assert_eq!(i.metric(series), Some(w1_requests));
    assert_eq!(
        i.metric(r#"swarm_sticky_request_duration_seconds_count{service="default"}"#),
        Some(16.0)
    );
    assert_eq!(
        i.metric(r#"swarm_sticky_sticky_decisions_total{service="default",decision="hit"}"#),
        Some(5.0)
    );
    assert_eq!(
        i.metric(r#"swarm_sticky_cookies_rejected_total{service="default",reason="forged"}"#),
        Some(1.0)
    );
    for (name, b) in [("w1", b1), ("w2", b2)] {
        let labels = format!(r#"service="default",backend="{name}""#);
        assert_eq!(
            i.metric(&format!("swarm_sticky_sessions_total{{{labels}}}")),
            b["sessions"].as_f64()
        );
        assert_eq!(
            i.metric(&format!("swarm_sticky_failovers_total{{{labels}}}")),
            Some(0.0)
        );
        assert_eq!(i.metric(&format!("swarm_sticky_backend_weight{{{labels}}}")), Some(1.0));
    }
    let per_worker = |family: &str| -> f64 {
        (0..2)
            .map(|w| {
                i.metric(&format!(r#"swarm_sticky_{family}{{worker="{w}"}}"#))
                    .expect(family)
            })
            .sum()
    };
    assert_eq!(per_worker("connections_accepted_total"), 16.0);
    // The scrape's own connection is the admin listener's, not a worker's.
    assert_eq!(per_worker("connections_open"), 0.0);
    assert_eq!(
        i.metric(r#"swarm_sticky_steering_info{steering="reuseport"}"#),
        Some(1.0)
    );
    let metrics = i.admin_get("/metrics");
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{}",
        metrics.head
    );

    // More traffic moves the numbers.
    for _ in 0..4 {
        client::get_with(i.listen, "/", Some(&cookie)).unwrap();
    }
    assert_eq!(i.metric(series), Some(w1_requests + 4.0));

    // Drain w1.
    let r = post(&i, "/api/services/default/backends/w1/drain", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.body);
    let st = i.admin_json("/api/services");
    let b1 = st[0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "w1")
        .unwrap();
    assert_eq!(
        (b1["state"].as_str(), b1["draining"].as_bool()),
        (Some("draining"), Some(true))
    );
    assert_eq!(
        i.metric(r#"swarm_sticky_backend_state{service="default",backend="w1",state="draining"}"#),
        Some(1.0)
    );
    for _ in 0..6 {
        assert_eq!(client::get(i.listen, "/").unwrap().whoami().as_deref(), Some("w2"));
    }
    let pinned = client::get_with(i.listen, "/", Some(&cookie)).unwrap();
    assert_eq!(pinned.whoami().as_deref(), Some("w1"), "a pinned session stays");
    assert!(pinned.set_cookie().is_none());

    let r = post(&i, "/api/services/default/backends/w1/undrain", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until("w1 healthy again", Duration::from_secs(5), || {
        backend(&i.admin_json("/api/status"), "w1")["state"] == "healthy"
    });
    let r = post(&i, "/api/services/default/backends/nope/drain", Some(TOKEN));
    assert_eq!(r.status, 404, "{}", r.body);
}

/// Without a token file write actions are disabled (403); with one, no
/// token or a wrong one gets 401 with a Bearer challenge, the right one
/// 200. Reads from loopback need no token, but a wrong token is refused.
#[test]
fn writes_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = Whoami::start("w1");
    let flags = backend_flags(&[&w1]);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let open = Instance::start(dir.path(), &args);
    let r = post(&open, "/api/services/default/backends/w1/drain", Some(TOKEN));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("--admin-token-file"), "{}", r.body);
    assert_eq!(open.admin_json("/api/status")["access"]["writes"], false);
    drop(open);

    let mut flags = backend_flags(&[&w1]);
    flags.extend(["--admin-token-file".to_owned(), token_file(dir.path())]);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let i = Instance::start(dir.path(), &args);
    let drain = "/api/services/default/backends/w1/drain";
    let r = post(&i, drain, None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")),
        "{}",
        r.head
    );
    assert_eq!(post(&i, drain, Some("not-the-token-at-all")).status, 401);
    assert_eq!(
        backend(&i.admin_json("/api/status"), "w1")["draining"],
        false,
        "a refused drain did nothing"
    );
    assert_eq!(post(&i, drain, Some(TOKEN)).status, 200);
    assert_eq!(backend(&i.admin_json("/api/status"), "w1")["draining"], true);

    let bad = client::request(i.admin, "GET", "/api/status", &[("Authorization", "Bearer wrong")]).unwrap();
    assert_eq!(bad.status, 401);
    let good = client::request(
        i.admin,
        "GET",
        "/api/status",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
    .unwrap();
    assert_eq!(good.status, 200);
}

/// DNS rebinding: a page whose name was rebound to 127.0.0.1 reaches the
/// admin listener from the user's browser, but names its own host. Reads
/// without the token answer only loopback names; the token works with any
/// host and any case of the `Bearer` scheme.
#[test]
fn loopback_reads_refuse_foreign_host_names() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = Whoami::start("w1");
    let mut args = backend_flags(&[&w1]);
    args.extend(["--admin-token-file".to_owned(), token_file(dir.path())]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let i = Instance::start(dir.path(), &args);
    let get = |headers: &[(&str, &str)]| client::request(i.admin, "GET", "/api/status", headers).unwrap();
    let port = i.admin.port();
    let rebound = format!("attacker.example:{port}");
    let r = get(&[("Host", &rebound)]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("loopback names"), "{}", r.body);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "localhost".to_owned(),
    ] {
        assert_eq!(get(&[("Host", &host)]).status, 200, "{host}");
    }
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {TOKEN}");
        let r = get(&[("Host", &rebound), ("Authorization", &auth)]);
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
    }
    assert_eq!(get(&[("Host", &rebound)]).status, 401);
    assert_eq!(i.admin_get("/healthz").status, 200, "health answers everyone");
}

/// `POST /api/reload` re-reads `--config`: a new backend appears; an
/// invalid file is refused with 422 and the running table stays.
#[test]
fn reload_from_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (w1, w2) = (Whoami::start("w1"), Whoami::start("w2"));
    let config = dir.path().join("services.toml");
    let write = |backends: &[&Whoami]| {
        let mut text = String::from("[[services]]\nname = \"web\"\n");
        for b in backends {
            text.push_str(&format!(
                "[[services.backends]]\nname = \"{}\"\nurl = \"http://{}\"\n",
                b.name, b.addr
            ));
        }
        std::fs::write(&config, text).unwrap();
    };
    write(&[&w1]);
    let token = token_file(dir.path());
    let config_arg = config.display().to_string();
    let i = Instance::start(dir.path(), &["--config", &config_arg, "--admin-token-file", &token]);
    let names = || i.backend_names();
    assert_eq!(names(), ["w1"]);
    write(&[&w1, &w2]);
    let r = post(&i, "/api/reload", Some(TOKEN));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(), ["w1", "w2"]);

    std::fs::write(&config, "[[services]]\nname = \"web\"\n").unwrap();
    let r = post(&i, "/api/reload", Some(TOKEN));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("services[0]"), "the error names the field: {}", r.body);
    assert_eq!(names(), ["w1", "w2"], "the running table stays");
}

/// A request whose backend died counts a failover for that backend, and a
/// WebSocket's bytes are counted per direction once it closes: both in
/// `/api/status` and in `/metrics`.
#[test]
fn failovers_and_tunnel_bytes_reach_the_metrics() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().unwrap();
    let (mut w1, w2) = (Whoami::start("w1"), Whoami::start("w2"));
    let args = backend_flags(&[&w1, &w2]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let i = Instance::start(dir.path(), &args);
    let on_w1 = (0..4)
        .map(|_| client::get(i.listen, "/").unwrap())
        .find(|r| r.whoami().as_deref() == Some("w1"))
        .expect("a new session on w1");
    let cookie = on_w1.set_cookie().unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (sent, echoed) = rt.block_on(async {
        let (mut ws, _) = crate::harness::proxy::websocket(i.listen).await;
        let text = "x".repeat(1000);
        ws.send(Message::text(text.clone())).await.unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echo, Message::text(text));
        ws.close(None).await.unwrap();
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {}
        (1000.0, 1000.0)
    });
    let ws_backend = |st: &serde_json::Value| {
        st["services"][0]["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["tunnel_bytes_up"].as_u64().unwrap_or(0) > 0)
            .cloned()
    };
    wait_until("the tunnel's bytes counted", Duration::from_secs(10), || {
        ws_backend(&i.admin_json("/api/status")).is_some()
    });
    let b = ws_backend(&i.admin_json("/api/status")).unwrap();
    let name = b["name"].as_str().unwrap();
    for (direction, at_least) in [("up", sent), ("down", echoed)] {
        let counted = i.metric(&format!(
            r#"swarm_sticky_tunnel_bytes_total{{service="default",backend="{name}",direction="{direction}"}}"#
        ));
        assert_eq!(counted, b[format!("tunnel_bytes_{direction}")].as_f64(), "{direction}");
        assert!(counted.is_some_and(|n| n >= at_least), "{direction}: {counted:?}");
    }

    w1.kill();
    let r = client::get_with(i.listen, "/", Some(&cookie)).unwrap();
    assert_eq!(r.whoami().as_deref(), Some("w2"), "{}", r.body);
    let failovers = i.metric(r#"swarm_sticky_failovers_total{service="default",backend="w1"}"#);
    assert_eq!(failovers, Some(1.0));
    assert_eq!(backend(&i.admin_json("/api/status"), "w1")["failovers"], 1);
}
