//! Automatic certificates on a real three-manager swarm, swarm-sticky on
//! each manager and Let's Encrypt's test CA (Pebble) on the test's LAN:
//! one order per name, every manager serving the same certificate, the
//! CA's validation answered by a manager that did not place the order, the
//! ordering manager killed mid-order and another completing it once the
//! lock expires, a renewal under load through two managers with no failed
//! request, and nothing secret in clear in the swarm's configs.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use base64::Engine as _;

use super::cluster;
use crate::harness::{
    acme::{Pebble, PebbleSpec},
    client::get,
    https_load::{HttpsLoad, LoadSpec},
    instance::{free_port, wait_until},
    multinode::{
        Cluster, host_ip,
        proxy::{NodeProxy, PORT},
        service::{Overlay, SwarmService},
    },
    tls::{path, s_client, same_serial},
};

/// The HTTPS port on every node.
const TLS_PORT: u16 = 8443;

/// Order locks expire after this (the kill drill waits it out).
const LOCK_TTL: &str = "15";

/// The managed certificates in manager `p`'s `/api/status`.
fn managed(p: &NodeProxy) -> Vec<serde_json::Value> {
    let Ok(r) = get(p.admin, "/api/status") else {
        return Vec::new();
    };
    let status: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    status["tls"]["acme"].as_array().cloned().unwrap_or_default()
}

/// The state of `name`'s certificate on `p`, and its serial.
fn state(p: &NodeProxy, name: &str) -> Option<(String, Option<String>)> {
    managed(p).into_iter().find(|c| c["names"][0] == name).map(|c| {
        (
            c["state"].as_str().unwrap_or_default().to_owned(),
            c["serial"].as_str().map(str::to_owned),
        )
    })
}

/// swarm-sticky on manager `i`, with HTTPS and ACME against `pebble`.
fn start(cluster: &Cluster, i: usize, pebble: &Pebble) -> NodeProxy {
    let https = format!("https://{}:{TLS_PORT}", cluster.nodes[i].ip);
    let root = path(&pebble.server_root);
    NodeProxy::start(
        cluster,
        i,
        &[
            "--listen",
            &https,
            "--acme-directory",
            &pebble.directory,
            "--acme-ca-root",
            &root,
            "--acme-email",
            "ops@example.com",
            "--acme-retry",
            "1",
            "--acme-lock-ttl",
            LOCK_TTL,
        ],
    )
}

