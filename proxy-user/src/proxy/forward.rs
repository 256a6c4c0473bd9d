//! The request path: refuse what cannot be served, route, choose the
//! backend (`sticky.rs`), rewrite the request (`headers.rs`), send it with
//! failover and deadlines, and rewrite the response. Nothing here panics;
//! every failure becomes a short plain-text response: 400 malformed, 405
//! CONNECT, 408 a stalled request body, 502 no backend reachable, 503 no
//! service or backend, 504 no answer in time.

use std::sync::{Arc, atomic::Ordering};

use bytes::Bytes;
use http::{
    HeaderValue, Method, Request, Response, StatusCode, Version,
    header::{CONNECTION, CONTENT_TYPE, HOST, SET_COOKIE},
    request::Parts,
};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::{
    body::Incoming,
    client::conn::{TrySendError, http1::SendRequest},
};

use super::{
    ConnCtx, Inner, ProxyBody, authority,
    body::{Deadlined, Upload},
    headers::{X_FORWARDED_PROTO, clone_parts, is_allowed_upgrade, prepare_request, strip_hop_by_hop, strip_prefix},
    observe::Outcome,
    pool,
    sticky::{self, Choice},
};
use crate::{
    balance::{Backend, Service},
    services::Limits,
    stats::Decision,
};

/// Upstream attempts per request (connect failures and stale connections).
const MAX_ATTEMPTS: usize = 4;

/// A short plain-text response.
pub(super) fn plain(status: StatusCode, msg: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(msg.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// A refusal that also closes an HTTP/1 connection: what follows a
/// malformed request, or an unread body, on it cannot be trusted.
fn closing(version: Version, status: StatusCode, msg: &'static str) -> Response<ProxyBody> {
    let mut r = plain(status, msg);
    if version < Version::HTTP_2 {
        r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// The deadlines of one request: the table's limits, or the service's own.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    connect: std::time::Duration,
    request_body: std::time::Duration,
    response: std::time::Duration,
}

impl Deadlines {
    fn of(svc: &Service, limits: &Limits) -> Self {
        let own = &svc.config.timeouts;
        Self {
            connect: limits.connect_timeout,
            request_body: own.request_body.unwrap_or(limits.request_body_timeout),
            response: own.response.unwrap_or(limits.response_timeout),
        }
    }
}

/// Routes and forwards one request, noting what it decided in `out`.
pub(super) async fn forward(
    inner: &Inner,
    ctx: &ConnCtx,
    mut req: Request<Incoming>,
    out: &mut Outcome,
) -> Response<ProxyBody> {
    let version = req.version();
    if req.method() == Method::CONNECT {
        return closing(version, StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported\n");
    }
    let authority = match authority::of(&req) {
        Ok(a) => a,
        Err(err) => return closing(version, StatusCode::BAD_REQUEST, err.message()),
    };
    let table = inner.balancer.table();
    let host = authority.as_ref().map(|a| a.host.as_str());
    let Some(route) = table.route(host, req.uri().path()) else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "no service for this request\n");
    };
    let svc = route.service.clone();
    let strip = svc.config.rule.strip_prefix.then(|| route.prefix.to_owned());
    out.service = Some(svc.clone());
    if svc.backends.is_empty() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "no backend configured\n");
    }
    let trusted = table.is_trusted(ctx.peer.ip());
    let deadlines = Deadlines::of(&svc, &table.limits);
    let max_idle = table.limits.pool_idle_per_backend;
    drop(table);
    let secure = trusted
        && req
            .headers()
            .get(&X_FORWARDED_PROTO)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));

    let Some(choice) = sticky::choose(inner, ctx, &svc, req.headers(), out) else {
        return plain(StatusCode::BAD_GATEWAY, "no backend available\n");
    };
    let upgrade = is_allowed_upgrade(&req, &svc.config.upgrades).then(|| hyper::upgrade::on(&mut req));
    prepare_request(
        &mut req,
        &svc.config.cookie,
        &ctx.peer_headers,
        trusted,
        authority.as_ref(),
        upgrade.is_some(),
    );
    if let Some(prefix) = &strip {
        strip_prefix(&mut req, prefix);
    }
    let exchange = match send_with_failover(inner, ctx, &svc, choice, req, upgrade.is_some(), deadlines, out).await {
        Ok(e) => e,
        Err(refusal) => return refusal,
    };
    let backend = &exchange.choice.backend;
    tracing::debug!(
        service = %svc.config.name,
        backend = %backend.name,
        status = exchange.resp.status().as_u16(),
        new_session = exchange.choice.set_cookie,
        "proxied"
    );
    // A renewed or re-signed cookie is still a hit, not a new session.
    if out.decision == Some(Decision::Hit) {
        backend.state.stats.sticky_hits.fetch_add(1, Ordering::Relaxed);
    } else if exchange.choice.set_cookie {
        backend.state.stats.sessions.fetch_add(1, Ordering::Relaxed);
    }
    out.backend = Some(backend.clone());
    respond(inner, ctx, &svc, exchange, upgrade, secure, max_idle)
}

