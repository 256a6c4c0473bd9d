//! Discovery against a real engine: the tutorial's labels select the
//! service, its running tasks become backends at their overlay addresses,
//! and those addresses answer from inside the overlay's namespace.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use proxy_user::{
    discovery::{
        table::Snapshot,
        tasks::TaskState,
        watch::{self, DiscoveryStatus},
    },
    netns::SocketFactory,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    sync::watch as channel,
};

use crate::harness::swarm::{Network, Service, ensure_swarm};

/// Waits (bounded) until the published table satisfies `pred`.
async fn wait_table(
    rx: &mut channel::Receiver<Arc<Snapshot>>,
    what: &str,
    pred: impl Fn(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    let waited = tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|s| pred(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match waited {
        Ok(Ok(s)) => s,
        _ => panic!("no table with {what} within 60 s; last: {:?}", rx.borrow()),
    }
}

/// Whether `ip` lies in the IPv4 `cidr` (`a.b.c.d/len`).
fn in_subnet(ip: std::net::IpAddr, cidr: &str) -> bool {
    let (base, len) = cidr.split_once('/').expect("cidr");
    let (Ok(base), Ok(len), std::net::IpAddr::V4(ip)) = (base.parse::<std::net::Ipv4Addr>(), len.parse::<u32>(), ip)
    else {
        return false;
    };
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(base) & mask
}

fn serving(s: &Snapshot, service: &str) -> usize {
    s.services.iter().find(|x| x.name == service).map_or(0, |x| {
        x.backends.iter().filter(|b| b.state == TaskState::Serving).count()
    })
}

/// The tutorial's four Traefik v1 labels, two replicas: both tasks are
/// discovered at their overlay addresses and each answers `I'm <its
/// container hostname>` through a socket made in the overlay's namespace;
/// scaling to 3 shows up in the table; an unlabelled service is ignored.
#[test]
#[ignore = "needs root and a Docker engine; run `cargo xtask test`"]
fn tutorial_labels_discover_tasks_reachable_in_the_overlay() {
    let host = ensure_swarm();
    let net = Network::new("disc");
    let labels = [
        format!("traefik.docker.network={}", net.name),
        "traefik.port=8000".into(),
        "traefik.frontend.rule=PathPrefix:/".into(),
        "traefik.backend.loadbalancer.stickiness=true".into(),
    ];
    let mut args: Vec<&str> = vec!["--replicas", "2", "--network", &net.name];
    for l in &labels {
        args.extend(["--label", l.as_str()]);
    }
    let svc = Service::create("whoami", &args);
    let _plain = Service::create("plain", &["--replicas", "1", "--network", &net.name]);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (tx, mut rx) = channel::channel(Arc::new(Snapshot::default()));
        let status = Arc::new(Mutex::new(DiscoveryStatus::default()));
        let watcher = tokio::spawn(watch::run(host.to_string(), Duration::from_secs(2), tx, status.clone()));

        let table = wait_table(&mut rx, "2 serving tasks", |s| serving(s, &svc.name) == 2).await;
        assert!(
            !table.services.iter().any(|s| s.name.starts_with("ss-plain")),
            "unlabelled service served: {table:?}"
        );
        assert!(table.warnings.is_empty(), "{:?}", table.warnings);
        let service = table.services.iter().find(|s| s.name == svc.name).expect("service");

        let ns = net.lb_netns(Duration::from_secs(30));
        let factory = SocketFactory::default();
        let mut answered = BTreeSet::new();
        for b in &service.backends {
            assert_eq!(b.addr.port(), 8000);
            assert!(
                in_subnet(b.addr.ip(), &net.subnet),
                "{} is not in the overlay's subnet {}",
                b.addr,
                net.subnet
            );
            let mut stream = tokio::time::timeout(Duration::from_secs(5), factory.connect(&ns, b.addr))
                .await
                .expect("connect in time")
                .expect("connect inside the overlay");
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .await
                .expect("send");
            let mut body = String::new();
            stream.read_to_string(&mut body).await.expect("read");
            let line = body
                .lines()
                .find(|l| l.starts_with("I'm "))
                .unwrap_or_else(|| panic!("no I'm line: {body}"));
            answered.insert(line.trim_start_matches("I'm ").trim().to_string());
        }
        let hostnames: BTreeSet<String> = svc.hostnames().into_iter().collect();
        assert_eq!(
            answered, hostnames,
            "each discovered address is a different task of the service"
        );

        crate::harness::swarm::docker(&["service", "scale", "--detach", &format!("{}=3", svc.name)]);
        wait_table(&mut rx, "3 serving tasks after scaling", |s| serving(s, &svc.name) == 3).await;
        let st = status.lock().expect("status").clone();
        assert!(st.connected && st.api_version.is_some(), "{st:?}");
        watcher.abort();
    });
}
