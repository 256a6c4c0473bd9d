//! wrk runs of `cargo xtask bench proxy`, with the CPU time the proxy under
//! test spent on them.

use std::process::Command;

use anyhow::Context as _;

use crate::cmd;

const WRK_THREADS: &str = "2";
const WRK_CONNECTIONS: &str = "64";

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are 12 and 13 after the comm.
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    #[expect(unsafe_code, reason = "sysconf has no safe wrapper in std")]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

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

pub(super) fn wrk(url: &str, cookie: Option<&str>, seconds: u64) -> anyhow::Result<Wrk> {
    let mut c = Command::new("taskset");
    c.args(["-c", "1", "wrk", "-t", WRK_THREADS, "-c", WRK_CONNECTIONS, "-d"])
        .arg(format!("{seconds}s"))
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

/// One measured row: a target, with or without the cookie.
pub(super) struct Row {
    pub(super) target: &'static str,
    pub(super) mode: &'static str,
    pub(super) wrk: Wrk,
    /// The proxy's CPU time per request, in µs.
    pub(super) cpu_us_per_req: Option<f64>,
}

pub(super) fn measure(
    target: &'static str,
    mode: &'static str,
    url: &str,
    cookie: Option<&str>,
    pid: Option<u32>,
    seconds: u64,
) -> anyhow::Result<Row> {
    eprintln!("wrk {target} {mode} for {seconds} s");
    let before = pid.map(cpu_seconds).transpose()?;
    let wrk = wrk(url, cookie, seconds)?;
    let cpu = match (pid, before) {
        (Some(p), Some(b)) => Some((cpu_seconds(p)? - b) / (wrk.rps * seconds as f64) * 1e6),
        _ => None,
    };
    Ok(Row {
        target,
        mode,
        wrk,
        cpu_us_per_req: cpu,
    })
}
