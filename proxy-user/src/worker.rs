//! Workers: one thread, one single-threaded tokio runtime and one listening
//! socket per published address each.
//!
//! A worker accepts on its own sockets (filled by the kernel through eBPF
//! steering or SO_REUSEPORT), hands every connection to the
//! [`ConnectionHandler`], and on shutdown stops accepting, lets the handler
//! finish in-flight requests and waits for its connections within the grace
//! period. Futures run with `spawn_local`, so a handler may keep per-worker
//! state (pools, caches) in thread-locals without locks.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use tokio::{net::TcpStream, sync::watch, task::LocalSet};
use tracing::{debug, info, warn};

/// A future run on a worker's own thread.
pub type LocalFuture = Pin<Box<dyn Future<Output = ()> + 'static>>;

/// Where an accepted connection came from and went to.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the client connected to (the published address; with
    /// eBPF steering this is the published port, not the worker's own).
    pub local: SocketAddr,
    /// Index of the worker that accepted it.
    pub worker: usize,
    /// Index of the published address it came through, in `--listen`
    /// order.
    pub listener: usize,
}

/// What a worker does with each accepted client connection.
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Serves one client connection until it ends. When `shutdown` fires the
    /// handler should finish the request in flight and close.
    fn handle(&self, stream: TcpStream, conn: ConnInfo, shutdown: Shutdown) -> LocalFuture;
}

/// A shutdown signal shared by a worker's connections.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal that never fires, and its trigger.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Whether shutdown has begun.
    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown has begun (or its trigger is gone).
    pub async fn wait(&mut self) {
        // An error means the sender is gone: treat that as shutdown too.
        let _closed = self.0.wait_for(|s| *s).await;
    }
}

/// Counters of one worker, shared with the admin API.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

/// What a worker needs to run.
pub struct WorkerSpec {
    /// Index of the worker, `0..workers`.
    pub index: usize,
    /// Its listening sockets, one per published address, already listening.
    pub listeners: Vec<std::net::TcpListener>,
    /// The handler for accepted connections.
    pub handler: Arc<dyn ConnectionHandler>,
    /// Shared counters.
    pub stats: Arc<WorkerStats>,
    /// At most this many open connections; the rest wait in the backlog.
    pub max_connections: usize,
}

/// How a worker stops.
#[derive(Debug, Clone, Copy)]
pub struct StopPolicy {
    /// How long to keep accepting after shutdown began: connections the
    /// kernel queued on this worker's sockets just before steering moved to
    /// a successor are still served instead of reset.
    pub linger: Duration,
    /// How long open connections may take to finish.
    pub grace: Duration,
}

/// A running worker thread.
pub struct Worker {
    thread: thread::JoinHandle<()>,
}

impl Worker {
    /// Starts the worker's thread. It runs until `stop` fires, then drains
    /// according to `policy`.
    ///
    /// # Errors
    /// When the thread or its runtime cannot be created.
    pub fn spawn(spec: WorkerSpec, stop: Shutdown, policy: StopPolicy) -> std::io::Result<Self> {
        let name = format!("worker-{}", spec.index);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = thread::Builder::new().name(name).spawn(move || {
            let local = LocalSet::new();
            local.block_on(&rt, run(spec, stop, policy));
        })?;
        Ok(Self { thread })
    }

    /// Waits for the worker to finish draining.
    pub fn join(self) {
        if self.thread.join().is_err() {
            warn!("a worker thread panicked");
        }
    }
}