/// Waits until `name` is valid on every one of `proxies` with one serial;
/// that serial.
fn wait_valid_everywhere(proxies: &[&NodeProxy], name: &str, pebble: &Pebble, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let states: Vec<_> = proxies.iter().map(|p| state(p, name)).collect();
        if let Some(Some((_, Some(serial)))) = states.first()
            && states
                .iter()
                .all(|s| matches!(s, Some((st, Some(x))) if st == "valid" && x == serial))
        {
            return serial.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{name} not valid with one serial on every manager within {timeout:?}: {states:?}\n--- pebble:\n{}",
            pebble.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until one of `proxies` orders `name`; its index in `proxies`.
fn orderer(proxies: &[&NodeProxy], name: &str, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(i) = proxies
            .iter()
            .position(|p| state(p, name).is_some_and(|(s, _)| s == "ordering"))
        {
            return i;
        }
        assert!(Instant::now() < deadline, "nobody ordered {name} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The running proxies.
fn refs(ps: &[Option<NodeProxy>]) -> Vec<&NodeProxy> {
    ps.iter().flatten().collect()
}

/// The serial `addr` serves to SNI `name`.
fn served(addr: SocketAddr, name: &str) -> Option<String> {
    s_client(addr, Some(name), "", &[]).serial
}

fn tls_addr(cluster: &Cluster, i: usize) -> SocketAddr {
    format!("{}:{TLS_PORT}", cluster.nodes[i].ip).parse().unwrap()
}

/// A whoami service answering `name`, ACME asked for with the Traefik v1
/// tutorial's labels and the https entry point.
fn service(cluster: &Cluster, net: &Overlay, svc: &str, name: &str) -> SwarmService {
    SwarmService::tutorial(
        &cluster.nodes[0],
        svc,
        net,
        "/",
        &[
            &format!("traefik.frontend.rule=Host:{name}"),
            "traefik.frontend.entryPoints=http,https",
        ],
        &["--replicas", "2"],
    )
}

#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn three_managers_share_one_order_per_name_survive_the_orderer_dying_and_renew_under_load() {
    let cluster = cluster(3, 0);
    let dir = tempfile::tempdir().unwrap();
    let pebble_at: SocketAddr = format!("{}:{}", host_ip(), free_port().port()).parse().unwrap();
    let pebble = Pebble::start(
        dir.path(),
        &PebbleSpec {
            http_port: PORT,
            tls_port: TLS_PORT,
            validity_secs: Some(60),
            listen: Some(pebble_at),
        },
    );
    let net = Overlay::create(&cluster.nodes[0], "acmenet");
    let _a = service(&cluster, &net, "acme-a", "a.test");
    let started = Instant::now();
    let mut proxies: Vec<Option<NodeProxy>> = (0..3).map(|i| Some(start(&cluster, i, &pebble))).collect();

    // 1. One manager orders; the CA validates at another one.
    let by = orderer(&refs(&proxies), "a.test", Duration::from_secs(60));
    let validator = (by + 1) % 3;
    pebble.add_a("a.test", &cluster.nodes[validator].ip);
    let serial = wait_valid_everywhere(&refs(&proxies), "a.test", &pebble, Duration::from_secs(60));
    eprintln!(
        "a.test ordered by node{}, validated at node{}, served by all 3 managers {:?} after they started",
        by + 1,
        validator + 1,
        started.elapsed()
    );
    assert_eq!(
        pebble.count("Added order"),
        1,
        "one order for a.test:\n{}",
        pebble.log()
    );
    assert_eq!(pebble.count("Issued certificate"), 1);
    assert_eq!(
        pebble.count("accounts in memory"),
        1,
        "one account for every manager:\n{}",
        pebble.log()
    );
    let validator_log = proxies[validator].as_ref().unwrap().proxy.stderr();
    assert!(
        validator_log.contains("ACME HTTP-01 challenge answered"),
        "node{} answered the validation of node{}'s order:\n{validator_log}",
        validator + 1,
        by + 1
    );
    for i in 0..3 {
        let s = served(tls_addr(&cluster, i), "a.test").expect("a certificate");
        assert!(same_serial(&s, &serial), "node{} serves {s}, not {serial}", i + 1);
    }
    no_secret_in_clear(&cluster);

    // 2. The orderer of a second name dies mid-order; another completes it
    // once the lock expires.
    let _b = service(&cluster, &net, "acme-b", "b.test");
    let dead = orderer(&refs(&proxies), "b.test", Duration::from_secs(60));
    let dead_node = refs(&proxies)[dead].node;
    proxies[dead_node].take().unwrap().kill();
    let killed_at = Instant::now();
    let survivors: Vec<usize> = refs(&proxies).iter().map(|p| p.node).collect();
    for name in ["a.test", "b.test"] {
        pebble.add_a(name, &cluster.nodes[survivors[0]].ip);
    }
    wait_valid_everywhere(&refs(&proxies), "b.test", &pebble, Duration::from_secs(90));
    let took = killed_at.elapsed();
    eprintln!("b.test completed by a survivor {took:?} after its orderer died");
    assert!(
        took >= Duration::from_secs(10),
        "completed only after the dead manager's lock expired ({LOCK_TTL} s), not {took:?}"
    );

    // 3. A renewal of a.test under load through both survivors.
    let root = pebble.issuing_root();
    let addrs: Vec<SocketAddr> = survivors.iter().map(|i| tls_addr(&cluster, *i)).collect();
    let before: Vec<String> = addrs.iter().map(|a| served(*a, "a.test").unwrap()).collect();
    let renewal = Instant::now();
    let (ok, failed) = load_until_renewed(&addrs, &root, &before);
    eprintln!(
        "renewal under load through 2 managers: {ok} requests, {failed} failed, new serial on both {:?} after the load started",
        renewal.elapsed()
    );
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during the renewal",
        ok + failed
    );
    assert!(ok > 100, "the load ran ({ok} requests)");
    no_secret_in_clear(&cluster);
}

/// HTTPS requests for a.test through every address of `addrs` (kept-alive
/// and new connections) until each serves a serial other than its
/// `before`; (succeeded, failed).
fn load_until_renewed(addrs: &[SocketAddr], root: &Path, before: &[String]) -> (u64, u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let spec = LoadSpec {
            kept: 1,
            fresh: 1,
            pause: |_| Duration::from_millis(25),
            limit: Duration::from_secs(120),
        };
        let load = HttpsLoad::start(addrs, root, &spec).await;
        let (addrs, before) = (addrs.to_vec(), before.to_vec());
        tokio::task::spawn_blocking(move || {
            wait_until("a.test renewed on every survivor", Duration::from_secs(110), || {
                addrs
                    .iter()
                    .zip(&before)
                    .all(|(a, b)| served(*a, "a.test").is_some_and(|s| !same_serial(&s, b)))
            });
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (ok, failed, _) = load.stop().await;
        (ok, failed)
    })
}

/// `docker config inspect` of every object swarm-sticky stored: sealed
/// certificates and account, no key or certificate in clear text.
fn no_secret_in_clear(cluster: &Cluster) {
    let manager = &cluster.nodes[0];
    let ids = manager.docker(&["config", "ls", "-q", "--filter", "label=swarm-sticky.acme"]);
    let ids: Vec<&str> = ids.lines().collect();
    assert!(!ids.is_empty(), "ACME state is stored in the swarm's configs");
    let mut args = vec!["config", "inspect"];
    args.extend(&ids);
    let inspected: serde_json::Value = serde_json::from_str(&manager.docker(&args)).unwrap();
    let mut kinds = Vec::new();
    for c in inspected.as_array().unwrap() {
        let kind = c["Spec"]["Labels"]["swarm-sticky.acme"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let data = base64::engine::general_purpose::STANDARD
            .decode(c["Spec"]["Data"].as_str().unwrap_or_default())
            .unwrap();
        let text = String::from_utf8_lossy(&data);
        for clear in ["PRIVATE KEY", "BEGIN CERTIFICATE", "key_pkcs8"] {
            assert!(
                !text.contains(clear),
                "{} holds {clear:?} in clear text",
                c["Spec"]["Name"]
            );
        }
        kinds.push(kind);
    }
    for kind in ["account", "cert"] {
        assert!(kinds.iter().any(|k| k == kind), "a sealed {kind} config: {kinds:?}");
    }
}
