//! Stopping the test engine's `dockerd` and starting it again, the way
//! `cargo xtask test` starts it (plain `dockerd`, default flags, output to
//! `target/tools/dockerd.log`, appended here).
//!
//! A killed daemon leaves pid files behind (`/var/run/docker.pid` and its
//! containerd's), and until its parent reaps it, a zombie that `kill -0`
//! still reports alive: a new dockerd would refuse to start, or wait for a
//! containerd that is gone. So the pid files of processes that are dead or
//! zombies are removed before the start. [`Restart`] starts the daemon on
//! drop if a test stopped it and did not get to start it again, so the
//! tests after it find a healthy engine.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const PIDFILE: &str = "/var/run/docker.pid";
const CONTAINERD_PIDFILE: &str = "/var/run/docker/containerd/containerd.pid";

fn read_pid(path: &str) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
}

fn wait_gone(pid: u32, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) still runs after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the engine answers `/_ping`.
pub fn answers() -> bool {
    Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "2",
            "--unix-socket",
            "/var/run/docker.sock",
            "http://localhost/_ping",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends `signal` (e.g. `"KILL"`) to the running dockerd and waits (20 s at
/// most) until it and its containerd are gone. Returns the time it took.
pub fn stop(signal: &str) -> Duration {
    let started = Instant::now();
    let pid = read_pid(PIDFILE).expect("dockerd's pid file /var/run/docker.pid");
    let containerd = read_pid(CONTAINERD_PIDFILE);
    let out = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .output()
        .expect("kill");
    assert!(out.status.success(), "kill -{signal} {pid}: {:?}", out);
    wait_gone(pid, "dockerd", Duration::from_secs(20));
    if let Some(c) = containerd {
        wait_gone(c, "dockerd's containerd", Duration::from_secs(20));
    }
    started.elapsed()
}

fn log_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|root| root.join("target/tools/dockerd.log"))
        .unwrap_or_else(|| std::env::temp_dir().join("dockerd.log"))
}

/// Starts dockerd as `cargo xtask test` does and waits until it answers and
/// this node manages its swarm again (60 s at most). Returns the time until
/// `/_ping` answered.
pub fn start() -> Duration {
    for file in [PIDFILE, CONTAINERD_PIDFILE] {
        if read_pid(file).is_some_and(|p| !alive(p)) {
            std::fs::remove_file(file).unwrap_or_else(|e| panic!("remove the stale {file}: {e}"));
        }
    }
    let log = log_path();
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).expect("log directory");
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("dockerd log");
    let started = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "the daemon outlives this test; xtask stops it at the end, by its pid file"
    )]
    let _daemon = Command::new("dockerd")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .expect("start dockerd (package docker.io)");
    let deadline = started + Duration::from_secs(60);
    while !answers() {
        assert!(
            Instant::now() < deadline,
            "dockerd did not answer within 60 s; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pinged = started.elapsed();
    let manager = || {
        Command::new("docker")
            .args(["node", "ls", "--format", "{{.Status}}"])
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "Ready")
    };
    while !manager() {
        assert!(
            Instant::now() < deadline,
            "the swarm has no ready manager 60 s after dockerd started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    pinged
}

/// Starts dockerd on drop unless it answers: a test that stopped it leaves
/// a working engine behind even when it fails half-way.
pub struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        if !answers() && std::panic::catch_unwind(start).is_err() {
            eprintln!("could not start dockerd again; the tests after this one will say so");
        }
    }
}
