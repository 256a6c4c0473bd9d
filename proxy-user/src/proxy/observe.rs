//! What each request leaves behind: its counters (per service and
//! backend, see [`crate::stats`]) and, when enabled, its access log line.
//! [`handle`] wraps the request path of `forward.rs`; a request the client
//! gave up on before its answer (connection closed, HTTP/2 stream reset)
//! still gets its line, with status 499, and so does a request refused
//! while its head was parsed ([`refused`]).

use std::{
    net::SocketAddr,
    time::{Instant, SystemTime},
};

use http::{Method, Request, Response, Version};
use hyper::body::Incoming;

use super::{ConnCtx, Inner, ProxyBody, forward, headers::raw_host, outcome::Outcome};
use crate::access_log;

/// Status logged for a request whose client left before the answer
/// (nginx's convention).
pub(super) const CLIENT_CLOSED: u16 = 499;

/// A request being served: counted and logged when it ends, or as 499 when
/// it is dropped before an answer.
struct Served<'a> {
    inner: &'a Inner,
    peer: SocketAddr,
    start: Instant,
    line: Option<RequestLine>,
    out: Outcome,
    answered: bool,
}

impl Served<'_> {
    fn finish(&mut self, status: u16, bytes: Option<u64>) {
        self.answered = true;
        let elapsed = self.start.elapsed();
        let out = &self.out;
        match (&out.service, &out.backend) {
            (Some(svc), backend) => {
                if status != CLIENT_CLOSED {
                    svc.stats.latency.observe(elapsed);
                }
                if let Some(d) = out.decision {
                    svc.stats.decisions.add(d.index());
                }
                match backend {
                    Some(b) => b.state.stats.responses.record(status),
                    None => svc.stats.local_responses.record(status),
                }
            }
            (None, _) => self.inner.balancer.unrouted.record(status),
        }
        if let (Some(log), Some(line)) = (&self.inner.access_log, &self.line) {
            log.write(&access_log::Entry {
                time: access_log::rfc3339(SystemTime::now() - elapsed),
                client: self.peer,
                method: line.method.as_str(),
                host: line.host.as_deref(),
                path: &line.path,
                protocol: line.protocol,
                service: out.service.as_ref().map(|s| s.config.name.as_str()),
                backend: out.backend.as_ref().map(|b| b.name.as_str()),
                decision: out.decision,
                status,
                bytes,
                duration_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            });
        }
    }
}

impl Drop for Served<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.finish(CLIENT_CLOSED, None);
        }
    }
}

/// Serves one request, counts it and writes its access log line.
pub(super) async fn handle(inner: &Inner, ctx: &ConnCtx, req: Request<Incoming>) -> Response<ProxyBody> {
    let mut served = Served {
        inner,
        peer: ctx.peer,
        start: Instant::now(),
        line: inner.access_log.as_ref().map(|_| RequestLine::of(&req)),
        out: Outcome::default(),
        answered: false,
    };
    let resp = forward::forward(inner, ctx, req, &mut served.out).await;
    served.finish(resp.status().as_u16(), http_body::Body::size_hint(resp.body()).exact());
    resp
}

/// Counts and logs a request that hyper or the head timeout refused before
/// it became a request (`status` is what the client was answered).
pub(super) fn refused(inner: &Inner, peer: SocketAddr, status: u16) {
    inner.balancer.unrouted.record(status);
    if let Some(log) = &inner.access_log {
        log.write(&access_log::Entry {
            time: access_log::rfc3339(SystemTime::now()),
            client: peer,
            method: "-",
            host: None,
            path: "-",
            protocol: "-",
            service: None,
            backend: None,
            decision: None,
            status,
            bytes: None,
            duration_ms: 0.0,
        });
    }
}

/// The status hyper answered a request head it could not parse with, if it
/// answered one (see hyper's `Server::on_error`).
pub(super) fn parse_rejection(err: &hyper::Error) -> Option<u16> {
    if !err.is_parse() || err.is_parse_version_h2() || err.is_parse_status() {
        return None;
    }
    if err.is_parse_too_large() {
        // Too large covers the head (431) and the URI (414); hyper has no
        // predicate to tell them apart, only its message.
        return Some(if err.to_string().starts_with("URI") { 414 } else { 431 });
    }
    Some(400)
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
            host: raw_host(req),
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
