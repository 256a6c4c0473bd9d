//! h2 requests with h2load on CPU 1 (`-c64 -m10`, for a fixed time), and
//! the figures it prints. h2load prints no percentiles, so the p99 comes
//! from its per-request log.

use std::{net::SocketAddr, path::Path, process::Command};

use anyhow::Context as _;

use crate::cmd;

/// h2load's figures.
pub(super) struct H2load {
    /// Requests that succeeded.
    pub(super) requests: u64,
    /// Wall time of the run, in seconds (h2load's own).
    pub(super) seconds: f64,
    /// 99th percentile of the request times, in ms.
    pub(super) p99_ms: f64,
    /// Failed, errored, timed out, or not 2xx.
    pub(super) errors: u64,
}

/// The number just before the word `label` on the line that starts with
/// `line` (h2load writes "412345 succeeded, 0 failed").
fn count_before(out: &str, line: &str, label: &str) -> Option<u64> {
    let l = out.lines().map(str::trim).find(|l| l.starts_with(line))?;
    let words: Vec<&str> = l.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let at = words.iter().position(|w| *w == label)?;
    words.get(at.checked_sub(1)?)?.parse().ok()
}

/// The 99th percentile of the third column (µs) of h2load's log, in ms.
fn p99_ms(log: &Path) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(log).with_context(|| format!("read {}", log.display()))?;
    let mut us: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse().ok())
        .collect();
    anyhow::ensure!(!us.is_empty(), "h2load logged no request");
    us.sort_unstable();
    let at = (us.len() * 99).div_ceil(100).saturating_sub(1);
    Ok(us[at] as f64 / 1000.0)
}

/// `h2load -c64 -m10 -D<seconds>` to `https://addr/` with the `cookie`
/// header when given, logging each request into `log`.
pub(super) fn h2load(addr: SocketAddr, cookie: Option<&str>, seconds: u64, log: &Path) -> anyhow::Result<H2load> {
    let mut c = Command::new("taskset");
    c.args(["-c", "1", "h2load", "-c64", "-m10"])
        .arg(format!("-D{seconds}"))
        .arg("--log-file")
        .arg(log);
    if let Some(cookie) = cookie {
        c.args(["-H", &format!("cookie: {cookie}")]);
    }
    let out = cmd::output(c.arg(format!("https://{addr}/")))?;
    let count = |line: &str, label: &str| {
        count_before(&out, line, label).with_context(|| format!("h2load `{line} … {label}` in:\n{out}"))
    };
    // "finished in 10.00s, 41234.50 req/s, 5.12MB/s"
    let seconds = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("finished in ")?
                .split('s')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .with_context(|| format!("h2load `finished in` in:\n{out}"))?;
    // "requests: 412345 total, 412345 started, 412345 done, 412345 succeeded, 0 failed, 0 errored, 0 timeout"
    let succeeded = count("requests:", "succeeded")?;
    let bad = count("requests:", "failed")? + count("requests:", "errored")? + count("requests:", "timeout")?;
    // "status codes: 412345 2xx, 0 3xx, 0 4xx, 0 5xx"
    let not_2xx = count("status codes:", "3xx")? + count("status codes:", "4xx")? + count("status codes:", "5xx")?;
    Ok(H2load {
        requests: succeeded,
        seconds,
        p99_ms: p99_ms(log)?,
        errors: bad + not_2xx,
    })
}
