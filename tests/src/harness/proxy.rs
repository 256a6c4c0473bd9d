//! A [`Proxy`] served by real [`Worker`]s on 127.0.0.1:0, and small HTTP
//! clients (hyper) to talk to it.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::{Request, StatusCode, client::conn::http1::SendRequest, header};
use hyper_util::rt::TokioIo;
use proxy_user::{
    cookie::Keyring,
    proxy::Proxy,
    services::ServicesConfig,
    worker::{Shutdown, StopPolicy, Worker, WorkerSpec, WorkerStats},
};
use tokio::{net::TcpStream, sync::watch};

/// Upper bound for any single wait in the L7 tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running proxy.
pub struct TestProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The proxy (reload, drain).
    pub proxy: Arc<Proxy>,
    stop: watch::Sender<bool>,
    workers: Vec<Worker>,
}

impl TestProxy {
    /// Two workers over `services`, with a random cookie key.
    pub fn start(services: ServicesConfig) -> Self {
        Self::start_with(services, Keyring::random(), 2)
    }

    /// `workers` workers over `services` signing with `keyring`.
    pub fn start_with(services: ServicesConfig, keyring: Keyring, workers: usize) -> Self {
        Self::serve(Proxy::standalone(services, keyring), workers)
    }

    /// Serves an already built proxy with `workers` workers.
    pub fn serve(proxy: Arc<Proxy>, workers: usize) -> Self {
        Self::serve_capped(proxy, workers, 10_000)
    }

    /// [`TestProxy::serve`] with at most `max_connections` open client
    /// connections per worker.
    pub fn serve_capped(proxy: Arc<Proxy>, workers: usize, max_connections: usize) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, signal) = Shutdown::new();
        let policy = StopPolicy {
            linger: Duration::ZERO,
            grace: Duration::from_secs(1),
        };
        let workers = (0..workers)
            .map(|index| {
                let spec = WorkerSpec {
                    index,
                    listeners: vec![listener.try_clone().unwrap()],
                    handler: proxy.clone(),
                    stats: Arc::new(WorkerStats::default()),
                    max_connections,
                };
                Worker::spawn(spec, signal.clone(), policy).unwrap()
            })
            .collect();
        Self {
            addr,
            proxy,
            stop,
            workers,
        }
    }

    /// Stops the workers and waits for them (SIGTERM drain).
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        for w in std::mem::take(&mut self.workers) {
            w.join();
        }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// One response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Body as text.
    pub body: String,
    /// `name=value` of the first Set-Cookie, if any.
    pub cookie: Option<String>,
    /// All headers.
    pub headers: hyper::HeaderMap,
}

impl Reply {
    /// The `I'm <name>` line's name.
    pub fn backend(&self) -> &str {
        self.body
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("I'm "))
            .unwrap_or("")
    }
}

/// A keep-alive HTTP/1.1 client connection.
pub struct Client {
    send: SendRequest<Full<Bytes>>,
}

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self {
            send: http1(addr).await,
        }
    }

    /// GET `path` with an optional `Cookie` header.
    pub async fn get(&mut self, path: &str, cookie: Option<&str>) -> Reply {
        let mut b = Request::get(path).header(header::HOST, "example.test");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Full::new(Bytes::new())).unwrap()).await
    }

    /// Sends `req` and reads the whole response.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Reply {
        self.send.ready().await.unwrap();
        let resp = tokio::time::timeout(WAIT, self.send.send_request(req))
            .await
            .unwrap()
            .unwrap();
        read_reply(resp).await
    }
}

/// Reads a response whole into a [`Reply`].
pub async fn read_reply<B>(resp: hyper::Response<B>) -> Reply
where
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = resp.into_parts();
    let bytes = tokio::time::timeout(WAIT, body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let cookie = parts
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned());
    Reply {
        status: parts.status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        cookie,
        headers: parts.headers,
    }
}

/// An HTTP/1.1 client connection to `addr` (its task runs until the
/// connection ends).
pub async fn http1(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// An HTTP/2 (prior knowledge) client connection to `addr`, and the task
/// that drives it (it ends when the server closes the connection).
pub async fn http2(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    (send, tokio::spawn(conn))
}

/// Two proxies over the same `backends`: one that trusts no peer, one
/// that trusts loopback (its clients' forwarding headers are believed).
pub fn untrusted_and_trusted(backends: &[(String, SocketAddr)]) -> (TestProxy, TestProxy) {
    let untrusted = TestProxy::start(ServicesConfig::single("web", backends));
    let mut cfg = ServicesConfig::single("web", backends);
    cfg.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    (untrusted, TestProxy::start(cfg))
}

/// GET `path` on a new connection.
pub async fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Reply {
    Client::connect(addr).await.get(path, cookie).await
}

/// An empty body, for clients that need one.
pub fn empty() -> Empty<Bytes> {
    Empty::new()
}

/// A WebSocket to `ws://addr/ws` over a fresh connection, with the
/// handshake's response (within [`WAIT`]).
pub async fn websocket(
    addr: SocketAddr,
) -> (
    tokio_tungstenite::WebSocketStream<TcpStream>,
    tokio_tungstenite::tungstenite::handshake::client::Response,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(WAIT, tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream))
        .await
        .unwrap()
        .unwrap()
}
