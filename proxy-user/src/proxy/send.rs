//! Sending a request upstream: a pooled or new connection, the request
//! body's deadline, the response head's deadline, and the retry rules that
//! decide whether a failed attempt may go to another backend or again.

use std::sync::{Arc, atomic::Ordering};

use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header::HOST, request::Parts};
use http_body_util::{BodyExt as _, Empty};
use hyper::{
    body::Incoming,
    client::conn::{TrySendError, http1::SendRequest},
};

use super::{
    ConnCtx, Inner, ProxyBody,
    answer::{closing, plain},
    body::{Deadlined, Upload},
    headers::clone_parts,
    outcome::Outcome,
    pool,
};
use crate::{
    routing::{Backend, Service},
    services::Limits,
    sticky::{self, Choice, Decision},
};

/// Upstream attempts per request (connect failures and stale connections).
const MAX_ATTEMPTS: usize = 4;

/// The deadlines of one request: the table's limits, or the service's own.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    connect: std::time::Duration,
    request_body: std::time::Duration,
    response: std::time::Duration,
}

impl Deadlines {
    pub(super) fn of(svc: &Service, limits: &Limits) -> Self {
        let own = &svc.config.timeouts;
        Self {
            connect: limits.connect_timeout,
            request_body: own.request_body.unwrap_or(limits.request_body_timeout),
            response: own.response.unwrap_or(limits.response_timeout),
        }
    }
}

/// A request that reached a backend's response head.
pub(super) struct Exchange {
    pub(super) choice: Choice,
    pub(super) resp: Response<Incoming>,
    pub(super) sender: SendRequest<ProxyBody>,
    pub(super) upload: Option<Arc<Upload>>,
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
pub(super) async fn send_with_failover(
    inner: &Inner,
    ctx: &ConnCtx,
    svc: &Arc<Service>,
    mut choice: Choice,
    req: Request<Incoming>,
    upgrade: bool,
    deadlines: Deadlines,
    out: &mut Outcome,
) -> Result<Exchange, Response<ProxyBody>> {
    let (req, replay, upload) = upstream_request(req, deadlines.request_body);
    let mut pending = Some(req);
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
        let Some(mut sender) = upstream(inner, svc, &backend, fresh, deadlines.connect).await else {
            let keeps_slot = keeps_slot(svc, &backend, out);
            leave(&backend, out);
            tried.push(backend.name.clone());
            // Nothing was sent: any request may go elsewhere. A client that
            // keeps its slot meets the stand-in its next requests get.
            let stand_in = keeps_slot
                .then(|| sticky::stand_in(&inner.balancer, svc, &backend.name))
                .flatten();
            let Some(next) = stand_in
                .or_else(|| next_backend(inner, svc, &tried))
                .filter(|_| tried.len() < 2)
            else {
                return Err(plain(StatusCode::BAD_GATEWAY, "no backend reachable\n"));
            };
            choice = if keeps_slot {
                out.decision = Some(Decision::StandIn);
                Choice {
                    backend: next,
                    set_cookie: false,
                }
            } else {
                moved(ctx, svc, next)
            };
            pending = Some(req);
            continue;
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

/// The request as it goes upstream: its body with the request-body
/// deadline (and a record of its trip), and a copy of its head when it may
/// be sent again after a failure past the point of no return (written,
/// then the connection broke): a GET, HEAD or OPTIONS without a body.
fn upstream_request(
    req: Request<Incoming>,
    body_timeout: std::time::Duration,
) -> (Request<ProxyBody>, Option<Parts>, Option<Arc<Upload>>) {
    let idempotent = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let (parts, body) = req.into_parts();
    if http_body::Body::is_end_stream(&body) {
        let replay = idempotent.then(|| clone_parts(&parts));
        return (Request::from_parts(parts, empty()), replay, None);
    }
    let (body, upload) = Deadlined::new(body, body_timeout);
    (Request::from_parts(parts, body.boxed_unsync()), None, Some(upload))
}

/// A connection to `backend`: a pooled one unless `fresh`, else a new one
/// (passive health counts how that went). `None` when it cannot be had.
async fn upstream(
    inner: &Inner,
    svc: &Service,
    backend: &Backend,
    fresh: bool,
    timeout: std::time::Duration,
) -> Option<SendRequest<ProxyBody>> {
    if !fresh && let Some(s) = pool::take_idle(&pool::key_of(backend)) {
        return Some(s);
    }
    match pool::connect(backend, timeout).await {
        Ok(s) => {
            inner.balancer.record_success(backend);
            Some(s)
        }
        Err(err) => {
            tracing::warn!(service = %svc.config.name, backend = %backend.name, error = %err, "upstream connect failed");
            inner.balancer.record_failure(svc, backend);
            if backend.task.is_some() {
                // A discovered task that cannot be reached may be gone.
                crate::discovery::watch::relist_soon();
            }
            None
        }
    }
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

/// Whether a client whose cookie pinned it to `backend`, which refused the
/// connection, keeps its cookie while another backend stands in: with
/// `same-slot`, when Swarm is stopping that task (it drains). Its container
/// has just stopped, the table learns it within a re-list, and the slot's
/// next task is on its way: the client belongs there, not to the stand-in.
fn keeps_slot(svc: &Service, backend: &Backend, out: &Outcome) -> bool {
    svc.config.slot_affinity
        && matches!(out.decision, Some(Decision::Hit))
        && (backend.weight == 0 || Service::is_draining(backend))
}

/// A backend of `svc` for a new session, other than those `tried`.
fn next_backend(inner: &Inner, svc: &Service, tried: &[String]) -> Option<Arc<Backend>> {
    let excluded: Vec<&str> = tried.iter().map(String::as_str).collect();
    inner.balancer.pick(svc, &excluded)
}

/// The request moves to `next`, with a cookie naming it.
fn moved(ctx: &ConnCtx, svc: &Service, next: Arc<Backend>) -> Choice {
    ctx.pins.pin(svc, &next);
    Choice {
        backend: next,
        set_cookie: true,
    }
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}