async fn run(spec: WorkerSpec, mut stop: Shutdown, policy: StopPolicy) {
    let (conn_tx, conn_shutdown) = Shutdown::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(spec.max_connections.max(1)));
    let mut accept_tasks = Vec::new();
    for (index, std_listener) in spec.listeners.into_iter().enumerate() {
        let listener = match std_listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(std_listener))
        {
            Ok(l) => l,
            Err(err) => {
                warn!(worker = spec.index, error = %err, "cannot use a listening socket");
                continue;
            }
        };
        let ctx = AcceptCtx {
            worker: spec.index,
            listener: index,
            handler: spec.handler.clone(),
            stats: spec.stats.clone(),
            limit: limit.clone(),
            conn_shutdown: conn_shutdown.clone(),
        };
        let (stop_accept_tx, stop_accept) = Shutdown::new();
        let task = tokio::task::spawn_local(accept_loop(listener, ctx, stop_accept));
        accept_tasks.push((stop_accept_tx, task));
    }

    stop.wait().await;
    debug!(worker = spec.index, linger = ?policy.linger, "stopping: draining the accept queue");
    tokio::time::sleep(policy.linger).await;
    for (tx, task) in accept_tasks {
        let _ = tx.send(true);
        if let Err(err) = task.await {
            warn!(worker = spec.index, error = %err, "accept loop ended abnormally");
        }
    }
    // Listening sockets are closed now; ask connections to finish.
    let _ = conn_tx.send(true);
    let deadline = Instant::now() + policy.grace;
    let all = u32::try_from(spec.max_connections.max(1)).unwrap_or(u32::MAX);
    match tokio::time::timeout_at(deadline.into(), limit.acquire_many(all)).await {
        Ok(_) => debug!(worker = spec.index, "all connections finished"),
        Err(_) => {
            let open = spec.stats.open.load(Ordering::Relaxed);
            info!(
                worker = spec.index,
                open, "grace period over; closing remaining connections"
            );
        }
    }
}

struct AcceptCtx {
    worker: usize,
    listener: usize,
    handler: Arc<dyn ConnectionHandler>,
    stats: Arc<WorkerStats>,
    limit: Arc<tokio::sync::Semaphore>,
    conn_shutdown: Shutdown,
}

async fn accept_loop(listener: tokio::net::TcpListener, ctx: AcceptCtx, mut stop: Shutdown) {
    loop {
        // Wait for a connection slot first: over the cap, connections stay
        // in the kernel's backlog instead of being accepted and starved.
        let permit = tokio::select! {
            biased;
            () = stop.wait() => return,
            p = ctx.limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let accepted = tokio::select! {
            biased;
            () = stop.wait() => {
                // Take what is already queued, so that nothing the kernel
                // handed this worker is reset when the socket closes.
                drain_backlog(&listener, &ctx);
                return;
            }
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => serve(stream, peer, &ctx, Some(permit)),
            Err(err) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn!(worker = ctx.worker, error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn drain_backlog(listener: &tokio::net::TcpListener, ctx: &AcceptCtx) {
    loop {
        let permit = ctx.limit.clone().try_acquire_owned().ok();
        match std_accept(listener) {
            Some((stream, peer)) => serve(stream, peer, ctx, permit),
            None => return,
        }
    }
}

fn std_accept(listener: &tokio::net::TcpListener) -> Option<(TcpStream, SocketAddr)> {
    let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
    match listener.poll_accept(cx) {
        std::task::Poll::Ready(Ok(pair)) => Some(pair),
        _ => None,
    }
}

fn serve(stream: TcpStream, peer: SocketAddr, ctx: &AcceptCtx, permit: Option<tokio::sync::OwnedSemaphorePermit>) {
    let local = stream.local_addr().unwrap_or(peer);
    if let Err(err) = stream.set_nodelay(true) {
        debug!(error = %err, "TCP_NODELAY");
    }
    ctx.stats.accepted.fetch_add(1, Ordering::Relaxed);
    ctx.stats.open.fetch_add(1, Ordering::Relaxed);
    let info = ConnInfo {
        peer,
        local,
        worker: ctx.worker,
        listener: ctx.listener,
    };
    let fut = ctx.handler.handle(stream, info, ctx.conn_shutdown.clone());
    let stats = ctx.stats.clone();
    tokio::task::spawn_local(async move {
        fut.await;
        stats.open.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
    });
}
