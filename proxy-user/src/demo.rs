//! A built-in whoami backend (like jwilder/whoami) and the helpers of
//! `swarm-sticky demo`: it answers `I'm <name>` plus the request line and
//! headers, reports the size and SHA-256 of a request body (streamed, never
//! buffered), and echoes WebSocket messages on `/ws`.
//!
//! For health-check tests it has a switch: `/healthz` answers 200 `ok` or
//! 503 `unhealthy`; `/healthz/fail` and `/healthz/recover` flip it (a
//! Docker HEALTHCHECK runs `swarm-sticky probe http://127.0.0.1:8000/healthz`,
//! and a test flips the switch with `docker exec … probe …/healthz/fail`).

use std::{
    convert::Infallible,
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{handshake::derive_accept_key, protocol::Role},
};

use crate::{
    services::{CLI_SERVICE, ServicesConfig},
    tls::CertFiles,
};

/// Serves whoami on `listener` until the task is dropped.
pub async fn serve_whoami(listener: TcpListener, name: String) {
    let name: Arc<str> = name.into();
    let healthy = Arc::new(AtomicBool::new(true));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(error = %err, "whoami accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (name, healthy) = (name.clone(), healthy.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let (name, healthy) = (name.clone(), healthy.clone());
                async move {
                    Ok::<_, Infallible>(match health(&healthy, req.uri().path()) {
                        Some(resp) => resp,
                        None => whoami(&name, peer, req).await,
                    })
                }
            });
            if let Err(err) = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "whoami connection");
            }
        });
    }
}

/// The health switch: `/healthz`, `/healthz/fail`, `/healthz/recover`.
fn health(healthy: &AtomicBool, path: &str) -> Option<Response<Full<Bytes>>> {
    let (status, text) = match path {
        "/healthz" if healthy.load(Ordering::Relaxed) => (StatusCode::OK, "ok\n"),
        "/healthz" => (StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n"),
        "/healthz/fail" => {
            healthy.store(false, Ordering::Relaxed);
            tracing::info!("health switch: unhealthy");
            (StatusCode::OK, "now unhealthy\n")
        }
        "/healthz/recover" => {
            healthy.store(true, Ordering::Relaxed);
            tracing::info!("health switch: healthy");
            (StatusCode::OK, "now healthy\n")
        }
        _ => return None,
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    Some(resp)
}

async fn whoami(name: &str, peer: SocketAddr, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() == "/ws"
        && let Some(resp) = websocket(&mut req)
    {
        return resp;
    }
    let mut text = format!("I'm {name}\n");
    let _ = writeln!(text, "RemoteAddr: {peer}");
    let _ = writeln!(text, "{} {} {:?}", req.method(), req.uri(), req.version());
    for (k, v) in req.headers() {
        let _ = writeln!(text, "{}: {}", k, String::from_utf8_lossy(v.as_bytes()));
    }
    let mut body = req.into_body();
    let (mut len, mut hash) = (0u64, Sha256::new());
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(data) = f.data_ref() {
                    len += data.len() as u64;
                    hash.update(data);
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "whoami body");
                break;
            }
        }
    }
    if len > 0 {
        let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(text, "body-bytes: {len}\nbody-sha256: {digest}");
    }
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Answers a WebSocket handshake with 101 and echoes messages.
fn websocket(req: &mut Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY)?.as_bytes().to_owned();
    let is_ws = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if !is_ws {
        return None;
    }
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(err) => {
                tracing::debug!(error = %err, "whoami websocket upgrade");
                return;
            }
        };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(&key)) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Some(resp)
}

/// Binds `listen` and serves whoami as `name` (default: the host name):
/// the `swarm-sticky whoami` subcommand.
///
/// # Errors
/// When the address cannot be bound.
pub async fn run_whoami(listen: SocketAddr, name: Option<String>) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let name = name.unwrap_or_else(hostname);
    tracing::info!(addr = %listener.local_addr()?, %name, "whoami listening");
    serve_whoami(listener, name).await;
    Ok(())
}

/// This machine's host name (`localhost` if unknown).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "localhost".to_owned(), |s| s.trim().to_owned())
}

