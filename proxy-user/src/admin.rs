//! The admin listener (`--admin`, default 127.0.0.1:9090): health and
//! readiness, a JSON API, Prometheus metrics, the dashboard, and write
//! actions.
//!
//! | Path | What |
//! |---|---|
//! | `/healthz`, `/readyz` | liveness; readiness (503 while starting or draining) |
//! | `/api/status` | workers, steering and XDP, services and backends with counters, discovery |
//! | `/api/services` | the routing table with each backend's state and counters |
//! | `/api/discovery` | the Docker watcher, the table's age, label warnings |
//! | `/api/rate` | requests per second over the last five minutes |
//! | `/metrics` | Prometheus text format |
//! | `/` | the dashboard (assets embedded in the binary) |
//! | `POST /api/…` | write actions, see `admin/actions.rs` |
//!
//! Health and readiness answer everyone. Other reads answer loopback
//! clients, clients with the bearer token, or everyone with
//! `--admin-public-read`. Writes always need the token. A loopback read
//! without the token must also name a loopback host (`localhost`,
//! `127.0.0.1`, `[::1]`): a web page whose DNS name was rebound to
//! 127.0.0.1 reaches the listener from the user's own browser, but with
//! its own name in `Host`.

mod actions;
mod dashboard;
pub mod listener;
mod rate;
mod views;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock, atomic::Ordering},
    time::Instant,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tracing::{debug, warn};

use self::actions::Credentials;
use crate::{
    balance::Balancer, dataplane::Dataplane, discovery::DiscoveryStatus, error::FieldError, sources::Sources,
    worker::WorkerStats,
};

/// Re-reads the configuration; `Err` says why the new one was refused
/// (the running one stays).
/// It returns the certificate errors of the reload (each certificate that
/// failed keeps its previous one).
pub type ReloadHook = Arc<dyn Fn() -> Result<Vec<String>, FieldError> + Send + Sync>;

/// Who may use the admin API.
#[derive(Clone, Default)]
pub struct AdminAccess {
    /// Bearer token for write actions (and for reads from off-host);
    /// `None` disables write actions.
    pub token: Option<String>,
    /// Read endpoints answer any client, not only loopback.
    pub public_read: bool,
}

impl std::fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccess")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("public_read", &self.public_read)
            .finish()
    }
}

/// Shortest admin token accepted: a guessable token is worse than none.
pub const MIN_ADMIN_TOKEN: usize = 16;

impl AdminAccess {
    /// Reads a token file (whitespace around the token is ignored).
    ///
    /// # Errors
    /// When the file cannot be read or the token is shorter than
    /// [`MIN_ADMIN_TOKEN`] characters or has spaces inside.
    pub fn read_token(path: &std::path::Path) -> Result<String, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let token = text.trim();
        if token.len() < MIN_ADMIN_TOKEN || token.chars().any(char::is_whitespace) {
            return Err(format!(
                "{} must hold one token of at least {MIN_ADMIN_TOKEN} characters without spaces (e.g. `openssl rand -hex 32`)",
                path.display()
            ));
        }
        Ok(token.to_owned())
    }
}

/// What the admin API reads and acts on once the process serves.
pub struct Parts {
    /// The data plane (eBPF maps are read on request).
    pub dataplane: Arc<Mutex<Dataplane>>,
    /// Per-worker counters, by worker index.
    pub workers: Vec<Arc<WorkerStats>>,
    /// The routing table and backend state.
    pub balancer: Arc<Balancer>,
    /// The services' sources (their warnings).
    pub sources: Arc<Sources>,
    /// The Docker watcher's state, with `--docker`.
    pub discovery: Option<Arc<Mutex<DiscoveryStatus>>>,
    /// The reload action.
    pub reload: ReloadHook,
    /// The published listeners.
    pub listeners: Vec<crate::listener::Listener>,
    /// TLS, with an HTTPS listener.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// Automatic certificates, when on.
    pub acme: Option<Arc<crate::acme::Acme>>,
}

/// The admin API's state. It serves from the start of the process:
/// `/healthz` answers at once, `/readyz` says 503 until the workers run
/// and again while the process drains, and the other reads answer 503
/// until the [`Parts`] are there.
pub struct AdminState {
    /// Set once every worker runs, cleared when draining starts.
    pub ready: std::sync::atomic::AtomicBool,
    /// Token and read policy.
    pub access: AdminAccess,
    /// When the process started.
    pub started: Instant,
    parts: OnceLock<Parts>,
    rate: rate::RateHistory,
}

impl AdminState {
    /// The state of a process that is starting.
    pub fn new(access: AdminAccess) -> Self {
        Self {
            ready: false.into(),
            access,
            started: Instant::now(),
            parts: OnceLock::new(),
            rate: rate::RateHistory::default(),
        }
    }

    /// Hands over what the API reads, once the process serves; only the
    /// first call counts.
    pub fn serve(&self, parts: Parts) {
        let _ = self.parts.set(parts);
    }

    /// What the API reads, once the process serves.
    pub fn parts(&self) -> Option<&Parts> {
        self.parts.get()
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = header::HeaderValue::from_str(crate::instance::instance()) {
        h.insert(crate::instance::INSTANCE_HEADER, v);
    }
    r
}

fn text(status: StatusCode, body: &'static str) -> Reply {
    reply(status, "text/plain; charset=utf-8", body)
}

fn json_status<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => reply(status, "application/json", body),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the answer\n"),
    }
}

