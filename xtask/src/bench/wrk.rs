//! wrk runs (HTTP/1.1 keep-alive, plain or HTTPS) pinned to CPU 1, and
//! the figures wrk prints.

use std::process::Command;

use anyhow::Context as _;

use crate::cmd;

/// Connections of every wrk run: enough to keep one proxy worker busy.
const WRK_CONNECTIONS: &str = "64";

/// wrk's figures.
pub(super) struct Wrk {
    pub(super) rps: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) errors: u64,
}

fn parse_latency(v: &str) -> Option<f64> {
    let (num, unit) = v.find(|c: char| c.is_ascii_alphabetic()).map(|i| v.split_at(i))?;
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => return None,
    })
}

/// `wrk -t<threads> -c64 -d<seconds>s --latency` on CPU 1, with the
/// `Cookie` header when given.
pub(super) fn wrk(url: &str, cookie: Option<&str>, seconds: u64, threads: u32) -> anyhow::Result<Wrk> {
    let mut c = Command::new("taskset");
    c.args(["-c", "1", "wrk", "-c", WRK_CONNECTIONS])
        .arg(format!("-t{threads}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency");
    if let Some(cookie) = cookie {
        c.args(["-H", &format!("Cookie: {cookie}")]);
    }
    let out = cmd::output(c.arg(url))?;
    let find = |prefix: &str| {
        out.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(ToString::to_string)
    };
    let rps = find("Requests/sec:")
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .context("wrk req/s")?;
    let p50 = find("50%")
        .and_then(|l| parse_latency(l.split_whitespace().nth(1)?))
        .context("wrk p50")?;
    let p99 = find("99%")
        .and_then(|l| parse_latency(l.split_whitespace().nth(1)?))
        .context("wrk p99")?;
    let errors = find("Non-2xx or 3xx responses:")
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
        + find("Socket errors:").map_or(0, |l| l.split([',', ' ']).filter_map(|w| w.parse::<u64>().ok()).sum());
    Ok(Wrk {
        rps,
        p50_ms: p50,
        p99_ms: p99,
        errors,
    })
}