/// Starts `n` whoami backends named `whoami-1`… on 127.0.0.1 ephemeral
/// ports, on the current tokio runtime; returns their names and addresses.
///
/// # Errors
/// When a port cannot be bound.
pub async fn spawn_demo_backends(n: usize) -> std::io::Result<Vec<(String, SocketAddr)>> {
    let mut out = Vec::with_capacity(n);
    for i in 1..=n {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let name = format!("whoami-{i}");
        tokio::spawn(serve_whoami(listener, name.clone()));
        out.push((name, addr));
    }
    Ok(out)
}

/// Starts `n` whoami backends on a thread of their own (they live as long
/// as the process); returns their names and addresses.
///
/// # Errors
/// When the thread, its runtime or a port cannot be had within 10 s.
pub fn start_demo_backends(n: usize) -> std::io::Result<Vec<(String, SocketAddr)>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-backends".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(err) => {
                    let _ = tx.send(Err(err));
                    return;
                }
            };
            rt.block_on(async move {
                let _ = tx.send(spawn_demo_backends(n).await);
                std::future::pending::<()>().await;
            });
        })?;
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .map_err(|_| std::io::Error::other("the demo backends did not start"))?
}

/// The demo's single service (what `--backend` would build) over `backends`.
pub fn demo_services(backends: &[(String, SocketAddr)]) -> ServicesConfig {
    ServicesConfig::single(CLI_SERVICE, backends)
}

/// A self-signed certificate for `localhost` (and 127.0.0.1, ::1) in a
/// new private directory under the system's temporary one, for the demo's
/// HTTPS listener; clients trust it with `curl --cacert <chain>`.
///
/// # Errors
/// When the directory or the files cannot be written.
pub fn localhost_certificate() -> std::io::Result<CertFiles> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = std::env::temp_dir().join(format!("swarm-sticky-demo-{}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let cert = rcgen::generate_simple_self_signed(names).map_err(std::io::Error::other)?;
    let files = CertFiles {
        chain: dir.join("localhost.pem"),
        key: dir.join("localhost.key"),
    };
    std::fs::write(&files.chain, cert.cert.pem())?;
    std::fs::write(&files.key, cert.signing_key.serialize_pem())?;
    Ok(files)
}

/// What the demo prints: the backends, the curl lines to try and where
/// to watch (the admin listener on `admin`); with `https`, the HTTPS
/// listener and the certificate to trust.
pub fn demo_instructions(
    listen: SocketAddr,
    https: Option<(SocketAddr, &CertFiles)>,
    admin: SocketAddr,
    services: &ServicesConfig,
    backends: &[(String, SocketAddr)],
) -> String {
    let cookie = services.services.first().map_or("_cookie", |s| s.cookie.name.as_str());
    let mut s = String::from("swarm-sticky demo\n\nbackends:\n");
    for (name, addr) in backends {
        let _ = writeln!(s, "  {name}  http://{addr}");
    }
    let _ = write!(
        s,
        "\nbalancer: http://{listen}\n\n\
         # without a cookie, each new client lands on the next backend:\n\
         curl -s http://{listen}/ | head -1\n\
         curl -s http://{listen}/ | head -1\n\n\
         # keep the sticky cookie ({cookie}) and you stay on one backend:\n\
         curl -s -c /tmp/sticky.jar -b /tmp/sticky.jar http://{listen}/ | head -1\n\
         curl -s -c /tmp/sticky.jar -b /tmp/sticky.jar http://{listen}/ | head -1\n\n\
         # see the Set-Cookie header:\n\
         curl -si http://{listen}/ | grep -i set-cookie\n\n"
    );
    if let Some((addr, cert)) = https {
        let port = addr.port();
        let chain = cert.chain.display();
        let _ = write!(
            s,
            "# the same over HTTPS (HTTP/2 by ALPN; the cookie is Secure):\n\
             curl -si --cacert {chain} https://localhost:{port}/ | grep -iE '^HTTP|set-cookie'\n\n"
        );
    }
    let _ = write!(
        s,
        "# watch it: dashboard, JSON status and Prometheus metrics\n\
         #   http://{admin}/   http://{admin}/api/status   http://{admin}/metrics\n"
    );
    s
}
