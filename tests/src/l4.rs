//! Privileged tests of the eBPF data path, each in a fresh pair of network
//! namespaces (server and client joined by a veth pair). They are
//! `#[ignore]`d for a plain `cargo test`; `cargo xtask test` runs them as
//! root with `--ignored --test-threads=1`.

mod handover;
mod netns;
mod privileges;
mod steering;
mod xdp;

use std::{net::SocketAddr, sync::atomic::AtomicU32};

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
