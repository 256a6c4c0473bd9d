//! Upgraded-connection scenarios for the tunnel tests (`l7::tunnel`).
//!
//! [`RawBackend`] answers a WebSocket handshake with `101` and then treats
//! the connection as bytes, by path: `/echo` echoes until EOF then closes;
//! `/sink` reads (after an optional pause) and answers the SHA-256 of what
//! it read; `/source` writes [`SOURCE_LEN`] pattern bytes (tracking
//! progress) then closes; `/watch` reports EOF or reset. On the first byte
//! received, `/close` says `bye` and closes, `/half` says `bye`, shuts its
//! write half and counts what still arrives, `/rst` resets. Every
//! `101` carries [`EARLY`] right behind its head, so that the bytes hyper
//! read past the 101 are tested each time. Blocking std sockets with
//! timeouts: every wait is bounded.

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use sha2::{Digest as _, Sha256};

pub mod scenarios;

/// Upper bound of any single blocking read or write.
pub const IO_WAIT: Duration = Duration::from_secs(30);
/// Bytes the backend sends right after its `101` head.
pub const EARLY: &[u8] = b"early-bytes|";
/// Bytes `/source` writes.
pub const SOURCE_LEN: u64 = 64 << 20;
/// How long `/sink` waits before its first read, and how long a slow
/// client waits before reading `/source`.
pub const PAUSE: Duration = Duration::from_millis(1500);

/// What `/watch` saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A clean EOF.
    Eof,
    /// ECONNRESET.
    Reset,
}

/// The pattern byte at offset `i` of a stream (cheap, not periodic in
/// small windows, so a reordering or duplicate changes the hash).
pub fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8
}

/// Fills `buf` with the pattern starting at `offset`.
pub fn fill(buf: &mut [u8], offset: u64) {
    for (j, b) in buf.iter_mut().enumerate() {
        *b = pattern(offset + j as u64);
    }
}

/// SHA-256 of the first `len` pattern bytes, hex.
pub fn pattern_hash(len: u64) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        fill(&mut buf[..n], off);
        h.update(&buf[..n]);
        off += n as u64;
    }
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The in-process backend.
pub struct RawBackend {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Bytes `/source` has written so far (last connection).
    pub source_written: Arc<AtomicU64>,
    /// Bytes `/sink` has read so far (last connection).
    pub sink_read: Arc<AtomicU64>,
    /// What `/watch` connections saw.
    pub seen: mpsc::Receiver<Seen>,
    stop: Arc<AtomicBool>,
}

impl RawBackend {
    /// Listens on `bind` (e.g. 127.0.0.1:0) on a thread of the caller's
    /// network namespace.
    pub fn start(bind: &str) -> Self {
        let listener = TcpListener::bind(bind).expect("bind the raw backend");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let (tx, seen) = mpsc::channel();
        let this = Self {
            addr,
            source_written: Arc::default(),
            sink_read: Arc::default(),
            seen,
            stop: Arc::default(),
        };
        let (stop, sw, sr) = (this.stop.clone(), this.source_written.clone(), this.sink_read.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (tx, sw, sr) = (tx.clone(), sw.clone(), sr.clone());
                        thread::spawn(move || serve(s, &tx, &sw, &sr));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(1)),
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        this
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads a head up to the blank line; returns it and the bytes after it.
fn read_head(s: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn serve(mut s: TcpStream, seen: &mpsc::Sender<Seen>, source_written: &AtomicU64, sink_read: &AtomicU64) {
    let _ = s.set_read_timeout(Some(IO_WAIT));
    let _ = s.set_write_timeout(Some(IO_WAIT));
    let Ok((head, rest)) = read_head(&mut s) else { return };
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    if !head.to_ascii_lowercase().contains("upgrade: websocket") {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
        return;
    }
    let mut resp = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: x\r\n\r\n".to_vec();
    resp.extend_from_slice(EARLY);
    if s.write_all(&resp).is_err() {
        return;
    }
    let mut buf = vec![0u8; 1 << 16];
    buf[..rest.len().min(1 << 16)].copy_from_slice(&rest[..rest.len().min(1 << 16)]);
    let mut pending = rest.len();
    match path.as_str() {
        "/echo" => loop {
            let n = if pending > 0 {
                std::mem::take(&mut pending)
            } else {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                }
            };
            if s.write_all(&buf[..n]).is_err() {
                return;
            }
        },
        "/sink" => {
            thread::sleep(PAUSE);
            let mut h = Sha256::new();
            h.update(&rest);
            sink_read.store(rest.len() as u64, Ordering::Relaxed);
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        h.update(&buf[..n]);
                        sink_read.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(_) => return,
                }
            }
            let _ = s.write_all(format!("{}\n", hex(&h.finalize())).as_bytes());
        }
        "/source" => {
            source_written.store(0, Ordering::Relaxed);
            let mut off = 0;
            while off < SOURCE_LEN {
                let n = (SOURCE_LEN - off).min(buf.len() as u64) as usize;
                fill(&mut buf[..n], off);
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
                off += n as u64;
                source_written.store(off, Ordering::Relaxed);
            }
        }
        "/watch" => loop {
            match s.read(&mut buf) {
                Ok(0) => break seen.send(Seen::Eof).unwrap_or(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    break seen.send(Seen::Reset).unwrap_or(());
                }
                Err(_) => break,
            }
        },
        "/close" => {
            if pending == 0 {
                let _ = s.read(&mut buf);
            }
            let _ = s.write_all(b"bye");
        }
        "/half" => {
            sink_read.store(0, Ordering::Relaxed);
            if pending == 0 && !matches!(s.read(&mut buf), Ok(n) if n > 0) {
                return;
            }
            if s.write_all(b"bye").is_err() || s.shutdown(Shutdown::Write).is_err() {
                return;
            }
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink_read.fetch_add(n as u64, Ordering::Relaxed);
            }
            return;
        }
        "/rst" => {
            if pending == 0 {
                let _ = s.read(&mut buf);
            }
            // Closing now, with linger 0, sends the reset.
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            return;
        }
        _ => {}
    }
    let _ = s.shutdown(Shutdown::Write);
    // Drain until the client closes, so that our close sends no reset.
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