/// A request that reached a backend's response head.
struct Exchange {
    choice: Choice,
    resp: Response<Incoming>,
    sender: SendRequest<ProxyBody>,
    upload: Option<Arc<Upload>>,
}

/// How one attempt ended.
enum Answer {
    Head(Response<Incoming>),
    Failed(TrySendError<Request<ProxyBody>>),
    TimedOut,
}

/// Sends `req` to the chosen backend, moving to another one where the
/// retry rules allow: a connect failure (nothing was sent) moves any
/// request; a broken pooled connection resends a request it never wrote,
/// or a body-less GET/HEAD/OPTIONS; a response timeout moves a body-less
/// GET/HEAD/OPTIONS. `Err` is the answer to give instead.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the request path's state, passed down once"
)]
async fn send_with_failover(
    inner: &Inner,
    ctx: &ConnCtx,
    svc: &Arc<Service>,
    mut choice: Choice,
    req: Request<Incoming>,
    upgrade: bool,
    deadlines: Deadlines,
    out: &mut Outcome,
) -> Result<Exchange, Response<ProxyBody>> {
    let idempotent = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let (parts, body) = req.into_parts();
    // Keep the head when the request could be sent again after a failure
    // past the point of no return (written, then the connection broke).
    let replay: Option<Parts> = (idempotent && http_body::Body::is_end_stream(&body)).then(|| clone_parts(&parts));
    let (body, upload) = if http_body::Body::is_end_stream(&body) {
        (empty(), None)
    } else {
        let (b, u) = Deadlined::new(body, deadlines.request_body);
        (b.boxed_unsync(), Some(u))
    };
    let mut pending = Some(Request::from_parts(parts, body));
    let mut tried: Vec<String> = Vec::new();
    let mut fresh = upgrade;
    for _ in 0..MAX_ATTEMPTS {
        let Some(mut req) = pending.take() else { break };
        let backend = choice.backend.clone();
        // HTTP/1.1 needs a Host; an HTTP/1.0 client may have sent none.
        if !req.headers().contains_key(HOST)
            && let Ok(v) = HeaderValue::from_str(&backend.addr.to_string())
        {
            req.headers_mut().insert(HOST, v);
        }
        let idle = if fresh {
            None
        } else {
            pool::take_idle(&pool::key_of(&backend))
        };
        let mut sender = match idle {
            Some(s) => s,
            None => match pool::connect(&backend, deadlines.connect).await {
                Ok(s) => {
                    inner.balancer.record_success(&backend);
                    s
                }
                Err(err) => {
                    tracing::warn!(service = %svc.config.name, backend = %backend.name, error = %err, "upstream connect failed");
                    inner.balancer.record_failure(svc, &backend);
                    leave(&backend, out);
                    tried.push(backend.name.clone());
                    // Nothing was sent: any request may go elsewhere.
                    let Some(next) = next_backend(inner, svc, &tried).filter(|_| tried.len() < 2) else {
                        return Err(plain(StatusCode::BAD_GATEWAY, "no backend reachable\n"));
                    };
                    choice = moved(ctx, svc, next);
                    pending = Some(req);
                    continue;
                }
            },
        };
        match exchange(&mut sender, req, upload.as_deref(), deadlines.response).await {
            Answer::Head(resp) => {
                return Ok(Exchange {
                    choice,
                    resp,
                    sender,
                    upload,
                });
            }
            Answer::Failed(mut err) => {
                if upload.as_ref().is_some_and(|u| u.timed_out()) {
                    tracing::debug!(peer = %ctx.peer, "request body too slow: 408");
                    return Err(closing(
                        Version::HTTP_11,
                        StatusCode::REQUEST_TIMEOUT,
                        "request body too slow\n",
                    ));
                }
                tracing::debug!(backend = %backend.name, error = %err.error(), "upstream request failed");
                // Never written (stale pooled connection): send it again.
                pending = match (err.take_message(), &replay) {
                    (Some(req), _) => Some(req),
                    (None, Some(parts)) => Some(Request::from_parts(clone_parts(parts), empty())),
                    (None, None) => return Err(plain(StatusCode::BAD_GATEWAY, "backend connection failed\n")),
                };
                // A fresh connection: if the backend died, connect fails
                // and the request fails over.
                fresh = true;
            }
            Answer::TimedOut => {
                tracing::warn!(service = %svc.config.name, backend = %backend.name, timeout = ?deadlines.response, "backend did not answer in time");
                backend.state.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                leave(&backend, out);
                tried.push(backend.name.clone());
                let (Some(parts), Some(next)) = (&replay, next_backend(inner, svc, &tried)) else {
                    return Err(plain(StatusCode::GATEWAY_TIMEOUT, "backend did not answer in time\n"));
                };
                choice = moved(ctx, svc, next);
                pending = Some(Request::from_parts(clone_parts(parts), empty()));
                fresh = false;
            }
        }
    }
    Err(plain(StatusCode::BAD_GATEWAY, "backend connection failed\n"))
}

