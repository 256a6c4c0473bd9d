//! `cargo xtask bench tls`: HTTPS termination, swarm-sticky (rustls with
//! aws-lc-rs) against HAProxy 2.6 (OpenSSL 3.0), same run, same backends,
//! same ECDSA P-256 certificate.
//!
//! Layout as in `bench proxy`: each proxy alone on CPU 0 (one worker, one
//! HAProxy thread), the load tool and the two whoami backends on CPU 1.
//! Rows, each run for both proxies in every round:
//!
//! 1. full TLS 1.3 handshakes (`openssl s_time -new`);
//! 2. resumed ones (`openssl s_time -reuse -www /`), checked against
//!    swarm-sticky's own count of resumed handshakes;
//! 3. keep-alive HTTPS requests with the sticky cookie: HTTP/1.1 with
//!    `wrk -t1 -c64`, h2 with `h2load -c64 -m10`.
//!
//! A single s_time process saturates CPU 1 long before a proxy runs out of
//! CPU 0, so besides the rate each row reports the proxy's CPU time per
//! handshake or request (utime + stime from `/proc/<pid>/stat`): that is
//! the figure the targets are set on. Last, the RSS of each proxy holding
//! idle TLS connections, opened by the bench's own client (`tls/client.rs`).
//!
//! Layout of the code: `tls/cert.rs` makes the key material,
//! `tls/s_time.rs` and `tls/h2load.rs` run the tools, `tls/report.rs`
//! prints the tables.

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::{Context as _, bail};

mod cert;
mod client;
mod h2load;
mod report;
mod s_time;

use self::{
    client::Client,
    report::{Sample, Test},
};
use super::{
    idle, probe,
    process::{Scratch, free_port, measured, raise_nofile},
    targets::{self, HAPROXY_IDLE, IDLE_CONNECTIONS},
    wrk::wrk,
};
use crate::packages;

/// How long both proxies keep an idle keep-alive connection: HAProxy's
/// `timeout client` of `bench proxy`, set for swarm-sticky through a
/// `[limits]` file (its default is 10 s). Opening thousands of TLS
/// connections takes several seconds, and all of them have to be open and
/// idle while the RSS is read.
const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// One proxy under test.
struct Target {
    name: &'static str,
    pid: u32,
    tls: SocketAddr,
    cookie: String,
    /// swarm-sticky's admin listener, for its handshake counters.
    admin: Option<SocketAddr>,
}

/// swarm-sticky's completed TLS 1.3 handshakes: (full, resumed).
fn handshakes(admin: SocketAddr) -> anyhow::Result<(u64, u64)> {
    let metrics = probe::get(admin, "/metrics")?;
    let count = |kind: &str| -> anyhow::Result<u64> {
        let label = format!("handshake=\"{kind}\"");
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with("swarm_sticky_tls_handshakes_total{")
                    && l.contains("version=\"1.3\"")
                    && l.contains(&label)
            })
            .with_context(|| format!("no TLS 1.3 {kind} handshake counter in the metrics"))?;
        Ok(line.rsplit(' ').next().unwrap_or_default().parse()?)
    };
    Ok((count("full")?, count("resumed")?))
}

/// Runs `test` against `t` for `seconds`.
fn sample(test: Test, t: &Target, seconds: u64, scratch: &Scratch) -> anyhow::Result<Sample> {
    eprintln!("{} {} for {seconds} s", t.name, test.name());
    let counted_before = t.admin.filter(|_| test.is_handshake()).map(handshakes).transpose()?;
    let mut s = Sample {
        test,
        target: t.name,
        ops: 0.0,
        seconds: seconds as f64,
        cpu: 0.0,
        p99_ms: None,
        resumed: None,
        resumed_by_proxy: None,
        errors: 0,
    };
    match test {
        Test::Full | Test::Resumed => {
            let resume = test == Test::Resumed;
            let (run, cpu) = measured(t.pid, || s_time::s_time(t.tls, resume, seconds))?;
            s.ops = run.connections as f64;
            s.seconds = run.seconds;
            s.cpu = cpu;
            if resume {
                s.resumed = Some(run.resumed as f64 / s.ops.max(1.0));
            }
        }
        Test::Http1 => {
            let url = format!("https://{}/", t.tls);
            let (run, cpu) = measured(t.pid, || wrk(&url, Some(&t.cookie), seconds, 1))?;
            s.ops = run.rps * seconds as f64;
            s.cpu = cpu;
            s.p99_ms = Some(run.p99_ms);
            s.errors = run.errors;
        }
        Test::H2 => {
            let log = scratch.path().join(format!("h2load-{}.log", t.name));
            let (run, cpu) = measured(t.pid, || h2load::h2load(t.tls, Some(&t.cookie), seconds, &log))?;
            s.ops = run.requests as f64;
            s.seconds = run.seconds;
            s.cpu = cpu;
            s.p99_ms = Some(run.p99_ms);
            s.errors = run.errors;
        }
    }
    if let (Some(admin), Some((full0, resumed0))) = (t.admin, counted_before) {
        let (full, resumed) = handshakes(admin)?;
        let (full, resumed) = (
            full.saturating_sub(full0) as f64,
            resumed.saturating_sub(resumed0) as f64,
        );
        s.resumed_by_proxy = Some(resumed / (full + resumed).max(1.0));
    }
    Ok(s)
}

