//! A swarm-sticky process in this namespace with static backends, serving
//! on loopback ports of its own (unprivileged: `--steering reuseport`), and
//! helpers to read its admin API.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use super::{client, process::Proxy};

/// A free loopback port (bound, then released for the process to take),
/// never one this test process handed out before: the kernel may give a
/// just-released port again, and two listeners of one instance (or of two
/// tests running at once) must not get the same.
pub fn free_port() -> SocketAddr {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Bounded: the ephemeral range has thousands of ports.
    for _ in 0..1000 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = l.local_addr().expect("local addr");
        if !handed_out.contains(&addr.port()) {
            handed_out.push(addr.port());
            return addr;
        }
    }
    panic!("no loopback port that was not handed out already");
}

/// A running instance.
pub struct Instance {
    /// The published address.
    pub listen: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// The process.
    pub process: Proxy,
}

impl Instance {
    /// Starts `swarm-sticky run` with `args` after its own `--listen`,
    /// `--admin`, `--state-dir` and `--steering reuseport`, and waits until
    /// it is ready.
    pub fn start(state_dir: &Path, args: &[&str]) -> Self {
        let mut i = Self::launch(state_dir, args);
        i.process.wait_ready();
        i
    }

    /// [`Instance::start`] without waiting for it to be ready.
    pub fn launch(state_dir: &Path, args: &[&str]) -> Self {
        let (listen, admin) = (free_port(), free_port());
        let mut all: Vec<String> = [
            "run",
            "--listen",
            &listen.to_string(),
            "--admin",
            &admin.to_string(),
            "--state-dir",
            &state_dir.display().to_string(),
            "--steering",
            "reuseport",
            "--workers",
            "2",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        all.extend(args.iter().map(ToString::to_string));
        let process = Proxy::spawn_here(&all);
        Self { listen, admin, process }
    }

    /// `GET path` on the admin listener.
    pub fn admin_get(&self, path: &str) -> client::Response {
        client::get(self.admin, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `GET path` on the admin listener, as JSON.
    pub fn admin_json(&self, path: &str) -> serde_json::Value {
        let r = self.admin_get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.body))
    }

    /// The backends of the first service in `/api/services`, by name.
    pub fn backend_names(&self) -> Vec<String> {
        self.admin_json("/api/services")[0]["backends"]
            .as_array()
            .map(|a| a.iter().filter_map(|b| Some(b["name"].as_str()?.to_owned())).collect())
            .unwrap_or_default()
    }

    /// The value of the sample `series` (name and labels exactly as
    /// exposed) in `/metrics`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        client::metric(self.admin, series)
    }
}

/// Polls `cond` until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
