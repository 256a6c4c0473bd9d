//! HTTPS load for `a.test` while a certificate changes under it: tasks
//! that keep one connection (opened before the change) and tasks that
//! open a new one, a full handshake, per request. Every failure is
//! counted and printed; the tests assert there are none.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;

use super::{proxy::WAIT, tls::connect};

/// A client's half of an HTTP/1.1 connection over TLS.
pub type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// A keep-alive HTTPS connection for `a.test`, trusting `ca`, and the
/// certificate it was served.
///
/// # Errors
/// When the connection or handshake fails.
pub async fn open(addr: SocketAddr, ca: &Path) -> std::io::Result<(Sender, Vec<u8>)> {
    let tls = connect(addr, "a.test", ca, &[b"http/1.1"]).await?;
    let served = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok((send, served.unwrap_or_default()))
}

/// `GET /` for `a.test` on `send`; `Ok` on a 200 read to its end.
///
/// # Errors
/// What went wrong, as text.
pub async fn fetch(send: &mut Sender) -> Result<(), String> {
    let req = hyper::Request::get("/")
        .header("host", "a.test")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    resp.into_body().collect().await.map_err(|e| e.to_string())?;
    if status == 200 {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

/// How a load runs against each address.
pub struct LoadSpec {
    /// Tasks that keep one connection each, opened at the start.
    pub kept: u64,
    /// Tasks that open a new connection per request.
    pub fresh: u64,
    /// The pause after each request of task `i` (kept tasks first).
    pub pause: fn(u64) -> Duration,
    /// The longest the load runs.
    pub limit: Duration,
}

/// A running load; [`HttpsLoad::stop`] ends it.
pub struct HttpsLoad {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Option<Vec<u8>>>>,
}

impl HttpsLoad {
    /// Starts `spec` against every address of `addrs`, trusting `ca`.
    ///
    /// # Panics
    /// When a kept connection cannot be opened at the start.
    pub async fn start(addrs: &[SocketAddr], ca: &Path, spec: &LoadSpec) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let deadline = Instant::now() + spec.limit;
        let mut tasks = Vec::new();
        for &addr in addrs {
            for task in 0..spec.kept + spec.fresh {
                let (stop, ok, failed, ca) = (stop.clone(), ok.clone(), failed.clone(), ca.to_path_buf());
                let mut kept = if task < spec.kept {
                    Some(open(addr, &ca).await.expect("a kept connection"))
                } else {
                    None
                };
                let pause = (spec.pause)(task);
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let result = match kept.as_mut() {
                            Some((send, _)) => fetch(send).await,
                            None => match open(addr, &ca).await {
                                Ok((mut send, _)) => fetch(&mut send).await,
                                Err(e) => Err(e.to_string()),
                            },
                        };
                        match result {
                            Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                eprintln!("request through {addr} (task {task}) failed: {e}");
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                        tokio::time::sleep(pause).await;
                    }
                    kept.map(|(_, served)| served)
                }));
            }
        }
        Self {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    /// Ends the load: (requests that succeeded, that failed, the
    /// certificates the kept connections were served).
    pub async fn stop(self) -> (u64, u64, Vec<Vec<u8>>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut served = Vec::new();
        for t in self.tasks {
            if let Some(s) = t.await.expect("a load task") {
                served.push(s);
            }
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            served,
        )
    }
}
