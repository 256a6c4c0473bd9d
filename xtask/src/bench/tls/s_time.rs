//! Handshake rates with OpenSSL 3.0's own tools on CPU 1: `openssl
//! s_time` for full (`-new`) and resumed (`-reuse -www /`) handshakes, and
//! `openssl s_client -brief` for what a connection negotiates.

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::Context as _;

use crate::cmd;

/// What one s_time run did.
pub(super) struct STime {
    /// Connections completed.
    pub(super) connections: u64,
    /// Wall time of the run, in seconds.
    pub(super) seconds: f64,
    /// Of the connections, those s_time marked as resumed (`r`).
    pub(super) resumed: u64,
}

/// `openssl s_time` against `addr` for `seconds`: full handshakes only
/// (`-new`), or resumptions of one session (`-reuse`) with a page fetched
/// on each connection, since a TLS 1.3 client only receives its tickets
/// after the handshake and s_time reads them only when it reads a page.
pub(super) fn s_time(addr: SocketAddr, resume: bool, seconds: u64) -> anyhow::Result<STime> {
    let mut c = Command::new("taskset");
    c.args(["-c", "1", "openssl", "s_time", "-connect"])
        .arg(addr.to_string())
        .args(["-time", &seconds.to_string()]);
    if resume {
        c.args(["-reuse", "-www", "/"]);
    } else {
        c.arg("-new");
    }
    let started = Instant::now();
    let out = cmd::output(&mut c)?;
    let seconds = started.elapsed().as_secs_f64();
    // "1818 connections in 1.20s; 1515.00 connections/user sec, ...";
    // before it, lines of one character per connection: `r` resumed,
    // another (`*`, `t`, `3`: the version) not.
    let (marks, summary) = out
        .split_once(" connections in ")
        .with_context(|| format!("s_time output:\n{out}"))?;
    let count_at = marks.rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
    let connections = marks[count_at..]
        .parse()
        .with_context(|| format!("s_time count: {}", &summary[..summary.len().min(80)]))?;
    let resumed = marks[..count_at]
        .lines()
        .filter(|l| !l.is_empty() && l.bytes().all(|b| matches!(b, b'r' | b'*' | b't' | b'3')))
        .map(|l| l.bytes().filter(|b| *b == b'r').count() as u64)
        .sum();
    Ok(STime {
        connections,
        seconds,
        resumed,
    })
}

/// `openssl s_client -brief`'s account of one handshake with `addr`:
/// version, cipher suite and key-exchange group, as one line.
pub(super) fn negotiated(addr: SocketAddr) -> anyhow::Result<String> {
    let out = Command::new("openssl")
        .args(["s_client", "-brief", "-connect"])
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .output()
        .context("start openssl s_client")?;
    // -brief writes its account to stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map_or("?", str::trim)
            .to_string()
    };
    Ok(format!(
        "{}, {}, {}",
        field("Protocol version:"),
        field("Ciphersuite:"),
        field("Server Temp Key:")
    ))
}
