//! The L7 sticky proxy: a hyper server per client connection (HTTP/1.1
//! keep-alive, HTTP/1.0, HTTP/2 with prior knowledge or by ALPN over TLS,
//! upgrades), served by the [`crate::worker`] threads through
//! [`ConnectionHandler`].
//!
//! Per request: route by Host and path prefix, decide the backend from the
//! signed cookie (or the connection's first pick, or SWRR), forward with
//! hop-by-hop headers stripped and forwarding headers added, stream both
//! bodies, fail over on connect errors, and set a new cookie when the
//! backend changed. Limits: request head size (431), head read timeout
//! (408), connect timeout. Upstream connections come from a per-worker pool.
//!
//! Layout, in the order a request meets it: `proxy/accept.rs` a new
//! connection up to its first request (PROXY header, TLS handshake, HTTP
//! version), `proxy/stream.rs` the client connection plain or TLS,
//! `proxy/io.rs` that connection as hyper sees it (and hibernation),
//! `proxy/observe.rs` the counters and access log around each request,
//! `proxy/forward.rs` the request path (refuse, route, redirect, choose,
//! rewrite, send, respond; the choice itself is [`crate::sticky`]),
//! `proxy/redirect.rs` a service's HTTPS redirect and HSTS,
//! `proxy/authority.rs` the one host a request has, `proxy/headers.rs` the
//! request rewrite, `proxy/send.rs` sending with failover and deadlines,
//! `proxy/body.rs` the request body's deadline, `proxy/pool.rs` the
//! upstream pool, `proxy/tunnel.rs` upgraded connections;
//! `proxy/answer.rs` and `proxy/outcome.rs` are what they share.

mod accept;
mod answer;
mod authority;
mod body;
mod forward;
mod headers;
mod io;
mod observe;
mod outcome;
mod pool;
mod redirect;
mod send;
mod stream;
mod tunnel;

use std::{convert::Infallible, net::SocketAddr, rc::Rc, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::service::service_fn;
use hyper_util::{rt::TokioTimer, server::conn::auto};
use tokio::net::TcpStream;

pub use self::io::HIBERNATE_AFTER;
use crate::{
    access_log::AccessLog,
    balance::Balancer,
    cookie::{Keyring, KeyringHandle},
    listener::{Cidr, Listener, Scheme},
    services::ServicesConfig,
    sticky::Pins,
    tls::Tls,
    worker::{ConnInfo, ConnectionHandler, LocalFuture, Shutdown},
};

/// Error of a body on the request path: hyper's, or a deadline's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body type of requests sent upstream and responses sent to clients.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// The sticky reverse proxy: the request path over a balancer's table and
/// a keyring, shared by every worker. Cheap to share: clone the `Arc`.
pub struct Proxy {
    inner: Arc<Inner>,
}

/// What the listeners add to the request path.
#[derive(Default)]
pub struct Edge {
    /// The published listeners, in `--listen` order (a connection names
    /// its listener by index; one not listed is plain HTTP).
    pub listeners: Vec<Listener>,
    /// TLS, when a listener has it.
    pub tls: Option<Arc<Tls>>,
    /// Sources whose PROXY protocol headers are believed.
    pub proxy_protocol_from: Vec<Cidr>,
}

impl Edge {
    /// The port redirects to HTTPS name: the first HTTPS listener's, or
    /// 443 when TLS is terminated in front of this instance.
    fn https_port(&self) -> u16 {
        self.listeners
            .iter()
            .find(|l| l.scheme == Scheme::Https)
            .map_or(443, |l| l.addr.port())
    }
}

struct Inner {
    balancer: Arc<Balancer>,
    /// Listeners, TLS and PROXY protocol.
    edge: Edge,
    /// Swappable for key rotation while running.
    keyring: KeyringHandle,
    /// One line per request, when enabled.
    access_log: Option<AccessLog>,
}

impl Proxy {
    /// A proxy over `balancer`'s table, signing cookies with `keyring`,
    /// writing a line per request to `access_log`, on the listeners of
    /// `edge`.
    pub fn new(
        balancer: Arc<Balancer>,
        keyring: KeyringHandle,
        access_log: Option<AccessLog>,
        edge: Edge,
    ) -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(Inner {
                balancer,
                edge,
                keyring,
                access_log,
            }),
        })
    }

    /// A proxy with a balancer and keys of its own over `services` (tests,
    /// benchmarks, tools).
    pub fn standalone(services: ServicesConfig, keyring: Keyring) -> Arc<Self> {
        Self::new(
            Arc::new(Balancer::new(services)),
            KeyringHandle::new(keyring),
            None,
            Edge::default(),
        )
    }

    /// The routing table and backend state.
    pub fn balancer(&self) -> &Arc<Balancer> {
        &self.inner.balancer
    }

    /// The cookie keys in force.
    pub fn keyring(&self) -> &KeyringHandle {
        &self.inner.keyring
    }
}

