//! Plain HTTP/1.1 clients over `std::net`, for use on a thread that has
//! entered a test namespace (see `Netns::run`).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Raw header block.
    pub head: String,
    /// Body.
    pub body: String,
}

/// One `GET path` on a fresh connection with `Connection: close`.
///
/// # Errors
/// Any I/O error, or a response that is not HTTP.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    get_with(addr, path, None)
}

/// `GET path` with an optional `Cookie` header, on a fresh connection.
///
/// # Errors
/// Any I/O error, or a response that is not HTTP.
pub fn get_with(addr: SocketAddr, path: &str, cookie: Option<&str>) -> std::io::Result<Response> {
    match cookie {
        Some(c) => request(addr, "GET", path, &[("Cookie", c)]),
        None => request(addr, "GET", path, &[]),
    }
}

/// `method path` with extra headers and no body, on a fresh connection.
/// `Host` is `addr`, as curl sends it, unless `headers` name one.
///
/// # Errors
/// Any I/O error, or a response that is not HTTP.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        extra.insert_str(0, &format!("Host: {addr}\r\n"));
    }
    let length = if method == "GET" { "" } else { "Content-Length: 0\r\n" };
    // One write: a server may answer (and close) after the first segment.
    s.write_all(format!("{method} {path} HTTP/1.1\r\n{extra}{length}Connection: close\r\n\r\n").as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> std::io::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response: {text:?}"),
        )
    };
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or_else(bad)?;
    Ok(Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

impl Response {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The `name=value` part of the first `Set-Cookie` header.
    pub fn set_cookie(&self) -> Option<String> {
        let line = self
            .head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))?;
        let value = line.split_once(':')?.1.trim();
        Some(value.split(';').next()?.trim().to_string())
    }

    /// The name in a whoami answer (`I'm <name>`).
    pub fn whoami(&self) -> Option<String> {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix("I'm "))
            .map(|n| n.trim().to_string())
    }
}

/// The admin API's `/api/status` as JSON.
pub fn admin_status(admin: SocketAddr) -> Option<serde_json::Value> {
    let r = get(admin, "/api/status").ok()?;
    serde_json::from_str(&r.body).ok()
}

/// The value of the sample `series` (name and labels exactly as exposed)
/// in the admin listener's `/metrics`.
pub fn metric(admin: SocketAddr, series: &str) -> Option<f64> {
    let r = get(admin, "/metrics").ok()?;
    r.body.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// Accepted connections per worker, from the admin API.
pub fn accepted_per_worker(admin: SocketAddr) -> Vec<u64> {
    let status = admin_status(admin).expect("admin status");
    status["workers"]
        .as_array()
        .expect("workers array")
        .iter()
        .map(|w| w["accepted"].as_u64().expect("accepted count"))
        .collect()
}

/// Ports with a TCP socket in LISTEN state in the calling thread's network
/// namespace (IPv4 and IPv6), from `/proc/thread-self/net/tcp{,6}`.
pub fn listening_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for file in ["/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // cols[1] = local "ADDR:PORT" in hex, cols[3] = state (0A = LISTEN)
            if cols.len() > 3
                && cols[3] == "0A"
                && let Some(port) = cols[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}