fn json<T: Serialize>(value: &T) -> Reply {
    json_status(StatusCode::OK, value)
}

fn route(state: &AdminState, peer: SocketAddr, req: &Request<Incoming>) -> Reply {
    let path = req.uri().path();
    let creds = actions::credentials(state, req.headers());
    let reading = req.method() == Method::GET || req.method() == Method::HEAD;
    match path {
        "/healthz" if reading => return text(StatusCode::OK, "ok\n"),
        "/readyz" if reading && state.ready.load(Ordering::Acquire) => return text(StatusCode::OK, "ready\n"),
        "/readyz" if reading => return text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => {}
    }
    if !reading {
        return actions::handle(state, req.method(), path, creds);
    }
    let host = req.headers().get(header::HOST).map(http::HeaderValue::as_bytes);
    if let Err(refusal) = may_read(peer, host, creds, state.access.public_read) {
        return actions::unauthorized(refusal);
    }
    let Some(parts) = state.parts() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "starting\n");
    };
    match path {
        "/api/status" => json(&views::status(state, parts)),
        "/api/services" => json(&crate::status::services(&parts.balancer)),
        "/api/discovery" => json(&views::discovery(parts)),
        "/api/rate" => json(&state.rate.points()),
        "/metrics" => match views::scrape(parts).encode() {
            Ok(body) => reply(StatusCode::OK, crate::metrics::CONTENT_TYPE, body),
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n"),
        },
        _ => match dashboard::asset(path) {
            Some(asset) => {
                let mut r = reply(StatusCode::OK, asset.content_type, Bytes::from_static(asset.body));
                dashboard::secure_headers(r.headers_mut());
                r
            }
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
    }
}

/// Whether a read from `peer` for `host` (the `Host` header) is allowed: a
/// wrong token is always refused; without one, only loopback peers that
/// name a loopback host (or anyone with `--admin-public-read`) may read.
fn may_read(peer: SocketAddr, host: Option<&[u8]>, creds: Credentials, public_read: bool) -> Result<(), &'static str> {
    match creds {
        Credentials::Invalid => Err("wrong token\n"),
        Credentials::None if public_read => Ok(()),
        Credentials::None if !peer.ip().is_loopback() => {
            Err("the admin API answers loopback only; send the bearer token or start with --admin-public-read\n")
        }
        Credentials::None if !host.is_none_or(is_loopback_host) => {
            Err("the admin API answers loopback names only (localhost, 127.0.0.1, [::1]); send the bearer token\n")
        }
        Credentials::None | Credentials::Valid => Ok(()),
    }
}

/// Whether a `Host` value names this machine's loopback: `localhost` (and
/// names under it, RFC 6761), an address in 127.0.0.0/8 or `[::1]`, with
/// any port.
fn is_loopback_host(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(ip, _)| ip)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Samples the request total for the dashboard's chart, once a second.
async fn sample_rate(state: Arc<AdminState>) {
    let mut tick = tokio::time::interval(rate::PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let total = state.parts().map_or(0, |p| views::total_requests(&p.balancer));
        state.rate.record(crate::cookie::unix_now(), total, now - last);
        last = now;
    }
}

/// Serves the admin API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AdminState>) {
    tokio::spawn(sample_rate(state.clone()));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(err) => {
                warn!(error = %err, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let resp = route(&state, peer, &req);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                debug!(%peer, error = %err, "admin connection");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{Credentials, is_loopback_host, may_read};

    #[test]
    fn reads_answer_loopback_the_token_or_everyone_when_public() {
        let local = "127.0.0.1:5000".parse().unwrap();
        let local6 = "[::1]:5000".parse().unwrap();
        let remote = "192.0.2.7:5000".parse().unwrap();
        let lh = Some(&b"localhost:9090"[..]);
        assert!(may_read(local, lh, Credentials::None, false).is_ok());
        assert!(may_read(local6, Some(b"[::1]:9090"), Credentials::None, false).is_ok());
        assert!(may_read(local, None, Credentials::None, false).is_ok(), "HTTP/1.0");
        assert!(may_read(remote, lh, Credentials::None, false).is_err());
        assert!(may_read(remote, lh, Credentials::Valid, false).is_ok());
        assert!(may_read(remote, lh, Credentials::None, true).is_ok());
        assert!(
            may_read(local, lh, Credentials::Invalid, true).is_err(),
            "a wrong token is never accepted"
        );
    }

    /// DNS rebinding: a page of attacker.example whose name now resolves
    /// to 127.0.0.1 reaches the listener from the victim's browser with
    /// its own name in Host.
    #[test]
    fn loopback_reads_must_name_a_loopback_host() {
        let local = "127.0.0.1:5000".parse().unwrap();
        assert!(may_read(local, Some(b"attacker.example:9090"), Credentials::None, false).is_err());
        assert!(may_read(local, Some(b"attacker.example:9090"), Credentials::Valid, false).is_ok());
        for ok in [
            &b"localhost"[..],
            b"LOCALHOST:9090",
            b"localhost.:9090",
            b"app.localhost",
            b"127.0.0.1:9090",
            b"127.1.2.3",
            b"[::1]:9090",
            b"[::1]",
        ] {
            assert!(is_loopback_host(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"localhost.attacker.example"[..],
            b"10.0.0.1:9090",
            b"[::2]:9090",
            b"192.0.2.7",
            b"",
        ] {
            assert!(!is_loopback_host(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
