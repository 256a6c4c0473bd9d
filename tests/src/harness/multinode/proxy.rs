//! swarm-sticky on a node, as that node's host service would run: inside
//! the node's network namespace, with the node's Docker socket and netns
//! directory, eBPF steering (the default `--steering auto`; bpffs pins are
//! per namespace), listening and serving its admin API on the node's LAN
//! address, with a state directory of its own. Readers for its admin API
//! (`--admin-public-read`: the test's clients are off-loopback).

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::Cluster;
use crate::harness::{
    client::{Response, get, get_with},
    process::Proxy,
};

/// The published port on every node.
pub const PORT: u16 = 8080;
/// The admin port on every node.
pub const ADMIN_PORT: u16 = 9090;

/// A manager's way in for the test's clients: swarm-sticky as the node's
/// host process ([`NodeProxy`]) or as a task of the stack
/// ([`super::stack::StackEntry`]).
pub trait Entry {
    /// The node's index in [`Cluster::nodes`].
    fn node(&self) -> usize;

    /// `GET path` through it on a new connection, with `cookie` if given.
    ///
    /// # Errors
    /// Any I/O error.
    fn get_path(&self, path: &str, cookie: Option<&str>) -> std::io::Result<Response>;
}

impl<T: Entry> Entry for &T {
    fn node(&self) -> usize {
        (*self).node()
    }

    fn get_path(&self, path: &str, cookie: Option<&str>) -> std::io::Result<Response> {
        (*self).get_path(path, cookie)
    }
}

impl Entry for NodeProxy {
    fn node(&self) -> usize {
        self.node
    }

    fn get_path(&self, path: &str, cookie: Option<&str>) -> std::io::Result<Response> {
        get_with(self.listen, path, cookie)
    }
}

/// One backend as `/api/services` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BackendView {
    /// Identity (the name the cookie carries: the task and its slot).
    pub name: String,
    /// `healthy`, `draining`, `failing` or `down`.
    pub state: String,
    /// Why discovery holds it down (empty when it does not).
    pub reason: String,
    /// Whether it takes new sessions (a task Swarm is shutting down gets
    /// weight 0: it keeps its pinned sessions only).
    pub available: bool,
    /// The container's ID, shortened to the 12 characters that are also
    /// its hostname (what the whoami answers with).
    pub container: String,
}

/// The backends of `service` in an `/api/services` answer (empty while it
/// is not in the table).
pub fn backends_in(services: &serde_json::Value, service: &str) -> Vec<BackendView> {
    let Some(ours) = services
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == service))
    else {
        return Vec::new();
    };
    let mut out: Vec<BackendView> = ours["backends"]
        .as_array()
        .expect("backends array")
        .iter()
        .map(|b| BackendView {
            name: b["name"].as_str().unwrap_or_default().to_string(),
            state: b["state"].as_str().unwrap_or_default().to_string(),
            reason: b["reason"].as_str().unwrap_or_default().to_string(),
            available: b["available"].as_bool().unwrap_or(false),
            container: b["task"]["container"]
                .as_str()
                .map(|c| c.chars().take(12).collect())
                .unwrap_or_default(),
        })
        .collect();
    out.sort();
    out
}

/// A swarm-sticky running on one node; killed on drop.
pub struct NodeProxy {
    /// The process.
    pub proxy: Proxy,
    /// Where it serves (the node's LAN address, [`PORT`]).
    pub listen: SocketAddr,
    /// Its admin listener (the node's LAN address, [`ADMIN_PORT`]).
    pub admin: SocketAddr,
    /// The node's index in [`Cluster::nodes`].
    pub node: usize,
}

impl NodeProxy {
    /// Starts `swarm-sticky run --docker` on node `i` with `extra`
    /// arguments, and waits until it is ready with eBPF steering.
    pub fn start(cluster: &Cluster, i: usize, extra: &[&str]) -> Self {
        let node = &cluster.nodes[i];
        let listen: SocketAddr = format!("{}:{PORT}", node.ip).parse().expect("listen address");
        let admin: SocketAddr = format!("{}:{ADMIN_PORT}", node.ip).parse().expect("admin address");
        let state = cluster.dir.join(format!("state-{}", node.name));
        let mut args: Vec<String> = [
            "run",
            "--docker",
            "--docker-host",
            &node.host(),
            "--docker-netns-dir",
            &node.netns_dir().display().to_string(),
            "--listen",
            &listen.to_string(),
            "--admin",
            &admin.to_string(),
            "--admin-public-read",
            "--workers",
            "2",
            "--state-dir",
            &state.display().to_string(),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        args.extend(extra.iter().map(ToString::to_string));
        let mut proxy = Proxy::spawn_at(&node.netns_path(), &args);
        let ready = proxy.wait_for_line(" ready ", Duration::from_secs(30));
        assert!(
            ready.contains("steering=ebpf"),
            "swarm-sticky on {} did not take eBPF steering: {ready}",
            node.name
        );
        Self {
            proxy,
            listen,
            admin,
            node: i,
        }
    }

    /// SIGKILLs it, as a crash would (its eBPF pins stay behind until the
    /// cluster is torn down).
    pub fn kill(self) {
        drop(self);
    }

    /// `GET /` through it on a new connection, with `cookie` if given.
    ///
    /// # Errors
    /// Any I/O error.
    pub fn get(&self, cookie: Option<&str>) -> std::io::Result<Response> {
        get_with(self.listen, "/", cookie)
    }

    fn admin_json(&self, path: &str) -> Option<serde_json::Value> {
        let r = get(self.admin, path).ok()?;
        (r.status == 200).then(|| serde_json::from_str(&r.body).ok())?
    }

    /// `/api/discovery`: `connected`, `last_error`, `table_age_secs`, …
    pub fn discovery(&self) -> serde_json::Value {
        self.admin_json("/api/discovery")
            .unwrap_or_else(|| panic!("no /api/discovery from {}", self.admin))
    }

    /// The backends of `service` in `/api/services` (empty while it is
    /// not in the table).
    pub fn backends(&self, service: &str) -> Vec<BackendView> {
        let services = self
            .admin_json("/api/services")
            .unwrap_or_else(|| panic!("no /api/services from {}", self.admin));
        backends_in(&services, service)
    }

    /// The containers of `service`'s backends (12-character IDs).
    pub fn containers(&self, service: &str) -> BTreeSet<String> {
        self.backends(service).into_iter().map(|b| b.container).collect()
    }

    /// Waits until the backends of `service` are exactly the containers
    /// `expected`; returns how long that took, panics after `timeout`.
    pub fn wait_containers(&self, service: &str, expected: &BTreeSet<String>, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let now = self.containers(service);
            if now == *expected {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "swarm-sticky on node{} serves {now:?} for {service}, not {expected:?}, after {timeout:?}; stderr:\n{}",
                self.node + 1,
                self.proxy.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
