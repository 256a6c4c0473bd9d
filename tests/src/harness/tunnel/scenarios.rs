//! The scenarios themselves: each takes the address clients connect to
//! and the [`RawBackend`] behind the proxy, and panics with what went
//! wrong.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{Shutdown, SocketAddr},
    sync::atomic::Ordering,
    thread,
    time::{Duration, Instant},
};

use super::{
    IO_WAIT, PAUSE, RawBackend, SOURCE_LEN, Seen, fill, pattern_hash, read_to_end_hash, upgrade, write_pattern,
};

/// Bytes a paused reader may leave buffered along the path (socket
/// buffers of four sockets, autotuned up to a few MiB each, plus the
/// proxy's own): beyond that, the writer was not stalled.
pub const BUFFERED_LIMIT: u64 = 32 << 20;

/// Bytes written to a paused `/sink`.
const SINK_LEN: u64 = 64 << 20;

/// `size` pattern bytes echo back intact (SHA-256), the first ones sent in
/// the same write as the upgrade request; the client half-closes after
/// sending and still receives the rest, then EOF.
pub fn echo(proxy: SocketAddr, size: u64) {
    let early_len = size.min(1000);
    let mut early = vec![0u8; early_len as usize];
    fill(&mut early, 0);
    let (mut s, after) = upgrade(proxy, "/echo", &early);
    let mut w = s.try_clone().expect("clone the client socket");
    let writer = thread::spawn(move || {
        write_pattern(&mut w, early_len, size - early_len);
        w.shutdown(Shutdown::Write).expect("half-close");
    });
    let (hash, n) = read_to_end_hash(&mut s, &after);
    writer.join().expect("writer thread");
    assert_eq!(n, size, "bytes echoed");
    assert_eq!(
        hash,
        pattern_hash(size),
        "echoed bytes differ (lost, duplicated or reordered)"
    );
}

/// A backend that does not read for [`PAUSE`] stalls the client: while it
/// pauses, the client's non-blocking writes stop being accepted well below
/// [`SINK_LEN`]. Then everything arrives intact.
pub fn slow_backend_reader(proxy: SocketAddr, backend: &RawBackend) -> u64 {
    let (mut s, _) = upgrade(proxy, "/sink", b"");
    s.set_nonblocking(true).expect("nonblocking");
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 16];
    let mut written = 0u64;
    while start.elapsed() < PAUSE - Duration::from_millis(300) && written < SINK_LEN {
        let n = (SINK_LEN - written).min(buf.len() as u64) as usize;
        fill(&mut buf[..n], written);
        match s.write(&buf[..n]) {
            Ok(k) => written += k as u64,
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(2)),
            Err(e) => panic!("write while the backend pauses: {e}"),
        }
    }
    let read_meanwhile = backend.sink_read.load(Ordering::Relaxed);
    assert!(
        written < BUFFERED_LIMIT,
        "the writer was not stalled: {written} bytes accepted while the backend read {read_meanwhile}"
    );
    s.set_nonblocking(false).expect("blocking");
    write_pattern(&mut s, written, SINK_LEN - written);
    s.shutdown(Shutdown::Write).expect("half-close");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the digest");
    assert_eq!(answer.trim(), pattern_hash(SINK_LEN), "bytes the backend received");
    written
}

/// A client that does not read for [`PAUSE`] stalls the backend's writes;
/// then all [`SOURCE_LEN`] bytes arrive intact.
pub fn slow_client_reader(proxy: SocketAddr, backend: &RawBackend) -> u64 {
    let (mut s, after) = upgrade(proxy, "/source", b"");
    thread::sleep(PAUSE);
    let written = backend.source_written.load(Ordering::Relaxed);
    assert!(
        written < BUFFERED_LIMIT,
        "the backend was not stalled: it wrote {written} bytes while the client read none"
    );
    let (hash, n) = read_to_end_hash(&mut s, &after);
    assert_eq!(n, SOURCE_LEN, "bytes received");
    assert_eq!(hash, pattern_hash(SOURCE_LEN), "bytes the client received");
    written
}

/// Client FIN reaches the backend as EOF; a client reset as a reset.
pub fn client_close_and_reset(proxy: SocketAddr, backend: &RawBackend) {
    let (mut s, _) = upgrade(proxy, "/watch", b"");
    s.write_all(b"some bytes").expect("write");
    drop(s);
    let seen = backend.seen.recv_timeout(IO_WAIT).expect("the backend saw the close");
    assert_eq!(seen, Seen::Eof, "client close");

    let (mut s, _) = upgrade(proxy, "/watch", b"");
    s.write_all(b"some bytes").expect("write");
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .expect("linger 0");
    drop(s);
    let seen = backend.seen.recv_timeout(IO_WAIT).expect("the backend saw the reset");
    assert_eq!(seen, Seen::Reset, "client reset");
}

/// Backend FIN reaches the client as EOF after its last bytes; a backend
/// reset reaches the client as a reset.
pub fn backend_close_and_reset(proxy: SocketAddr) {
    let (mut s, after) = upgrade(proxy, "/close", b"");
    s.write_all(b"go").expect("write");
    let mut got = after;
    s.read_to_end(&mut got).expect("read until EOF");
    assert_eq!(got, b"bye", "bytes before the backend's close");
    drop(s);

    let (mut s, _) = upgrade(proxy, "/rst", b"");
    s.write_all(b"x").expect("write");
    let mut buf = [0u8; 64];
    let r = loop {
        match s.read(&mut buf) {
            Ok(n) if n > 0 => {}
            other => break other,
        }
    };
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "backend reset: {e}"),
        Ok(_) => panic!("the backend's reset reached the client as a clean EOF"),
    }
    drop(s);
}

/// The backend half-closes first: the client reads its last bytes and EOF,
/// and what the client sends afterwards still reaches the backend.
pub fn backend_half_close(proxy: SocketAddr, backend: &RawBackend) {
    const AFTER: u64 = 1 << 20;
    let (mut s, after) = upgrade(proxy, "/half", b"");
    s.write_all(b"g").expect("write");
    let mut got = after;
    s.read_to_end(&mut got).expect("read until the backend's EOF");
    assert_eq!(got, b"bye");
    write_pattern(&mut s, 0, AFTER);
    s.shutdown(Shutdown::Write).expect("half-close");
    let deadline = Instant::now() + IO_WAIT;
    while backend.sink_read.load(Ordering::Relaxed) < AFTER {
        assert!(
            Instant::now() < deadline,
            "the backend got {} of {AFTER} bytes after its half-close",
            backend.sink_read.load(Ordering::Relaxed)
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(backend.sink_read.load(Ordering::Relaxed), AFTER);
    drop(s);
}

/// `n` short upgraded connections, one after the other: `ping` out, echo
/// back, close.
pub fn many_short(proxy: SocketAddr, n: usize) {
    for i in 0..n {
        let (mut s, mut got) = upgrade(proxy, "/echo", b"ping");
        let mut buf = [0u8; 16];
        while got.len() < 4 {
            let k = s.read(&mut buf).unwrap_or_else(|e| panic!("connection #{i}: {e}"));
            assert!(k > 0, "connection #{i}: EOF before the echo");
            got.extend_from_slice(&buf[..k]);
        }
        assert_eq!(got, b"ping", "connection #{i}");
    }
}
