//! Raw-socket HTTP/1 peers for the request-path hardening tests, where a
//! well-behaved hyper peer cannot show the problem: backends that answer
//! an upload before reading it (as Go's and nginx's servers do), never
//! answer, or switch protocols unasked; and a client that writes exactly
//! the bytes it is given and can stall in the middle of a body.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

/// Upper bound for one raw read in these tests.
const READ_WAIT: Duration = Duration::from_secs(10);

/// What a [`RawBackend`] does with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// GET: `200 I'm <name>`. `POST /early…`: `413` at once, then reads and
    /// discards the body (Go's keep-alive behaviour). Other POSTs: read the
    /// whole body, then `200`.
    EarlyAnswer,
    /// Reads requests and never answers.
    Hang,
    /// Answers every request with `101 Switching Protocols`.
    SwitchUnasked,
    /// Answers the first request on a connection (`200 I'm <name>`); reads
    /// the second one whole and closes without a word, as a backend that
    /// restarts or times out an idle keep-alive connection does.
    DropSecond,
}

/// A backend on 127.0.0.1 served by raw sockets on the current runtime.
pub struct RawBackend {
    /// Its address.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

impl RawBackend {
    /// Starts a backend named `name` with `behaviour`.
    pub async fn start(name: &str, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let (count, name) = (connections.clone(), name.to_owned());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, behaviour, name.clone()));
            }
        });
        Self { addr, connections }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(mut s: TcpStream, behaviour: Behaviour, name: String) {
    let mut buf = Vec::new();
    for request in 1.. {
        let Some(head) = read_head(&mut s, &mut buf).await else {
            return;
        };
        let length = content_length(&head);
        let post = head.starts_with("POST");
        match behaviour {
            Behaviour::DropSecond if request > 1 => {
                let _ = discard(&mut s, &mut buf, length).await;
                return;
            }
            Behaviour::Hang => {
                // Hold the connection without a word.
                std::future::pending::<()>().await;
            }
            Behaviour::SwitchUnasked => {
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: foo\r\n\r\n")
                    .await;
                std::future::pending::<()>().await;
            }
            Behaviour::EarlyAnswer if post && head.starts_with("POST /early") => {
                if s.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 6\r\n\r\nearly\n")
                    .await
                    .is_err()
                    || !discard(&mut s, &mut buf, length).await
                {
                    return;
                }
            }
            Behaviour::EarlyAnswer | Behaviour::DropSecond => {
                if !discard(&mut s, &mut buf, length).await {
                    return;
                }
                let body = format!("I'm {name}\nbody-bytes: {length}\n");
                let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads up to the end of a request head; what follows stays in `buf`.
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads and drops `n` body bytes (some may already be in `buf`).
async fn discard(s: &mut TcpStream, buf: &mut Vec<u8>, mut n: usize) -> bool {
    let have = n.min(buf.len());
    buf.drain(..have);
    n -= have;
    let mut chunk = [0u8; 4096];
    while n > 0 {
        match s.read(&mut chunk[..n.min(4096)]).await {
            Ok(0) | Err(_) => return false,
            Ok(k) => n -= k,
        }
    }
    true
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The response head read from a raw client socket.
#[derive(Debug)]
pub struct RawReply {
    /// Status code.
    pub status: u16,
    /// The head, lower-cased.
    pub head: String,
    /// The body, when it had a Content-Length.
    pub body: String,
}

/// Reads one response (head, and a Content-Length body) within 10 s.
pub async fn read_reply(s: &mut TcpStream) -> Option<RawReply> {
    tokio::time::timeout(READ_WAIT, async {
        let mut buf = Vec::new();
        let head = read_head(s, &mut buf).await?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let length = content_length(&head);
        while buf.len() < length {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        Some(RawReply {
            status,
            head: head.to_ascii_lowercase(),
            body: String::from_utf8_lossy(&buf).into_owned(),
        })
    })
    .await
    .ok()
    .flatten()
}

/// Sends `raw` on a new connection to `addr` and reads one response.
pub async fn exchange(addr: SocketAddr, raw: &[u8]) -> Option<RawReply> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(raw).await.ok()?;
    read_reply(&mut s).await
}

/// Whether the peer closes `s` within 10 s (bytes it still sends are
/// skipped).
pub async fn closes(s: &mut TcpStream) -> bool {
    let mut sink = [0u8; 1024];
    tokio::time::timeout(READ_WAIT, async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}
