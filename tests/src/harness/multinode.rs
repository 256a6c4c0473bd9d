//! A multi-node swarm on this machine: one `dockerd` per network
//! namespace, the namespaces joined by a bridge that has no route off the
//! machine (the recipe of `notes/multinode-swarm.md`). Node 1 is the
//! manager; the others join as workers. Everything lives under one short
//! scratch directory and is torn down on drop: the daemons (by their pid),
//! their mounts, the namespaces, the bridge and its one FORWARD rule, the
//! cgroups.
//!
//! The daemons share the host's mount namespace (`nsenter --net`, never
//! `ip netns exec`), so their network namespace files under
//! `<dir>/nN/run/netns` can be entered from the host like Docker's own.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The node LAN (host side: `.254`).
const LAN: &str = "100.64.78";
/// The address pool of the overlays of this swarm.
pub const ADDR_POOL: &str = "10.202.0.0/16";

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

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
}

/// One node: a namespace with its own dockerd.
pub struct Node {
    /// The namespace (`/run/netns/<netns>`).
    pub netns: String,
    /// Its address on the node LAN.
    pub ip: String,
    /// Its state directory.
    pub dir: PathBuf,
    daemon: Option<std::process::Child>,
}

impl Node {
    /// The engine's socket, as a `unix://` URL.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// Where the engine keeps its network namespaces.
    pub fn netns_dir(&self) -> PathBuf {
        self.dir.join("run/netns")
    }

    /// The docker CLI against this node; panics with stderr on failure.
    pub fn docker(&self, args: &[&str]) -> String {
        let host = self.host();
        let mut all = vec!["-H", host.as_str()];
        all.extend_from_slice(args);
        run("docker", &all)
    }
}

/// The swarm; torn down on drop.
pub struct Cluster {
    /// Scratch directory.
    pub dir: PathBuf,
    /// Node 1 (manager) first.
    pub nodes: Vec<Node>,
    bridge: String,
    cgroup: String,
}

