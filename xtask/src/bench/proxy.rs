//! `cargo xtask bench proxy`: swarm-sticky against HAProxy, same run, same
//! backends, same wrk settings.
//!
//! Layout on a 2-core machine: the proxy under test alone on CPU 0 (one
//! worker, as HAProxy runs one thread), wrk (`-t2 -c64`) and the two
//! whoami backends on CPU 1. Targets: one backend directly (the ceiling of
//! this harness), HAProxy 2.6 with `cookie SRV insert indirect nocache`,
//! and swarm-sticky, each with a valid sticky cookie and without one.
//! Besides req/s and latency, the proxy's CPU time per request (from
//! `/proc/<pid>/stat`) is reported: wrk saturates near the proxies' rate
//! here, so req/s alone would hide differences.
//!
//! A second part opens 10,000 idle keep-alive client connections (each
//! sent one request with the cookie) and reports the proxies' RSS.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

mod report;
mod wrk;

use self::wrk::{measure, wrk};
use super::Proc;
use crate::cmd;

const IDLE_CONNECTIONS: usize = 10_000;
/// HAProxy needs two fds per connection and cannot raise its limit past
/// the 20,000-fd hard limit of these machines, so it holds fewer.
const HAPROXY_MAXCONN: usize = 9_500;
const HAPROXY_IDLE: usize = 9_000;

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn_on(cpu: &str, program: &std::path::Path, args: &[String], log: &std::path::Path) -> anyhow::Result<Proc> {
    let log = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let child = Command::new("taskset")
        .args(["-c", cpu])
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {}", program.display()))?;
    Ok(Proc(child))
}

/// One request; returns (status line, headers, body).
fn request(addr: SocketAddr, cookie: Option<&str>) -> anyhow::Result<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: bench\r\n{cookie}Connection: close\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").context("HTTP response")?;
    Ok((head.to_string(), body.to_string()))
}

fn wait_serving(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if matches!(request(addr, None), Ok((h, _)) if h.starts_with("HTTP/1.1 200")) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{addr} did not answer 200 within 15 s")
}

/// The first `Set-Cookie` of a response, as `name=value`.
fn sticky_cookie(addr: SocketAddr) -> anyhow::Result<String> {
    let (head, _) = request(addr, None)?;
    let line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .with_context(|| format!("{addr} set no cookie:\n{head}"))?;
    let value = line.split_once(':').map_or("", |(_, v)| v).trim();
    Ok(value.split(';').next().unwrap_or_default().to_string())
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}

/// The RSS once it stops moving, read after the last idle connection was
/// opened: swarm-sticky frees an idle connection's buffers 1 s after its
/// request and hands freed pages back at most once a second, so the RSS
/// falls in steps about a second apart. The first reading is 2 s later,
/// then one every 500 ms until three in a row (a span longer than one
/// step) agree within 1 %. All within 9 s of the first connection, before
/// swarm-sticky's default 10 s keep-alive limit would start closing them
/// (HAProxy's is 60 s here).
fn settled_rss_kib(pid: u32, first: Instant) -> anyhow::Result<u64> {
    const LIMIT: Duration = Duration::from_secs(9);
    let close = |a: u64, b: u64| a.abs_diff(b) * 100 <= b;
    std::thread::sleep(Duration::from_secs(2));
    let mut seen = vec![rss_kib(pid)?];
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = rss_kib(pid)?;
        seen.push(now);
        if let [.., a, b, c] = seen[..]
            && close(a, c)
            && close(b, c)
        {
            return Ok(c);
        }
        if first.elapsed() > LIMIT {
            bail!("RSS still moving {LIMIT:?} after the first idle connection (readings {seen:?} KiB)");
        }
    }
}

fn haproxy_config(listen: SocketAddr, backends: &[SocketAddr]) -> String {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| format!("  server s{} {b} cookie s{}\n", i + 1, i + 1))
        .collect();
    format!(
        "global\n  nbthread 1\n  maxconn {HAPROXY_MAXCONN}\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  http-reuse safe\n\
         frontend fe\n  bind {listen}\n  default_backend be\n\
         backend be\n  balance roundrobin\n  cookie SRV insert indirect nocache\n{servers}"
    )
}

/// Opens `n` keep-alive connections that each send one request with the
/// cookie and stay open; returns them (closing on drop).
fn idle_connections(addr: SocketAddr, cookie: &str, n: usize) -> anyhow::Result<Vec<TcpStream>> {
    let req = format!("GET / HTTP/1.1\r\nHost: bench\r\nCookie: {cookie}\r\n\r\n");
    let mut conns = Vec::with_capacity(n);
    let mut buf = [0u8; 4096];
    for _ in 0..n {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(req.as_bytes())?;
        let got = s.read(&mut buf)?;
        if got == 0 || !buf.starts_with(b"HTTP/1.1 200") {
            bail!("{addr}: no 200 on an idle-connection request");
        }
        conns.push(s);
    }
    Ok(conns)
}

fn raise_nofile() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to an rlimit struct.
    #[expect(unsafe_code, reason = "getrlimit/setrlimit have no safe wrapper in std")]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &raw const l);
        }
    }
}