/// Sends one request and waits for the response head, for at most
/// `timeout` once the request body (if any) has been sent, as nginx's
/// `proxy_read_timeout` counts.
async fn exchange(
    sender: &mut SendRequest<ProxyBody>,
    req: Request<ProxyBody>,
    upload: Option<&Upload>,
    timeout: std::time::Duration,
) -> Answer {
    let sending = sender.try_send_request(req);
    let deadline = async {
        if let Some(u) = upload {
            u.sent().await;
        }
        tokio::time::sleep(timeout).await;
    };
    tokio::select! {
        biased;
        r = sending => match r {
            Ok(resp) => Answer::Head(resp),
            Err(err) => Answer::Failed(err),
        },
        () = deadline => Answer::TimedOut,
    }
}

/// Counts a request leaving `backend` (a failover when its cookie named it).
fn leave(backend: &Backend, out: &mut Outcome) {
    backend.state.stats.failovers.fetch_add(1, Ordering::Relaxed);
    if matches!(out.decision, Some(Decision::Hit | Decision::Migrated)) {
        out.decision = Some(Decision::Failover);
    }
}

/// A backend of `svc` for a new session, other than those `tried`.
fn next_backend(inner: &Inner, svc: &Service, tried: &[String]) -> Option<Arc<Backend>> {
    let excluded: Vec<&str> = tried.iter().map(String::as_str).collect();
    inner.balancer.pick(svc, &excluded)
}

/// The request moves to `next`, with a cookie naming it.
fn moved(ctx: &ConnCtx, svc: &Service, next: Arc<Backend>) -> Choice {
    ctx.pin(svc, &next, true);
    Choice {
        backend: next,
        set_cookie: true,
    }
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// The client's response: hop-by-hop headers stripped, the cookie set when
/// needed, the upstream connection pooled after the body (or an upgrade's
/// tunnel started).
fn respond(
    inner: &Inner,
    ctx: &ConnCtx,
    svc: &Service,
    exchange: Exchange,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    secure: bool,
    max_idle: usize,
) -> Response<ProxyBody> {
    let Exchange {
        choice,
        mut resp,
        sender,
        upload,
    } = exchange;
    let backend = &choice.backend;
    let asked_upgrade = client_upgrade.is_some();
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // Only in answer to an upgrade we forwarded: anything else would
        // leave the client speaking HTTP to a tunnel nobody reads.
        let Some(client) = client_upgrade else {
            tracing::warn!(service = %svc.config.name, backend = %backend.name, "backend switched protocols without an upgrade request");
            return plain(StatusCode::BAD_GATEWAY, "backend switched protocols unasked\n");
        };
        let upstream = hyper::upgrade::on(&mut resp);
        let t = super::tunnel::Tunnel {
            client_fd: ctx.client.dup(),
            backend: backend.clone(),
            idle_timeout: inner.balancer.table().limits.idle_timeout,
        };
        let task = tokio::task::spawn_local(super::tunnel::run(client, upstream, t));
        ctx.tunnel.set(Some(task));
    } else {
        strip_hop_by_hop(resp.headers_mut());
    }
    // An upgrade request's connection is never reused, whatever the answer.
    let back = (resp.status() != StatusCode::SWITCHING_PROTOCOLS && !asked_upgrade).then(|| pool::Return {
        key: pool::key_of(backend),
        sender,
        max_idle,
        upload,
    });
    if choice.set_cookie
        && let Some(v) = sticky::set_cookie(svc, backend, secure, inner)
    {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp.map(|body| pool::PooledBody::new(body, back).boxed_unsync())
}

#[cfg(test)]
mod tests;