impl Cluster {
    /// `n` nodes (node 1 the manager), all `Ready`.
    pub fn new(n: usize) -> Self {
        let id = std::process::id();
        let dir = PathBuf::from(format!("/tmp/ssmn-{id}"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let bridge = format!("ssmnbr{}", id % 100_000);
        let mut cluster = Self {
            dir: dir.clone(),
            nodes: Vec::new(),
            bridge: bridge.clone(),
            cgroup: format!("ssmn{id}"),
        };
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        run("ip", &["addr", "add", &format!("{LAN}.254/24"), "dev", &bridge]);
        run("ip", &["link", "set", &bridge, "up"]);
        // The host's FORWARD policy is DROP (dockerd), and bridged frames
        // pass through it (br_netfilter).
        run(
            "iptables",
            &["-I", "FORWARD", "1", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT"],
        );
        for i in 1..=n {
            let netns = format!("ssmn{i}-{id}");
            let veth = format!("ssv{i}-{}", id % 100_000);
            run("ip", &["netns", "add", &netns]);
            run(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
                ],
            );
            run("ip", &["link", "set", &veth, "master", &bridge, "up"]);
            let ip = format!("{LAN}.{i}");
            run("ip", &["-n", &netns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            run("ip", &["-n", &netns, "link", "set", "eth0", "up"]);
            run("ip", &["-n", &netns, "link", "set", "lo", "up"]);
            let node_dir = dir.join(format!("n{i}"));
            std::fs::create_dir_all(node_dir.join("data")).expect("data dir");
            std::fs::create_dir_all(node_dir.join("run")).expect("run dir");
            cluster.nodes.push(Node {
                netns,
                ip,
                dir: node_dir,
                daemon: None,
            });
        }
        for i in 0..n {
            cluster.start(i);
        }
        let manager = &cluster.nodes[0];
        manager.docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            &manager.ip,
            "--listen-addr",
            &format!("{}:2377", manager.ip),
            "--default-addr-pool",
            ADDR_POOL,
        ]);
        let token = manager.docker(&["swarm", "join-token", "-q", "worker"]);
        for node in &cluster.nodes[1..] {
            node.docker(&[
                "swarm",
                "join",
                "--token",
                &token,
                "--advertise-addr",
                &node.ip,
                &format!("{}:2377", manager.ip),
            ]);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = manager.docker(&["node", "ls", "--format", "{{.Status}}"]);
            if ready.lines().filter(|l| *l == "Ready").count() == n {
                break;
            }
            assert!(Instant::now() < deadline, "nodes not ready within 60 s: {ready}");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn start(&mut self, i: usize) {
        let node = &self.nodes[i];
        let d = node.dir.display().to_string();
        std::fs::write(
            node.dir.join("daemon.json"),
            format!("{{\"deprecated-key-path\": \"{d}/key.json\"}}"),
        )
        .expect("daemon.json");
        let log = std::fs::File::create(node.dir.join("dockerd.log")).expect("log");
        let script = format!(
            "hostname node{n}; exec dockerd --data-root {d}/data --exec-root {d}/run --pidfile {d}/docker.pid \
             -H unix://{d}/docker.sock --config-file {d}/daemon.json --cgroup-parent /{cg}-{n} \
             --swarm-default-advertise-addr {ip}",
            n = i + 1,
            cg = self.cgroup,
            ip = node.ip,
        );
        // nsenter, unshare and sh all exec: the child's pid is dockerd's.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", node.netns))
            .args(["unshare", "--uts", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd in the node namespace");
        self.nodes[i].daemon = Some(child);
        let sock = self.nodes[i].dir.join("docker.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new("curl")
            .args(["-sf", "--max-time", "2", "--unix-socket"])
            .arg(&sock)
            .arg("http://localhost/_ping")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                Instant::now() < deadline,
                "node{} dockerd did not answer within 30 s; see {}/dockerd.log",
                i + 1,
                self.nodes[i].dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Copies `image` from the host's engine into node `i`'s.
    pub fn load_image(&self, i: usize, image: &str) {
        let tar = self.dir.join("image.tar");
        let t = tar.display().to_string();
        run("docker", &["save", "-o", &t, image]);
        self.nodes[i].docker(&["load", "-q", "-i", &t]);
        let _ = std::fs::remove_file(&tar);
    }
}

fn teardown_mounts(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    mounts.sort_unstable_by(|a, b| b.cmp(a));
    for m in mounts {
        let ok = Command::new("umount").arg(m).output().is_ok_and(|o| o.status.success());
        if !ok {
            let _ = Command::new("umount").args(["-l", m]).output();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            let _ = Command::new("docker")
                .args(["-H", &node.host(), "swarm", "leave", "--force"])
                .output();
        }
        let containerd: Vec<Option<u32>> = self
            .nodes
            .iter()
            .map(|n| {
                std::fs::read_to_string(n.dir.join("run/containerd/containerd.pid"))
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
            })
            .collect();
        for node in &self.nodes {
            if let Some(d) = &node.daemon {
                let _ = Command::new("kill").arg(d.id().to_string()).output();
            }
        }
        for (node, c) in self.nodes.iter_mut().zip(containerd) {
            // SIGTERM: dockerd stops its containers, then exits (a few s).
            if let Some(d) = &mut node.daemon {
                let deadline = Instant::now() + Duration::from_secs(20);
                while matches!(d.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = d.kill();
                let _ = d.wait();
            }
            if let Some(pid) = c {
                let deadline = Instant::now() + Duration::from_secs(10);
                while alive(pid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if alive(pid) {
                    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).output();
                }
            }
        }
        teardown_mounts(&self.dir);
        for node in &self.nodes {
            let _ = Command::new("ip").args(["netns", "del", &node.netns]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        let _ = Command::new("iptables")
            .args(["-D", "FORWARD", "-i", &self.bridge, "-o", &self.bridge, "-j", "ACCEPT"])
            .output();
        for i in 1..=self.nodes.len() {
            let name = format!("{}-{i}", self.cgroup);
            if let Ok(ctrls) = std::fs::read_dir("/sys/fs/cgroup") {
                for c in ctrls.flatten() {
                    let path = c.path().join(&name);
                    if path.is_dir() {
                        let _ = Command::new("find")
                            .arg(&path)
                            .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", "+"])
                            .output();
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
