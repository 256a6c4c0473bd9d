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
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::bail;

mod report;

use super::{
    idle, probe,
    process::{Scratch, free_port, measured, raise_nofile},
    targets::{self, HAPROXY_IDLE, IDLE_CONNECTIONS},
    wrk::{Wrk, wrk},
};
use crate::packages;

/// swarm-sticky's default keep-alive limit (`header_read_timeout`).
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// wrk threads (the figures in `docs/benchmarks.md` were taken with two).
const WRK_THREADS: u32 = 2;

/// One measured row: a target, with or without the cookie.
pub(super) struct Row {
    pub(super) target: &'static str,
    pub(super) mode: &'static str,
    pub(super) wrk: Wrk,
    /// The proxy's CPU time per request, in µs.
    pub(super) cpu_us_per_req: Option<f64>,
}

fn measure(
    target: &'static str,
    mode: &'static str,
    url: &str,
    cookie: Option<&str>,
    pid: Option<u32>,
    seconds: u64,
) -> anyhow::Result<Row> {
    eprintln!("wrk {target} {mode} for {seconds} s");
    let run = || wrk(url, cookie, seconds, WRK_THREADS);
    let (wrk, cpu_us_per_req) = match pid {
        Some(pid) => {
            let (wrk, cpu) = measured(pid, run)?;
            let us = cpu / (wrk.rps * seconds as f64) * 1e6;
            (wrk, Some(us))
        }
        None => (run()?, None),
    };
    Ok(Row {
        target,
        mode,
        wrk,
        cpu_us_per_req,
    })
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

/// Runs the benchmark, `rounds` times the wrk rows, and prints the tables.
///
/// # Errors
/// A missing tool, a target that does not come up, or a failed run.
pub fn run(bin: &std::path::Path, seconds: u64, rounds: u32) -> anyhow::Result<()> {
    packages::require(&[("wrk", "wrk"), ("haproxy", "haproxy"), ("taskset", "util-linux")])?;
    raise_nofile();
    let scratch = Scratch::new("proxy")?;
    let (backends, _backends) = targets::whoami(bin, &scratch, 2)?;
    let ss_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let ha_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let (ss, _admin) = targets::swarm_sticky(bin, &scratch, ss_addr, &[], &[], &backends)?;
    let ha = targets::haproxy(&scratch, ha_addr, &[], &backends)?;
    let ss_cookie = probe::sticky_cookie(ss_addr)?;
    let ha_cookie = probe::sticky_cookie(ha_addr)?;
    let (ss_pid, ha_pid) = (ss.id(), ha.id());

    let url = |a: SocketAddr| format!("http://{a}/");
    // Warm-up, so that pools and caches are filled before measuring.
    wrk(&url(ss_addr), Some(&ss_cookie), 2, WRK_THREADS)?;
    wrk(&url(ha_addr), Some(&ha_cookie), 2, WRK_THREADS)?;
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
    // Both readings end within swarm-sticky's default keep-alive limit
    // (HAProxy's is longer), as the figures in `docs/benchmarks.md` did.
    let rss = [
        idle::measure("haproxy", ha_pid, HAPROXY_IDLE, KEEP_ALIVE, |n| {
            idle_connections(ha_addr, &ha_cookie, n)
        })?,
        idle::measure("swarm-sticky", ss_pid, IDLE_CONNECTIONS, KEEP_ALIVE, |n| {
            idle_connections(ss_addr, &ss_cookie, n)
        })?,
    ];
    idle::print(&rss);
    Ok(())
}
