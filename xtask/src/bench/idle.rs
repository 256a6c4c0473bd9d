//! Memory held by idle keep-alive connections: a target's RSS before and
//! with `n` of them open (each sent one request), and the table of both
//! proxies.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::process::rss_kib;

/// One target's figures.
pub(super) struct IdleRss {
    name: &'static str,
    connections: usize,
    before_kib: u64,
    with_kib: u64,
}

impl IdleRss {
    /// KiB per idle connection.
    pub(super) fn per_connection_kib(&self) -> f64 {
        self.with_kib.saturating_sub(self.before_kib) as f64 / self.connections as f64
    }
}

/// The RSS once it stops moving, read after the last idle connection was
/// opened: swarm-sticky frees an idle connection's buffers 1 s after its
/// request and hands freed pages back at most once a second, so the RSS
/// falls in steps about a second apart. The first reading is 2 s later,
/// then one every 500 ms until three in a row (a span longer than one
/// step) agree within 1 %. All within `limit` of the first connection.
fn settled_rss_kib(pid: u32, first: Instant, limit: Duration) -> anyhow::Result<u64> {
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
        if first.elapsed() > limit {
            bail!("RSS still moving {limit:?} after the first idle connection (readings {seen:?} KiB)");
        }
    }
}

/// Opens `n` idle connections to the target `pid` with `open`, which
/// returns them (closed on drop), and reads its settled RSS. `keep_alive`
/// is how long the target keeps an idle connection open: the reading ends
/// a second before the first connection would be closed.
pub(super) fn measure<C>(
    name: &'static str,
    pid: u32,
    n: usize,
    keep_alive: Duration,
    open: impl FnOnce(usize) -> anyhow::Result<C>,
) -> anyhow::Result<IdleRss> {
    let before_kib = rss_kib(pid)?;
    let first = Instant::now();
    let conns = open(n).with_context(|| format!("open {n} idle connections to {name}"))?;
    eprintln!(
        "{name}: {n} idle connections opened in {:.1} s",
        first.elapsed().as_secs_f64()
    );
    let limit = keep_alive.saturating_sub(Duration::from_secs(1));
    let with_kib = settled_rss_kib(pid, first, limit).with_context(|| format!("{name} with {n} idle connections"))?;
    drop(conns);
    Ok(IdleRss {
        name,
        connections: n,
        before_kib,
        with_kib,
    })
}

/// The table of every target.
pub(super) fn print(rows: &[IdleRss]) {
    println!();
    println!("| proxy | idle connections | RSS before | RSS with them | per connection |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.1} MiB | {:.1} MiB | {:.2} KiB |",
            r.name,
            r.connections,
            r.before_kib as f64 / 1024.0,
            r.with_kib as f64 / 1024.0,
            r.per_connection_kib()
        );
    }
}
