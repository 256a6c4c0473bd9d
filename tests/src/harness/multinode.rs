//! A multi-node swarm on this machine: one `dockerd` per network
//! namespace, the namespaces joined by a bridge that has no route off the
//! machine (the recipe of `notes/multinode-swarm.md`). The first
//! `managers` nodes join as managers (node 1 initialises the swarm), the
//! others as workers. Everything lives under one short scratch directory
//! and is torn down on drop: the daemons, the shims and containers of a
//! killed node, the mounts, the namespaces, the bridge and its one FORWARD
//! rule, the fence route, the cgroups.
//!
//! The daemons share the host's mount namespace (`nsenter --net`, never
//! `ip netns exec`), so their network namespace files under
//! `<dir>/nodeN/run/netns` can be entered from the host like Docker's own.
//!
//! Layout: `node.rs` (one daemon), `lan.rs` (bridge, links, partitions,
//! fence), `teardown.rs` (what a crash leaves), `proxy.rs` (swarm-sticky
//! on a node), `service.rs` (overlays and services, tasks by node),
//! `stack.rs` (swarm-sticky deployed as the stack users deploy).
//! Nodes are indexed from 0 (`nodes[0]` is node 1).

mod lan;
mod node;
pub mod proxy;
pub mod service;
pub mod stack;
mod teardown;

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

pub use self::{
    lan::{LAN, host_ip},
    node::Node,
};

/// The address pool of the overlays of this swarm (fenced off in the host
/// namespace while the cluster lives).
pub const ADDR_POOL: &str = "10.202.0.0/16";

/// Runs `program` and returns stdout; panics with stderr on failure.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The swarm; torn down on drop.
pub struct Cluster {
    /// Scratch directory.
    pub dir: PathBuf,
    /// The nodes, managers first.
    pub nodes: Vec<Node>,
    cgroup: String,
    // Dropped after `Drop::drop` has stopped the daemons: removes the
    // namespaces, the bridge, the rule and the fence.
    lan: lan::Lan,
}

impl Cluster {
    /// `managers` managers (node 1 the first) and `workers` workers, all
    /// `Ready`.
    pub fn new(managers: usize, workers: usize) -> Self {
        assert!(managers >= 1, "a swarm needs a manager");
        let started = Instant::now();
        // Unique per cluster (several tests run in one process), and short:
        // interface names have at most 15 bytes.
        static CLUSTERS: AtomicU32 = AtomicU32::new(0);
        let id = (std::process::id() % 100_000) * 100 + CLUSTERS.fetch_add(1, Ordering::Relaxed) % 100;
        let dir = PathBuf::from(format!("/tmp/ssmn-{id}"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let mut cluster = Self {
            dir: dir.clone(),
            nodes: Vec::new(),
            cgroup: format!("ssmn{id}"),
            lan: lan::Lan::new(id),
        };
        let n = managers + workers;
        for i in 1..=n {
            let (netns, ip) = cluster.lan.add_node(i);
            // Named like the node (its hostname), so that a Swarm template
            // ({{.Node.Hostname}}) in a mount source finds its directory.
            let node = Node::new(i, netns, ip, dir.join(format!("node{i}")), i <= managers);
            cluster.nodes.push(node);
        }
        let cgroup = cluster.cgroup.clone();
        for (i, node) in cluster.nodes.iter_mut().enumerate() {
            node.launch(&format!("{cgroup}-{}", i + 1));
        }
        for node in &cluster.nodes {
            node.wait_ping();
        }
        cluster.form_swarm(managers);
        eprintln!(
            "cluster of {managers} manager(s) and {workers} worker(s) ready in {:?}",
            started.elapsed()
        );
        cluster
    }

    fn form_swarm(&self, managers: usize) {
        let first = &self.nodes[0];
        let listen = |node: &Node| format!("{}:2377", node.ip);
        first.docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            &first.ip,
            "--listen-addr",
            &listen(first),
            "--default-addr-pool",
            ADDR_POOL,
        ]);
        let manager_token = first.docker(&["swarm", "join-token", "-q", "manager"]);
        let worker_token = first.docker(&["swarm", "join-token", "-q", "worker"]);
        for node in &self.nodes[1..] {
            let mut args = vec!["swarm", "join", "--advertise-addr", node.ip.as_str()];
            let listen_addr = listen(node);
            if node.manager {
                args.extend(["--token", &manager_token, "--listen-addr", &listen_addr]);
            } else {
                args.extend(["--token", &worker_token]);
            }
            let join = listen(first);
            args.push(&join);
            node.docker(&args);
        }
        let n = self.nodes.len();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ls = first.docker(&["node", "ls", "--format", "{{.Status}} {{.ManagerStatus}}"]);
            let ready = ls.lines().filter(|l| l.starts_with("Ready")).count();
            let reachable = ls
                .lines()
                .filter(|l| l.ends_with("Leader") || l.ends_with("Reachable"))
                .count();
            if ready == n && reachable == managers {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not {n} nodes ready with {managers} managers within 60 s: {ls}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Copies `image` from the host's engine into every running node's
    /// (`docker save` once, `docker load` on all nodes at once): the same
    /// image ID everywhere, and no registry.
    pub fn load_image(&self, image: &str) {
        self.load_images(&[image]);
    }

    /// [`Cluster::load_image`] of several images (or tags) in one archive.
    pub fn load_images(&self, images: &[&str]) {
        let tar = self.dir.join("image.tar");
        let t = tar.display().to_string();
        let mut save = vec!["save", "-o", &t];
        save.extend_from_slice(images);
        run("docker", &save);
        let loads: Vec<_> = self
            .nodes
            .iter()
            .filter(|n| n.is_up())
            .map(|n| {
                let child = Command::new("docker")
                    .args(["-H", &n.host(), "load", "-q", "-i", &t])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("docker load");
                (n.name.clone(), child)
            })
            .collect();
        for (name, child) in loads {
            let out = child.wait_with_output().expect("docker load");
            assert!(
                out.status.success(),
                "docker load on {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_file(&tar);
    }

    /// SIGKILLs node `i`'s dockerd and containerd, as a crash would. Its
    /// containers keep running (their shims survive) until the teardown.
    pub fn kill_node(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Cuts node `i` off from the other nodes: its bridge port goes down.
    /// The test's clients still reach it over its client link (`lan.rs`).
    pub fn partition(&self, i: usize) {
        self.lan.set_port(i + 1, false);
    }

    /// Ends [`Cluster::partition`] of node `i`.
    pub fn heal(&self, i: usize) {
        self.lan.set_port(i + 1, true);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Leaving first lets each daemon stop its tasks without waiting
        // for the managers; all nodes at once, each bounded.
        let leaves: Vec<_> = self
            .nodes
            .iter()
            .filter(|n| n.is_up())
            .filter_map(|n| {
                Command::new("docker")
                    .args(["-H", &n.host(), "swarm", "leave", "--force"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        for mut leave in leaves {
            while matches!(leave.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = leave.kill();
            let _ = leave.wait();
        }
        for node in &self.nodes {
            node.terminate();
        }
        for node in &mut self.nodes {
            node.reap();
        }
        teardown::kill_shims(&self.dir);
        let cgroups: Vec<String> = (1..=self.nodes.len()).map(|n| format!("{}-{n}", self.cgroup)).collect();
        teardown::clear_cgroups(&cgroups);
        teardown::unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
