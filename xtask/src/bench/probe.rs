//! Single plain-HTTP requests to a benchmark target: waiting until it
//! serves, reading the sticky cookie it hands out, fetching a page (such as
//! swarm-sticky's metrics).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// One GET of `path` without a cookie; returns the status line and
/// headers, and the body.
fn request(addr: SocketAddr, path: &str) -> anyhow::Result<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    // Host names the address: the admin listener answers loopback names only.
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").context("HTTP response")?;
    Ok((head.to_string(), body.to_string()))
}

/// The body of `path`, which must answer 200.
pub(super) fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let (head, body) = request(addr, path)?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path} from {addr}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body)
}

/// Waits up to 15 s for `addr` to answer 200.
pub(super) fn wait_serving(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if get(addr, "/").is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{addr} did not answer 200 within 15 s")
}

/// The first `Set-Cookie` of a response, as `name=value`.
pub(super) fn sticky_cookie(addr: SocketAddr) -> anyhow::Result<String> {
    let (head, _) = request(addr, "/")?;
    let line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .with_context(|| format!("{addr} set no cookie:\n{head}"))?;
    let value = line.split_once(':').map_or("", |(_, v)| v).trim();
    Ok(value.split(';').next().unwrap_or_default().to_string())
}
