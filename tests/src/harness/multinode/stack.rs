//! swarm-sticky deployed as the stack users deploy: its image built from
//! the test binary by `swarm-sticky image` and loaded on every node, and
//! `deploy/swarm-sticky.yml` deployed unchanged. Only the variables the
//! file offers are set: the image, the published address, and the host
//! paths, which differ per node here (one engine per namespace, each with
//! its own exec-root) and are given with Swarm's `{{.Node.Hostname}}`
//! template. The admin API listens on loopback in the node's namespace,
//! as the file says, and is read from a thread that enters it.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use super::{
    Cluster,
    proxy::{Entry, backends_in},
};
use crate::harness::{
    client::{Response, get, get_with},
    netns,
};

/// The stack file, as users deploy it.
pub fn stack_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/swarm-sticky.yml")
}

/// Builds swarm-sticky's image from the test binary on the host's engine
/// (`swarm-sticky image --tag …`) and loads it, with every tag, on every
/// node.
pub fn build_image(cluster: &Cluster, tags: &[&str]) {
    let mut build = Command::new(crate::harness::binary());
    build.arg("image");
    for t in tags {
        build.args(["--tag", t]);
    }
    let out = build.output().expect("run swarm-sticky image");
    assert!(
        out.status.success(),
        "swarm-sticky image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.load_images(tags);
}

/// Mounts bpffs at `/sys/fs/bpf` unless it is, as systemd does on a real
/// host: the stack bind-mounts the host's.
fn host_bpffs() {
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T", "/sys/fs/bpf"])
        .output()
        .expect("stat");
    if String::from_utf8_lossy(&fs.stdout).trim() != "bpf_fs" {
        let out = Command::new("mount")
            .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "mount bpffs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A deployed stack; removed on drop if the test did not remove it.
pub struct Stack<'a> {
    cluster: &'a Cluster,
    /// The stack's name (`docker stack deploy … NAME`).
    pub name: String,
    /// The published port on every manager.
    pub port: u16,
    removed: bool,
}

impl<'a> Stack<'a> {
    /// The cluster it runs on.
    pub fn cluster(&self) -> &'a Cluster {
        self.cluster
    }

    /// The swarm-sticky service's name.
    pub fn service(&self) -> String {
        format!("{}_swarm-sticky", self.name)
    }

    /// `docker stack deploy -c deploy/swarm-sticky.yml NAME` on node 1,
    /// serving on `port`, with `image`.
    pub fn deploy(cluster: &'a Cluster, name: &str, image: &str, port: u16) -> Self {
        host_bpffs();
        let per_node = format!("{}/{{{{.Node.Hostname}}}}", cluster.dir.display());
        let file = stack_file();
        let out = Command::new("docker")
            .args(["-H", &cluster.nodes[0].host(), "stack", "deploy", "-c"])
            .arg(&file)
            .arg(name)
            .env("SWARM_STICKY_IMAGE", image)
            .env("SWARM_STICKY_LISTEN", format!("0.0.0.0:{port}"))
            .env("DOCKER_SOCKET", format!("{per_node}/docker.sock"))
            .env("DOCKER_NETNS_DIR", format!("{per_node}/run/netns"))
            .current_dir(file.parent().expect("deploy/"))
            .output()
            .expect("docker stack deploy");
        assert!(
            out.status.success(),
            "docker stack deploy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            cluster,
            name: name.to_owned(),
            port,
            removed: false,
        }
    }

    /// The running tasks of the swarm-sticky service: node name → (task
    /// ID, image), for those Swarm reports `Running` (which, with a
    /// HEALTHCHECK, means healthy).
    pub fn running(&self) -> BTreeMap<String, (String, String)> {
        let out = self.cluster.nodes[0]
            .try_docker(
                &[
                    "service",
                    "ps",
                    "--filter",
                    "desired-state=running",
                    "--format",
                    "{{.Node}} {{.ID}} {{.Image}} {{.CurrentState}}",
                    "--no-trunc",
                    &self.service(),
                ],
                Duration::from_secs(10),
            )
            .unwrap_or_default();
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4 && f[3] == "Running").then(|| (f[0].to_owned(), (f[1].to_owned(), f[2].to_owned())))
            })
            .collect()
    }

    /// Waits until every manager runs one healthy task of `image` and each
    /// answers `/readyz`; the time it took.
    pub fn wait_running(&self, image: &str, timeout: Duration) -> Duration {
        let start = Instant::now();
        let managers: Vec<usize> = (0..self.cluster.nodes.len())
            .filter(|&i| self.cluster.nodes[i].manager)
            .collect();
        loop {
            let running = self.running();
            let all = managers.iter().all(|&i| {
                running
                    .get(&self.cluster.nodes[i].name)
                    .is_some_and(|(_, img)| img.starts_with(image))
                    && self.admin(i, "/readyz").is_some_and(|r| r.status == 200)
            });
            if all && running.len() == managers.len() {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "the stack's tasks are {running:?} after {timeout:?}, not one healthy {image} on each manager;\n{}\n{}",
                self.tasks(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `GET path` on the admin listener of node `i` (127.0.0.1:9090 in
    /// its namespace), from a thread that enters the namespace.
    pub fn admin(&self, i: usize, path: &str) -> Option<Response> {
        let ns = self.cluster.nodes[i].netns_path();
        let path = path.to_owned();
        std::thread::spawn(move || {
            netns::enter(&ns);
            get("127.0.0.1:9090".parse().expect("admin address"), &path).ok()
        })
        .join()
        .ok()
        .flatten()
    }

    /// `/api/status` of node `i`, parsed.
    pub fn status(&self, i: usize) -> serde_json::Value {
        let r = self
            .admin(i, "/api/status")
            .unwrap_or_else(|| panic!("no /api/status on node{}", i + 1));
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("/api/status: {e}: {}", r.body))
    }

    /// The containers node `i` serves for `service` (12-character IDs).
    pub fn containers(&self, i: usize, service: &str) -> BTreeSet<String> {
        let Some(r) = self.admin(i, "/api/services").filter(|r| r.status == 200) else {
            return BTreeSet::new();
        };
        let json = serde_json::from_str(&r.body).unwrap_or_default();
        backends_in(&json, service).into_iter().map(|b| b.container).collect()
    }

    /// Waits until every manager serves exactly `expected` for `service`.
    pub fn wait_containers(&self, service: &str, expected: &BTreeSet<String>, timeout: Duration) {
        let start = Instant::now();
        for i in (0..self.cluster.nodes.len()).filter(|&i| self.cluster.nodes[i].manager) {
            loop {
                let now = self.containers(i, service);
                if now == *expected {
                    break;
                }
                assert!(
                    start.elapsed() < timeout,
                    "the stack on node{} serves {now:?} for {service}, not {expected:?}, after {timeout:?};\n{}",
                    i + 1,
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// `docker service ps` of the swarm-sticky service, errors in full
    /// (for failures).
    pub fn tasks(&self) -> String {
        self.cluster.nodes[0]
            .try_docker(
                &["service", "ps", "--no-trunc", &self.service()],
                Duration::from_secs(10),
            )
            .unwrap_or_else(|e| e)
    }

    /// `docker service logs` of the swarm-sticky service (for failures).
    pub fn logs(&self) -> String {
        self.cluster.nodes[0]
            .try_docker(&["service", "logs", "--raw", &self.service()], Duration::from_secs(10))
            .unwrap_or_else(|e| e)
    }

    /// The stack's way in on node `i`.
    pub fn entry(&self, i: usize) -> StackEntry {
        StackEntry {
            node: i,
            listen: format!("{}:{}", self.cluster.nodes[i].ip, self.port)
                .parse()
                .expect("listen address"),
        }
    }

    /// `docker stack rm`.
    pub fn remove(&mut self) {
        self.cluster.nodes[0].docker(&["stack", "rm", &self.name]);
        self.removed = true;
    }
}

impl Drop for Stack<'_> {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.cluster.nodes[0].try_docker(&["stack", "rm", &self.name], Duration::from_secs(20));
        }
    }
}

/// The stack's swarm-sticky on one manager, for the test's clients.
pub struct StackEntry {
    node: usize,
    /// Where it serves (the node's LAN address).
    pub listen: SocketAddr,
}

impl Entry for StackEntry {
    fn node(&self) -> usize {
        self.node
    }

    fn get_path(&self, path: &str, cookie: Option<&str>) -> std::io::Result<Response> {
        get_with(self.listen, path, cookie)
    }
}