impl ConnectionHandler for Proxy {
    fn handle(&self, stream: TcpStream, conn: ConnInfo, shutdown: Shutdown) -> LocalFuture {
        Box::pin(serve_connection(self.inner.clone(), stream, conn, shutdown))
    }
}

/// Runs hyper's futures on the worker's `LocalSet`.
#[derive(Debug, Clone, Copy)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

/// Per client connection state shared by its requests.
struct ConnCtx {
    /// The client (as a trusted PROXY header named it, if any).
    peer: SocketAddr,
    /// How the client reached us.
    scheme: Scheme,
    /// The peer in forwarding headers.
    peer_headers: headers::PeerHeaders,
    /// Backend picked for this connection per service: cookie-less
    /// requests (keep-alive, HTTP/2 streams) follow the first pick.
    pins: Pins,
    /// Requests being handled (HTTP/2 idle timeout).
    active: std::cell::Cell<usize>,
    /// When the last request handler returned.
    idle_since: std::cell::Cell<tokio::time::Instant>,
    /// The client socket, for a tunnel after an upgrade.
    client: io::ClientFd,
    /// The tunnel of an upgraded connection: the connection (and its slot
    /// under the worker's connection cap) lasts until it ends.
    tunnel: std::cell::Cell<Option<tokio::task::JoinHandle<()>>>,
}

impl ConnCtx {
    /// Resolves once no request has been handled for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let deadline = self.idle_since.get() + timeout;
            if self.active.get() == 0 && tokio::time::Instant::now() >= deadline {
                return;
            }
            let now = tokio::time::Instant::now();
            tokio::time::sleep_until(deadline.max(now + timeout / 4)).await;
        }
    }
}

/// Counts a request as in flight (for the HTTP/2 idle timeout) until it
/// is dropped: when it completes, and also when hyper drops it unfinished
/// (a cancelled stream, a client gone), which a decrement after an await
/// would miss, leaving the connection busy for ever.
struct InFlight<'a>(&'a ConnCtx);

impl<'a> InFlight<'a> {
    fn enter(ctx: &'a ConnCtx) -> Self {
        ctx.active.set(ctx.active.get() + 1);
        Self(ctx)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get().saturating_sub(1));
        self.0.idle_since.set(tokio::time::Instant::now());
    }
}

const RESPONSE_408: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: 22\r\nconnection: close\r\n\r\nrequest head too slow\n";

async fn serve_connection(inner: Arc<Inner>, stream: TcpStream, conn: ConnInfo, mut shutdown: Shutdown) {
    let limits = inner.balancer.table().limits.clone();
    // Boxed: what opening needs (a PROXY header, a TLS handshake) is not
    // kept in every connection's task.
    let Some(opened) = Box::pin(accept::open(
        &inner,
        stream,
        conn,
        limits.header_read_timeout,
        &mut shutdown,
    ))
    .await
    else {
        return;
    };
    let is_h2 = opened.h2;
    let conn = ConnInfo {
        peer: opened.peer,
        ..conn
    };
    let (mut io, shared) = io::ClientIo::new(opened.stream, !is_h2);
    let ctx = Rc::new(ConnCtx {
        peer: conn.peer,
        peer_headers: headers::PeerHeaders::new(conn.peer.ip(), opened.scheme),
        scheme: opened.scheme,
        pins: Pins::default(),
        active: std::cell::Cell::new(0),
        idle_since: std::cell::Cell::new(tokio::time::Instant::now()),
        client: shared.fd(),
        tunnel: std::cell::Cell::new(None),
    });
    // One hyper connection per waking period: an HTTP/1 connection that
    // hibernated (see `proxy/io.rs`) waits here without buffers and gets a
    // new hyper connection when the next request arrives.
    let result = loop {
        // Boxed: the awake state (hyper's connection, the service, the
        // builder) is allocated only while awake, so a hibernating
        // connection's task keeps just the socket, its context and a timer.
        let result = Box::pin(serve_awake(&inner, &ctx, io, &shared, is_h2, &limits, &mut shutdown)).await;
        if !(result.is_ok() && shared.hibernated()) {
            break result;
        }
        crate::alloc::release_freed_memory();
        let idle_left = limits.header_read_timeout.saturating_sub(io::HIBERNATE_AFTER);
        let next = tokio::select! {
            r = tokio::time::timeout(idle_left, shared.wait_for_request()) => r,
            () = shutdown.wait() => return,
        };
        match next {
            Ok(Ok(true)) => io = shared.reopen(),
            // Closed, failed, or idle for the whole keep-alive timeout.
            Ok(Ok(false) | Err(_)) | Err(_) => return,
        }
    };
    let Err(err) = result else { return };
    let hyper_err = err.downcast_ref::<hyper::Error>();
    let timed_out = hyper_err.is_some_and(hyper::Error::is_timeout);
    if timed_out && shared.is_mid_request() {
        if let Some(stream) = shared.into_stream() {
            tracing::debug!(peer = %conn.peer, "request head too slow: 408");
            observe::refused(&inner, conn.peer, 408);
            accept::answer_and_linger(stream, RESPONSE_408).await;
        }
    } else if let Some(status) = hyper_err.and_then(observe::parse_rejection) {
        tracing::debug!(peer = %conn.peer, error = %err, status, "request refused while parsing");
        observe::refused(&inner, conn.peer, status);
    } else {
        tracing::debug!(peer = %conn.peer, error = %err, "client connection ended with an error");
    }
}

