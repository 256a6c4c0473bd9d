//! The processes `bench proxy` and `bench tls` measure, started the same
//! way for both: two whoami backends on CPU 1, and on CPU 0 swarm-sticky
//! with one worker and HAProxy 2.6 with one thread (`nbthread 1`) and the
//! sticky cookie `SRV insert indirect nocache`. Each logs into the scratch
//! directory, and a target that does not come up fails with its log.

use std::{net::SocketAddr, path::Path};

use anyhow::Context as _;

use super::{
    probe,
    process::{Proc, Scratch, free_port, spawn_on},
};

/// HAProxy needs two fds per connection and cannot raise its limit past
/// the 20,000-fd hard limit of these machines, so it holds fewer idle
/// connections than swarm-sticky.
const HAPROXY_MAXCONN: usize = 9_500;
/// Idle connections opened to HAProxy (a margin under its `maxconn`).
pub(super) const HAPROXY_IDLE: usize = 9_000;
/// Idle connections opened to swarm-sticky.
pub(super) const IDLE_CONNECTIONS: usize = 10_000;

/// Starts `n` whoami backends named s1, s2, … on CPU 1 and waits until
/// they serve.
pub(super) fn whoami(bin: &Path, scratch: &Scratch, n: usize) -> anyhow::Result<(Vec<SocketAddr>, Vec<Proc>)> {
    let mut addrs = Vec::with_capacity(n);
    let mut procs = Vec::with_capacity(n);
    for i in 0..n {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let args = [
            "whoami".into(),
            "--listen".into(),
            addr.to_string(),
            "--name".into(),
            format!("s{}", i + 1),
        ];
        let log = format!("whoami-{i}.log");
        procs.push(spawn_on("1", bin, &args, &scratch.path().join(&log))?);
        addrs.push(addr);
    }
    for (i, addr) in addrs.iter().enumerate() {
        probe::wait_serving(*addr).with_context(|| scratch.read(&format!("whoami-{i}.log")))?;
    }
    Ok((addrs, procs))
}

/// swarm-sticky on CPU 0 with one worker in front of `backends`, listening
/// on `listen` (its `--listen` values) and on the plain `probe` address,
/// with `extra` flags. Waits until `probe` serves; returns the process and
/// its admin address.
pub(super) fn swarm_sticky(
    bin: &Path,
    scratch: &Scratch,
    probe: SocketAddr,
    listen: &[String],
    extra: &[String],
    backends: &[SocketAddr],
) -> anyhow::Result<(Proc, SocketAddr)> {
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut args: Vec<String> = ["run", "--workers", "1", "--steering", "reuseport", "--listen"]
        .iter()
        .map(ToString::to_string)
        .collect();
    args.push(probe.to_string());
    for l in listen {
        args.extend(["--listen".into(), l.clone()]);
    }
    for (i, b) in backends.iter().enumerate() {
        args.extend(["--backend".into(), format!("s{}=http://{b}", i + 1)]);
    }
    args.extend([
        "--admin".into(),
        admin.to_string(),
        "--state-dir".into(),
        scratch.path().display().to_string(),
    ]);
    args.extend(extra.iter().cloned());
    let proc = spawn_on("0", bin, &args, &scratch.path().join("swarm-sticky.log"))?;
    probe::wait_serving(probe).with_context(|| scratch.read("swarm-sticky.log"))?;
    Ok((proc, admin))
}

/// HAProxy's configuration: one thread, a frontend with one `bind` line
/// per entry of `binds` (address and options), round robin over
/// `backends` with the sticky cookie.
fn haproxy_config(binds: &[String], backends: &[SocketAddr]) -> String {
    let binds: String = binds.iter().map(|b| format!("  bind {b}\n")).collect();
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| format!("  server s{} {b} cookie s{}\n", i + 1, i + 1))
        .collect();
    format!(
        "global\n  nbthread 1\n  maxconn {HAPROXY_MAXCONN}\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  http-reuse safe\n\
         frontend fe\n{binds}  default_backend be\n\
         backend be\n  balance roundrobin\n  cookie SRV insert indirect nocache\n{servers}"
    )
}

/// HAProxy 2.6 on CPU 0 listening on the plain `probe` address and on
/// `binds`, in front of `backends`. Waits until `probe` serves.
pub(super) fn haproxy(
    scratch: &Scratch,
    probe: SocketAddr,
    binds: &[String],
    backends: &[SocketAddr],
) -> anyhow::Result<Proc> {
    let cfg = scratch.path().join("haproxy.cfg");
    let mut all = vec![probe.to_string()];
    all.extend(binds.iter().cloned());
    std::fs::write(&cfg, haproxy_config(&all, backends)).with_context(|| format!("write {}", cfg.display()))?;
    let args = ["-db".into(), "-f".into(), cfg.display().to_string()];
    let proc = spawn_on(
        "0",
        Path::new("/usr/sbin/haproxy"),
        &args,
        &scratch.path().join("haproxy.log"),
    )?;
    probe::wait_serving(probe).with_context(|| scratch.read("haproxy.log"))?;
    Ok(proc)
}
