//! What each request leaves behind: its counters (per service and
//! backend, see [`crate::stats`]) and, when enabled, its access log line.
//! [`handle`] wraps the request path of `forward.rs`.

use std::{
    sync::Arc,
    time::{Instant, SystemTime},
};

use http::{Method, Request, Response, Version};
use hyper::body::Incoming;

use super::{ConnCtx, Inner, ProxyBody, forward, headers::request_host};
use crate::{
    access_log,
    balance::{Backend, Service},
    stats::Decision,
};

/// What became of one request, for the counters and the access log.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) service: Option<Arc<Service>>,
    pub(super) backend: Option<Arc<Backend>>,
    pub(super) decision: Option<Decision>,
}

/// Serves one request, counts it and writes its access log line.
pub(super) async fn handle(inner: &Inner, ctx: &ConnCtx, req: Request<Incoming>) -> Response<ProxyBody> {
    let start = Instant::now();
    let line = inner.access_log.as_ref().map(|_| RequestLine::of(&req));
    let mut out = Outcome::default();
    let resp = forward::forward(inner, ctx, req, &mut out).await;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    match (&out.service, &out.backend) {
        (Some(svc), backend) => {
            svc.stats.latency.observe(elapsed);
            if let Some(d) = out.decision {
                svc.stats.decided(d);
            }
            match backend {
                Some(b) => b.state.stats.responses.record(status),
                None => svc.stats.local_responses.record(status),
            }
        }
        (None, _) => inner.balancer.unrouted.record(status),
    }
    if let (Some(log), Some(line)) = (&inner.access_log, line) {
        log.write(&access_log::Entry {
            time: access_log::rfc3339(SystemTime::now() - elapsed),
            client: ctx.peer,
            method: line.method.as_str(),
            host: line.host.as_deref(),
            path: &line.path,
            protocol: line.protocol,
            service: out.service.as_ref().map(|s| s.config.name.as_str()),
            backend: out.backend.as_ref().map(|b| b.name.as_str()),
            decision: out.decision,
            status,
            bytes: http_body::Body::size_hint(resp.body()).exact(),
            duration_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        });
    }
    resp
}

/// The parts of a request head the access log needs, taken before the
/// request is consumed.
struct RequestLine {
    method: Method,
    host: Option<String>,
    path: String,
    protocol: &'static str,
}

impl RequestLine {
    fn of(req: &Request<Incoming>) -> Self {
        Self {
            method: req.method().clone(),
            host: request_host(req),
            path: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().path().to_owned(), ToString::to_string),
            protocol: match req.version() {
                Version::HTTP_09 => "HTTP/0.9",
                Version::HTTP_10 => "HTTP/1.0",
                Version::HTTP_2 => "HTTP/2.0",
                Version::HTTP_3 => "HTTP/3.0",
                _ => "HTTP/1.1",
            },
        }
    }
}