/// Checks that `t` serves HTTPS and honours its cookie (no new one set),
/// and says what `openssl s_client` negotiates with it.
fn check(t: &Target, cert: &Path) -> anyhow::Result<()> {
    let head = Client::new(cert)?.head(t.tls, &t.cookie)?;
    if !head.starts_with("HTTP/1.1 200") || head.to_ascii_lowercase().contains("set-cookie:") {
        bail!("{} over TLS with its cookie answered:\n{head}", t.name);
    }
    println!("{}: {}", t.name, s_time::negotiated(t.tls)?);
    Ok(())
}

/// Runs the benchmark, `rounds` times the rows, and prints the tables.
///
/// # Errors
/// A missing tool, a target that does not come up, or a failed run.
pub fn run(bin: &Path, seconds: u64, rounds: u32) -> anyhow::Result<()> {
    packages::require(&[
        ("wrk", "wrk"),
        ("haproxy", "haproxy"),
        ("h2load", "nghttp2-client"),
        ("openssl", "openssl"),
        ("taskset", "util-linux"),
    ])?;
    raise_nofile();
    let scratch = Scratch::new("tls")?;
    let keys = cert::generate(&scratch)?;
    let (backends, _backends) = targets::whoami(bin, &scratch, 2)?;
    let addr = || -> anyhow::Result<SocketAddr> { Ok(SocketAddr::from(([127, 0, 0, 1], free_port()?))) };
    let (ss_plain, ss_tls, ha_plain, ha_tls) = (addr()?, addr()?, addr()?, addr()?);
    let path = |p: &Path| p.display().to_string();
    let limits = scratch.path().join("limits.toml");
    let keep_alive_ms = KEEP_ALIVE.as_millis();
    std::fs::write(&limits, format!("[limits]\nheader_read_timeout_ms = {keep_alive_ms}\n"))
        .context("write the limits file")?;
    let tls_flags = [
        "--tls-cert".into(),
        path(&keys.cert),
        "--tls-key".into(),
        path(&keys.key),
        "--config".into(),
        path(&limits),
    ];
    let (ss, admin) = targets::swarm_sticky(
        bin,
        &scratch,
        ss_plain,
        &[format!("https://{ss_tls}")],
        &tls_flags,
        &backends,
    )?;
    let bind = format!(
        "{ha_tls} ssl crt {} alpn h2,http/1.1 tls-ticket-keys {}",
        path(&keys.combined),
        path(&keys.ticket_keys)
    );
    let ha = targets::haproxy(&scratch, ha_plain, &[bind], &backends)?;
    let targets = [
        Target {
            name: "haproxy",
            pid: ha.id(),
            tls: ha_tls,
            cookie: probe::sticky_cookie(ha_plain)?,
            admin: None,
        },
        Target {
            name: "swarm-sticky",
            pid: ss.id(),
            tls: ss_tls,
            cookie: probe::sticky_cookie(ss_plain)?,
            admin: Some(admin),
        },
    ];
    println!("negotiated by openssl s_client (as s_time):");
    for t in &targets {
        check(t, &keys.cert)?;
    }

    // Warm-up: handshake paths, pools and caches.
    for t in &targets {
        s_time::s_time(t.tls, false, 1)?;
        wrk(&format!("https://{}/", t.tls), Some(&t.cookie), 2, 1)?;
    }
    // Rounds alternate the targets within each row, so that a slow phase
    // of the machine shows in every target of a round rather than in one.
    let mut all = Vec::new();
    for round in 1..=rounds {
        eprintln!("round {round} of {rounds}");
        let mut samples = Vec::new();
        for test in Test::ALL {
            for t in &targets {
                samples.push(sample(test, t, seconds, &scratch)?);
            }
        }
        println!("\nRound {round}:\n");
        report::print_round(&samples);
        all.push(samples);
    }
    println!("\nMedian of {rounds} rounds; ratios are swarm-sticky's over HAProxy's, taken within each round:\n");
    report::print_summary(&all);

    eprintln!("opening idle TLS keep-alive connections to each proxy");
    let [ha_t, ss_t] = &targets;
    let rss = [
        idle::measure(ha_t.name, ha_t.pid, HAPROXY_IDLE, KEEP_ALIVE, |n| {
            Client::new(&keys.cert)?.idle(ha_t.tls, &ha_t.cookie, n)
        })?,
        idle::measure(ss_t.name, ss_t.pid, IDLE_CONNECTIONS, KEEP_ALIVE, |n| {
            Client::new(&keys.cert)?.idle(ss_t.tls, &ss_t.cookie, n)
        })?,
    ];
    idle::print(&rss);
    let ratio = rss[1].per_connection_kib() / rss[0].per_connection_kib().max(f64::EPSILON);
    println!(
        "\nRSS per idle TLS connection: swarm-sticky {ratio:.2}× HAProxy (target ≤ 1.0: {})",
        if ratio <= 1.0 { "met" } else { "missed" }
    );
    Ok(())
}
