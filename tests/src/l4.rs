//! Privileged tests of the eBPF data path, each in a fresh pair of network
//! namespaces (server and client joined by a veth pair). They are
//! `#[ignore]`d for a plain `cargo test`; `cargo xtask test` runs them as
//! root with `--ignored --test-threads=1`.

mod handover;
mod netns;
mod overlap;
mod privileges;
mod steering;
mod xdp;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::harness::{
    netns::TestNet,
    process::{Proxy, Spawn},
};

/// The published port of every test.
const PORT: u16 = 8080;

static STATE_DIRS: AtomicU32 = AtomicU32::new(0);

/// A fresh state directory that anybody may write (for unprivileged runs).
fn state_dir() -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let n = STATE_DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ss-l4-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("state dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod state dir");
    dir.display().to_string()
}

/// The admin address of the `n`-th process of a test.
fn admin(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090 + n))
}

/// Where the server namespace's whoami backend listens (inside that
/// namespace only).
const BACKEND: &str = "127.0.0.1:18000";

/// The name the backend answers with (`I'm w1`).
const BACKEND_NAME: &str = "w1";

/// Starts the built-in whoami backend inside the server namespace.
fn backend(net: &TestNet) -> Proxy {
    let args = ["whoami", "--listen", BACKEND, "--name", BACKEND_NAME]
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut p = Proxy::spawn(Spawn {
        netns: &net.server,
        args,
        setpriv: None,
    });
    p.wait_for_line("whoami listening", std::time::Duration::from_secs(20));
    p
}

/// The default arguments of `run`: admin on `admin(n)`, its own state
/// directory, the namespace's whoami backend.
fn run_args(n: u16) -> Vec<String> {
    [
        "run",
        "--admin",
        &admin(n).to_string(),
        "--state-dir",
        &state_dir(),
        "--backend",
        &format!("{BACKEND_NAME}=http://{BACKEND}"),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// Starts `swarm-sticky run` in the server namespace with `args` added to
/// [`run_args`].
fn start(net: &TestNet, n: u16, args: &[&str]) -> Proxy {
    let mut all = run_args(n);
    all.extend(args.iter().map(ToString::to_string));
    Proxy::spawn(Spawn {
        netns: &net.server,
        args: all,
        setpriv: None,
    })
}

/// A client in the client namespace sending `request` to `target` again
/// and again, a new connection each, until [`ClientLoop::finish`] (or for
/// at most 120 s), counting them and keeping what failed.
struct ClientLoop {
    done: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: JoinHandle<()>,
}

impl ClientLoop {
    fn start(
        net: &TestNet,
        target: SocketAddr,
        request: impl Fn(SocketAddr) -> Result<(), String> + Send + 'static,
    ) -> Self {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let thread = {
            let (done, stop, failures) = (done.clone(), stop.clone(), failures.clone());
            let path = net.client.path();
            std::thread::spawn(move || {
                crate::harness::netns::enter(&path);
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    if let Err(e) = request(target) {
                        failures.lock().expect("lock").push(e);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Self {
            done,
            stop,
            failures,
            thread,
        }
    }

    /// Connections made so far.
    fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until `n` connections are done.
    fn wait_count(&self, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.done() < n {
            assert!(
                Instant::now() < deadline,
                "client loop stalled at {} (< {n})",
                self.done()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the loop; panics unless every connection succeeded. The
    /// connections made.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("client thread");
        let failures = self.failures.lock().expect("lock");
        let total = self.done.load(Ordering::Relaxed);
        assert!(
            failures.is_empty(),
            "{} of {total} connections failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        total
    }
}

/// `GET /` on a new connection, answered 200.
fn get_ok(target: SocketAddr) -> Result<(), String> {
    match crate::harness::client::get(target, "/") {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(format!("status {}", r.status)),
        Err(e) => Err(e.to_string()),
    }
}
