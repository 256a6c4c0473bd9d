//! One node of a multi-node swarm: a network namespace with its own
//! `dockerd` (which starts its own `containerd`), and the docker CLI
//! against it. Starting, killing (SIGKILL, a node crash) and stopping
//! (SIGTERM, for teardown) the daemons; the namespace and its links are
//! `lan.rs`'s.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::run;

/// Whether `pid` runs. A zombie does not: `kill -0` succeeds on one, and
/// PID 1 of some machines reaps orphans only after a while.
pub(super) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
}

/// Sends `sig` to `pid` (ignoring a process that is already gone).
pub(super) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).output();
}

/// Waits up to `timeout` for `pid` to be gone; whether it is.
fn gone_within(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    !alive(pid)
}

/// One node: a namespace with its own dockerd.
pub struct Node {
    /// Its hostname, which is also its Swarm node name: `node<N>`.
    pub name: String,
    /// Its namespace, `/run/netns/<netns>`.
    pub netns: String,
    /// Its address on the node LAN.
    pub ip: String,
    /// Its state directory.
    pub dir: PathBuf,
    /// Whether it joined as a manager.
    pub manager: bool,
    daemon: Option<Child>,
}

impl Node {
    pub(super) fn new(n: usize, netns: String, ip: String, dir: PathBuf, manager: bool) -> Self {
        std::fs::create_dir_all(dir.join("data")).expect("data dir");
        let netns_dir = dir.join("run/netns");
        std::fs::create_dir_all(&netns_dir).expect("netns dir");
        // Docker's namespace files appear here as it creates them. A
        // container that bind-mounts the directory (the stack's
        // swarm-sticky) sees the later ones only when it is a shared mount,
        // as every mount is on a host where systemd runs; this machine's
        // root mount is private.
        let d = netns_dir.display().to_string();
        run("mount", &["--bind", &d, &d]);
        run("mount", &["--make-shared", &d]);
        Self {
            name: format!("node{n}"),
            netns,
            ip,
            dir,
            manager,
            daemon: None,
        }
    }

    /// The engine's socket, as a `unix://` URL.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.join("docker.sock").display())
    }

    /// The node's network namespace file.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.netns))
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

    /// The docker CLI against this node, given up after `timeout`: the
    /// API of a manager that lost its leader hangs rather than fails.
    ///
    /// # Errors
    /// Stderr of a failed call, or a timeout.
    pub fn try_docker(&self, args: &[&str], timeout: Duration) -> Result<String, String> {
        let mut child = Command::new("docker")
            .args(["-H", &self.host()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("run docker: {e}"))?;
        let deadline = Instant::now() + timeout;
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("docker {} hung for {timeout:?}", args.join(" ")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().map_err(|e| format!("docker: {e}"))?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        }
    }

    /// Whether the node's dockerd runs (it was started and not killed).
    pub fn is_up(&self) -> bool {
        self.daemon.is_some()
    }

    /// The pid of the containerd this node's dockerd started.
    fn containerd_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("run/containerd/containerd.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    /// Launches dockerd in the node's namespace with a UTS namespace of
    /// its own (hostname `node<N>`, which names the Swarm node); see
    /// [`Node::wait_ping`].
    pub(super) fn launch(&mut self, cgroup: &str) {
        let d = self.dir.display().to_string();
        // Without a key path of its own, every daemon would read
        // /etc/docker/key.json and get the same engine ID; 20.10 takes the
        // key only in daemon.json. --config-file also keeps the host's
        // daemon.json out.
        std::fs::write(
            self.dir.join("daemon.json"),
            format!("{{\"deprecated-key-path\": \"{d}/key.json\"}}"),
        )
        .expect("daemon.json");
        let log = std::fs::File::create(self.dir.join("dockerd.log")).expect("log");
        let script = format!(
            "hostname {name}; exec dockerd --data-root {d}/data --exec-root {d}/run --pidfile {d}/docker.pid \
             -H unix://{d}/docker.sock --config-file {d}/daemon.json --cgroup-parent /{cgroup} \
             --swarm-default-advertise-addr {ip}",
            name = self.name,
            ip = self.ip,
        );
        // `nsenter --net`, never `ip netns exec`: that one mounts a fresh
        // sysfs and hides the cgroup mounts dockerd needs. nsenter,
        // unshare and sh all exec, so the child's pid is dockerd's.
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns_path().display()))
            .args(["unshare", "--uts", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd in the node namespace");
        self.daemon = Some(child);
    }

    /// Waits (bounded) until the launched dockerd answers `/_ping`.
    pub(super) fn wait_ping(&self) {
        let sock = self.dir.join("docker.sock");
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
                "{} dockerd did not answer within 30 s; see {}/dockerd.log",
                self.name,
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs dockerd and its containerd, as a crash of the node would.
    /// The containers' shims survive (and with them the containers); the
    /// cluster's teardown kills them.
    pub(super) fn kill(&mut self) {
        let containerd = self.containerd_pid();
        let mut daemon = self.daemon.take().expect("the node's dockerd runs");
        let _ = daemon.kill();
        let _ = daemon.wait();
        if let Some(pid) = containerd {
            // containerd has a parent-death signal, but do not rely on it.
            signal(pid, "-KILL");
            assert!(
                gone_within(pid, Duration::from_secs(10)),
                "containerd {pid} of {} survived SIGKILL",
                self.name
            );
        }
    }

    /// Sends SIGTERM to dockerd (it stops its containers, then exits).
    pub(super) fn terminate(&self) {
        if let Some(d) = &self.daemon {
            signal(d.id(), "-TERM");
        }
    }

    /// After [`Node::terminate`]: waits (bounded) for dockerd and its
    /// containerd to exit, SIGKILLing what is left.
    pub(super) fn reap(&mut self) {
        let containerd = self.containerd_pid();
        if let Some(mut d) = self.daemon.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(d.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        if let Some(pid) = containerd
            && !gone_within(pid, Duration::from_secs(10))
        {
            signal(pid, "-KILL");
        }
    }
}