/// Opens an upgraded connection to `path` through `proxy`, sending
/// `early` right behind the request in the same write. Returns the stream
/// and the bytes read past the `101` head (checked to start like [`EARLY`]).
pub fn upgrade(proxy: SocketAddr, path: &str, early: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&proxy, IO_WAIT).expect("connect to the proxy");
    s.set_read_timeout(Some(IO_WAIT)).expect("read timeout");
    s.set_write_timeout(Some(IO_WAIT)).expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nhost: test\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(early);
    s.write_all(&req).expect("send the upgrade request");
    let (head, mut rest) = read_head(&mut s).expect("read the 101 head");
    assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
    while rest.len() < EARLY.len() {
        let mut b = [0u8; 64];
        let n = s.read(&mut b).expect("read the early bytes");
        assert!(n > 0, "EOF before the backend's early bytes");
        rest.extend_from_slice(&b[..n]);
    }
    assert_eq!(&rest[..EARLY.len()], EARLY, "the backend's bytes behind the 101");
    let after = rest.split_off(EARLY.len());
    (s, after)
}

/// Reads until EOF; returns the SHA-256 (hex) and the byte count. The
/// bytes are also compared with the pattern as they come, so a failure
/// says where the stream first differs.
pub fn read_to_end_hash(s: &mut TcpStream, first: &[u8]) -> (String, u64) {
    let mut h = Sha256::new();
    let mut total = 0u64;
    let mut mismatch: Option<u64> = None;
    let mut check = |data: &[u8], total: &mut u64| {
        h.update(data);
        if mismatch.is_none()
            && let Some(j) = data
                .iter()
                .enumerate()
                .position(|(j, b)| *b != pattern(*total + j as u64))
        {
            mismatch = Some(*total + j as u64);
        }
        *total += data.len() as u64;
    };
    check(first, &mut total);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => check(&buf[..n], &mut total),
            Err(e) => panic!("read after {total} bytes (first difference at {mismatch:?}): {e}"),
        }
    }
    if let Some(at) = mismatch {
        eprintln!("stream of {total} bytes first differs from the pattern at offset {at}");
    }
    (hex(&h.finalize()), total)
}

/// Writes `len` pattern bytes starting at `offset`.
pub fn write_pattern(s: &mut TcpStream, offset: u64, len: u64) {
    let mut buf = vec![0u8; 1 << 16];
    let mut off = offset;
    while off < offset + len {
        let n = (offset + len - off).min(buf.len() as u64) as usize;
        fill(&mut buf[..n], off);
        s.write_all(&buf[..n]).unwrap_or_else(|e| panic!("write at {off}: {e}"));
        off += n as u64;
    }
}