/// Serves a connection with one hyper connection until hyper is done: the
/// client closed, an error, a drain, or (HTTP/1) hibernation.
async fn serve_awake(
    inner: &Arc<Inner>,
    ctx: &Rc<ConnCtx>,
    io: io::ClientIo,
    shared: &io::ClientHandle,
    is_h2: bool,
    limits: &crate::services::Limits,
    shutdown: &mut Shutdown,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut builder = auto::Builder::new(LocalExec);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let (svc_inner, svc_ctx, handle) = (inner.clone(), ctx.clone(), shared.clone());
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (inner, ctx) = (svc_inner.clone(), svc_ctx.clone());
        // Held by the response body: no hibernation while it runs.
        let busy = handle.busy();
        if req.headers().contains_key(http::header::UPGRADE) {
            handle.keep_awake();
        }
        async move {
            let _active = InFlight::enter(&ctx);
            let resp = observe::handle(&inner, &ctx, req).await;
            Ok::<_, Infallible>(resp.map(|body| io::Tracked::new(body, busy)))
        }
    });
    let mut served = Box::pin(builder.serve_connection_with_upgrades(io, service));
    let idle = async {
        if is_h2 {
            ctx.idle_for(limits.idle_timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    // Graceful shutdown lets requests in flight (and their bodies) finish.
    let result = tokio::select! {
        r = served.as_mut() => r,
        () = shutdown.wait() => {
            served.as_mut().graceful_shutdown();
            served.as_mut().await
        }
        () = idle => {
            tracing::debug!(peer = %ctx.peer, "idle HTTP/2 connection closed");
            served.as_mut().graceful_shutdown();
            served.as_mut().await
        }
    };
    // An upgraded connection never hibernates, so this hyper connection
    // was its only one; the tunnel keeps the connection (and its slot
    // under the connection cap) until it ends. Awaited here, in the boxed
    // awake state, so that it costs an idle connection's task nothing.
    let tunnel = ctx.tunnel.take();
    if let Some(t) = tunnel
        && let Err(err) = t.await
    {
        tracing::warn!(error = %err, "tunnel task failed");
    }
    result
    // Dropping `served` here releases hyper's side of the socket, which the
    // 408 path needs.
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    /// A connection's task holds its future for as long as the connection
    /// lives, idle or not: hyper's connection and scratch buffers belong on
    /// the heap while they are used, not in every task (an inline 4 KiB
    /// buffer here once doubled the cost of an idle connection).
    #[tokio::test]
    async fn an_idle_connection_task_is_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let _client = TcpStream::connect(local).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let backends: Vec<(String, SocketAddr)> = vec![("a".into(), "192.0.2.1:8000".parse().unwrap())];
        let proxy = Proxy::standalone(
            ServicesConfig::single("web", &backends),
            Keyring::from_secrets(&["unit-test-key-unit-test-key"]),
        );
        let (_trigger, shutdown) = Shutdown::new();
        let conn = ConnInfo {
            peer,
            local,
            worker: 0,
            listener: 0,
        };
        let task = serve_connection(proxy.inner.clone(), stream, conn, shutdown);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "a connection's future takes {size} bytes");
    }
}
