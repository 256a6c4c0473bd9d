//! The admin listener: health, readiness and a JSON status of the process
//! (`/api/status`: workers, steering, services; `/api/services`: the
//! routing table with each backend's state; `/api/discovery`: the Docker
//! watcher's state, the table's age and label warnings).
//!
//! Bound to loopback by default (`--admin 127.0.0.1:9090`). Read-only.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, atomic::Ordering},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tracing::{debug, warn};

use crate::{
    balance::{Balancer, ServiceStatus},
    dataplane::Dataplane,
    sources::Sources,
    worker::WorkerStats,
};

/// What the admin API reads.
pub struct AdminState {
    /// The data plane (eBPF maps are read on request).
    pub dataplane: Arc<Mutex<Dataplane>>,
    /// Per-worker counters, by worker index.
    pub workers: Vec<Arc<WorkerStats>>,
    /// Set once every worker runs.
    pub ready: std::sync::atomic::AtomicBool,
    /// The routing table and backend state, when the workers proxy.
    pub balancer: Option<Arc<Balancer>>,
    /// Where services come from (Docker discovery state and warnings).
    pub sources: Option<Arc<Sources>>,
}

#[derive(Serialize)]
struct Warning {
    service: String,
    warning: String,
}

#[derive(Serialize)]
struct DiscoveryView {
    #[serde(flatten)]
    status: crate::discovery::watch::DiscoveryStatus,
    /// Seconds since the table in force was last confirmed by the engine.
    table_age_secs: Option<f64>,
    warnings: Vec<Warning>,
}

fn discovery(state: &AdminState) -> Option<DiscoveryView> {
    let sources = state.sources.as_ref()?;
    let status = sources
        .discovery
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let warnings = sources
        .warnings
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(service, warning)| Warning {
            service: service.clone(),
            warning: warning.clone(),
        })
        .collect();
    Some(DiscoveryView {
        table_age_secs: status.table_age().map(|d| d.as_secs_f64()),
        status,
        warnings,
    })
}

#[derive(Serialize)]
struct WorkerView {
    index: usize,
    accepted: u64,
    open: u64,
}

#[derive(Serialize)]
struct Status {
    pid: u32,
    version: &'static str,
    listen: Vec<SocketAddr>,
    workers: Vec<WorkerView>,
    dataplane: crate::dataplane::DataplaneStatus,
    services: Vec<ServiceStatus>,
    discovery: Option<DiscoveryView>,
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode status\n"),
    }
}

fn status(state: &AdminState) -> Status {
    let (listen, dataplane) = match state.dataplane.lock() {
        Ok(dp) => (dp.listen.clone(), dp.status()),
        Err(poisoned) => {
            let dp = poisoned.into_inner();
            (dp.listen.clone(), dp.status())
        }
    };
    Status {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION"),
        listen,
        workers: state
            .workers
            .iter()
            .enumerate()
            .map(|(index, w)| WorkerView {
                index,
                accepted: w.accepted.load(Ordering::Relaxed),
                open: w.open.load(Ordering::Relaxed),
            })
            .collect(),
        dataplane,
        services: state.balancer.as_ref().map(|b| b.status()).unwrap_or_default(),
        discovery: discovery(state),
    }
}

fn route(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "read-only endpoint\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        "/api/status" => json(&status(state)),
        "/api/discovery" => json(&discovery(state)),
        "/api/services" => json(&state.balancer.as_ref().map(|b| b.status()).unwrap_or_default()),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Serves the admin API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<AdminState>) {
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
                let resp = route(&state, &req);
                async move { Ok::<_, std::convert::Infallible>(resp) }
            });
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                debug!(%peer, error = %err, "admin connection");
            }
        });
    }
}
