//! Backends for the tests: whoami servers on their own threads (so that
//! `kill` closes every connection at once), a listener that counts
//! connections (to prove an address is never dialled), and a streaming
//! backend whose chunks the test releases one by one.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
};

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::{body::Frame, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};

/// A whoami backend on its own thread and runtime.
pub struct Whoami {
    /// Its name (`I'm <name>`).
    pub name: String,
    /// Its address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Whoami {
    /// Starts a whoami called `name` on 127.0.0.1:0.
    pub fn start(name: &str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Self::start_on(name, listener)
    }

    /// Starts a whoami on an already bound listener.
    pub fn start_on(name: &str, listener: std::net::TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let (tx, rx) = oneshot::channel();
        let owned = name.to_owned();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    () = proxy_user::demo::serve_whoami(listener, owned) => {}
                    _ = rx => {}
                }
            });
            // Dropping the runtime drops every connection task: the
            // backend is gone, as a killed container would be.
        });
        Self {
            name: name.to_owned(),
            addr,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Stops the backend and closes all its connections.
    pub fn kill(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Whoami {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` whoami backends `whoami-1`….
pub fn whoamis(n: usize) -> Vec<Whoami> {
    (1..=n).map(|i| Whoami::start(&format!("whoami-{i}"))).collect()
}

/// (name, address) pairs for a services config.
pub fn pairs(backends: &[Whoami]) -> Vec<(String, SocketAddr)> {
    backends.iter().map(|b| (b.name.clone(), b.addr)).collect()
}

/// A listener that only counts the connections it accepts.
pub struct Tripwire {
    /// Its address.
    pub addr: SocketAddr,
    /// Connections seen.
    pub hits: Arc<AtomicUsize>,
}

impl Tripwire {
    /// Listens on 127.0.0.1:0 on the current runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            while let Ok((_s, _)) = listener.accept().await {
                h.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self { addr, hits }
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A backend answering each request with a body whose chunks the test
/// sends through the returned channel (closing it ends the body).
pub async fn streaming_backend() -> (SocketAddr, mpsc::Receiver<mpsc::Sender<Bytes>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (req_tx, req_rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let req_tx = req_tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    let req_tx = req_tx.clone();
                    async move {
                        let (tx, rx) = mpsc::channel::<Bytes>(1);
                        let _ = req_tx.send(tx).await;
                        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                            rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
                        });
                        Ok::<_, Infallible>(hyper::Response::new(StreamBody::new(stream)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, req_rx)
}
