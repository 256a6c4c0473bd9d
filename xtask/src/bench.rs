//! `cargo xtask bench steering|proxy|tls`: benchmarks, each against its
//! baseline in the same run. Figures are printed as Markdown tables; the
//! ones we measured are kept in `docs/benchmarks.md`.
//!
//! Layout: one file per benchmark (`steering.rs`, `proxy.rs`, `tls.rs`),
//! and what `proxy` and `tls` share: `process.rs` (pinned processes,
//! `/proc` figures), `targets.rs` (backends, swarm-sticky, HAProxy),
//! `probe.rs`, `wrk.rs`, `idle.rs` (RSS with idle connections) and
//! `rounds.rs` (medians).

mod idle;
mod probe;
mod process;
mod proxy;
mod rounds;
mod steering;
mod targets;
mod tls;
mod wrk;

use crate::setup;

/// Which benchmark.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Which {
    /// Connection rate and spread: eBPF sk_lookup, SO_REUSEPORT, one shared socket.
    Steering,
    /// wrk through swarm-sticky and HAProxy over the same two backends, and
    /// the memory held by 10,000 idle keep-alive connections.
    Proxy,
    /// HTTPS termination against HAProxy: full and resumed TLS 1.3
    /// handshakes, keep-alive HTTP/1.1 and h2 requests, and the memory held
    /// by 10,000 idle TLS connections.
    Tls,
}

/// Builds the release binary and runs the benchmark.
///
/// # Errors
/// When the build or a run fails.
pub fn run(which: Which, seconds: u64, rounds: u32) -> anyhow::Result<()> {
    let tools = setup::run()?;
    let bin = crate::tasks::release_binary(&tools)?;
    match which {
        Which::Steering => steering::run(&bin, seconds),
        Which::Proxy => proxy::run(&bin, seconds, rounds),
        Which::Tls => tls::run(&bin, seconds, rounds),
    }
}