/// Runs the benchmark, `rounds` times the wrk rows, and prints the tables.
///
/// # Errors
/// A missing tool, a target that does not come up, or a failed run.
pub fn run(bin: &std::path::Path, seconds: u64, rounds: u32) -> anyhow::Result<()> {
    for tool in ["wrk", "haproxy", "taskset"] {
        if !cmd::on_path(tool) {
            bail!("{tool} is not installed (Debian: apt-get install wrk haproxy util-linux)");
        }
    }
    raise_nofile();
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect::<anyhow::Result<_>>()?;
    let backends: Vec<SocketAddr> = ports[..2]
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let ss_addr = SocketAddr::from(([127, 0, 0, 1], ports[2]));
    let ha_addr = SocketAddr::from(([127, 0, 0, 1], ports[3]));
    let scratch = std::env::temp_dir().join(format!("ss-bench-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;

    let _backends: Vec<Proc> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let args = [
                "whoami".into(),
                "--listen".into(),
                b.to_string(),
                "--name".into(),
                format!("s{}", i + 1),
            ];
            spawn_on("1", bin, &args, &scratch.join(format!("whoami-{i}.log")))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut ss_args: Vec<String> = [
        "run",
        "--listen",
        &ss_addr.to_string(),
        "--workers",
        "1",
        "--steering",
        "reuseport",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    for (i, b) in backends.iter().enumerate() {
        ss_args.extend(["--backend".into(), format!("s{}=http://{b}", i + 1)]);
    }
    ss_args.extend([
        "--admin".into(),
        format!("127.0.0.1:{}", free_port()?),
        "--state-dir".into(),
        scratch.display().to_string(),
    ]);
    let ss = spawn_on("0", bin, &ss_args, &scratch.join("swarm-sticky.log"))?;
    let ha_cfg = scratch.join("haproxy.cfg");
    std::fs::write(&ha_cfg, haproxy_config(ha_addr, &backends))?;
    let ha_args = ["-db".into(), "-f".into(), ha_cfg.display().to_string()];
    let ha = spawn_on(
        "0",
        std::path::Path::new("/usr/sbin/haproxy"),
        &ha_args,
        &scratch.join("haproxy.log"),
    )?;
    let logs = |name: &str| std::fs::read_to_string(scratch.join(name)).unwrap_or_default();
    for (i, b) in backends.iter().enumerate() {
        wait_serving(*b).with_context(|| logs(&format!("whoami-{i}.log")))?;
    }
    wait_serving(ss_addr).with_context(|| logs("swarm-sticky.log"))?;
    wait_serving(ha_addr).with_context(|| logs("haproxy.log"))?;
    let ss_cookie = sticky_cookie(ss_addr)?;
    let ha_cookie = sticky_cookie(ha_addr)?;
    let (ss_pid, ha_pid) = (ss.0.id(), ha.0.id());

    let url = |a: SocketAddr| format!("http://{a}/");
    // Warm-up, so that pools and caches are filled before measuring.
    wrk(&url(ss_addr), Some(&ss_cookie), 2)?;
    wrk(&url(ha_addr), Some(&ha_cookie), 2)?;
    // Rounds alternate the targets, so that a slow phase of the machine
    // shows in every target of a round rather than in one.
    let mut all = Vec::new();
    for round in 1..=rounds {
        eprintln!("round {round} of {rounds}");
        let rows = vec![
            measure("direct", "-", &url(backends[0]), None, None, seconds)?,
            measure(
                "haproxy",
                "sticky",
                &url(ha_addr),
                Some(&ha_cookie),
                Some(ha_pid),
                seconds,
            )?,
            measure(
                "swarm-sticky",
                "sticky",
                &url(ss_addr),
                Some(&ss_cookie),
                Some(ss_pid),
                seconds,
            )?,
            measure("haproxy", "nocookie", &url(ha_addr), None, Some(ha_pid), seconds)?,
            measure("swarm-sticky", "nocookie", &url(ss_addr), None, Some(ss_pid), seconds)?,
        ];
        println!("\nRound {round}:\n");
        report::print_rows(&rows);
        all.push(rows);
    }
    if all.len() > 1 {
        println!("\nMedian of {rounds} rounds (lowest–highest), each ratio taken within its round:\n");
        report::print_summary(&all);
    }

    eprintln!("opening {IDLE_CONNECTIONS} idle keep-alive connections to each proxy");
    let mut idle = Vec::new();
    for (name, addr, cookie, pid, n) in [
        ("haproxy", ha_addr, &ha_cookie, ha_pid, HAPROXY_IDLE),
        ("swarm-sticky", ss_addr, &ss_cookie, ss_pid, IDLE_CONNECTIONS),
    ] {
        let before = rss_kib(pid)?;
        let first = Instant::now();
        let conns = idle_connections(addr, cookie, n)?;
        let with = settled_rss_kib(pid, first).with_context(|| format!("{name} with {n} idle connections"))?;
        idle.push((name, n, before, with));
        drop(conns);
    }
    println!();
    println!("| proxy | idle connections | RSS before | RSS with them | per connection |");
    println!("|---|---:|---:|---:|---:|");
    for (name, n, before, with) in idle {
        println!(
            "| {name} | {n} | {:.1} MiB | {:.1} MiB | {:.2} KiB |",
            before as f64 / 1024.0,
            with as f64 / 1024.0,
            (with.saturating_sub(before)) as f64 / n as f64
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
