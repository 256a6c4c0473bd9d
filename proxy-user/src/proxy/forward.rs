//! The request path: route, sticky decision, header rewrite, upstream send
//! with failover, response rewrite. Nothing here panics; every failure
//! becomes a short plain-text response (503 no service or backend, 502
//! none reachable).

use std::{
    cell::RefCell,
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Weak, atomic::Ordering},
};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderValue, Method, Request, Response, StatusCode,
    header::{CONTENT_TYPE, HOST, SET_COOKIE},
    request::Parts,
};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;

use super::{
    ConnCtx, Inner, ProxyBody,
    headers::{X_FORWARDED_PROTO, clone_parts, is_upgrade, prepare_request, request_host, strip_hop_by_hop},
    observe::Outcome,
    pool,
};
use crate::{
    balance::{Backend, Service},
    cookie::{self, Sticky},
    services::CookieConfig,
    stats::{Decision, RejectReason},
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

/// Routes and forwards one request, noting what it decided in `out`.
pub(super) async fn forward(
    inner: &Inner,
    ctx: &ConnCtx,
    mut req: Request<Incoming>,
    out: &mut Outcome,
) -> Response<ProxyBody> {
    let table = inner.balancer.table();
    let host = request_host(&req);
    let Some(svc) = table.route(host.as_deref(), req.uri().path()).cloned() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "no service for this request\n");
    };
    out.service = Some(svc.clone());
    if svc.backends.is_empty() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "no backend configured\n");
    }
    let trusted = table.is_trusted(ctx.peer.ip());
    let limits = table.limits.clone();
    drop(table);
    let secure = trusted
        && req
            .headers()
            .get(&X_FORWARDED_PROTO)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));

    let (sticky, decision, mut need_cookie) = sticky_backend(inner, &svc, req.headers());
    out.decision = Some(decision);
    let mut backend = match sticky
        .or_else(|| ctx.pinned(inner, &svc))
        .or_else(|| inner.balancer.pick(&svc, &[]))
    {
        Some(b) => b,
        None => return plain(StatusCode::BAD_GATEWAY, "no backend available\n"),
    };
    // Pin before sending: the parallel first requests of one connection
    // (HTTP/2 streams of one page) all see the same pick.
    ctx.pin(&svc, &backend, need_cookie);

    let upgrade = is_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    prepare_request(
        &mut req,
        &svc.config.cookie,
        &ctx.peer_headers,
        trusted,
        host.as_deref(),
        upgrade.is_some(),
    );
    let idempotent = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let (parts, body) = req.into_parts();
    // Keep the head when the request could be sent again after a failure
    // past the point of no return (written, then the connection broke).
    let replay: Option<Parts> = (idempotent && http_body::Body::is_end_stream(&body)).then(|| clone_parts(&parts));
    let mut pending = Some(Request::from_parts(parts, body.boxed_unsync()));

    let mut tried: Vec<String> = Vec::new();
    let mut fresh = upgrade.is_some();
    let mut attempt = 0;
    let (resp, sender) = loop {
        attempt += 1;
        let Some(mut req) = pending.take() else {
            return plain(StatusCode::BAD_GATEWAY, "backend connection failed\n");
        };
        // HTTP/1.1 needs a Host; an HTTP/1.0 client may have sent none.
        if !req.headers().contains_key(HOST)
            && let Ok(v) = HeaderValue::from_str(&backend.addr.to_string())
        {
            req.headers_mut().insert(HOST, v);
        }
        let idle = if fresh {
            None
        } else {
            pool::take_idle(&pool::key_of(&backend)).await
        };
        let mut sender = match idle {
            Some(s) => s,
            None => match pool::connect(&backend, limits.connect_timeout).await {
                Ok(s) => {
                    inner.balancer.record_success(&backend);
                    s
                }
                Err(err) => {
                    tracing::warn!(service = %svc.config.name, backend = %backend.name, error = %err, "upstream connect failed");
                    inner.balancer.record_failure(&svc, &backend);
                    backend.state.stats.failovers.fetch_add(1, Ordering::Relaxed);
                    if matches!(out.decision, Some(Decision::Hit | Decision::Migrated)) {
                        out.decision = Some(Decision::Failover);
                    }
                    tried.push(backend.name.clone());
                    let excluded: Vec<&str> = tried.iter().map(String::as_str).collect();
                    // The body was not sent: any request may go elsewhere.
                    match inner.balancer.pick(&svc, &excluded) {
                        Some(next) if attempt < MAX_ATTEMPTS && tried.len() < 2 => {
                            backend = next;
                            need_cookie = true;
                            ctx.pin(&svc, &backend, true);
                            pending = Some(req);
                            continue;
                        }
                        _ => return plain(StatusCode::BAD_GATEWAY, "no backend reachable\n"),
                    }
                }
            },
        };
        match sender.try_send_request(req).await {
            Ok(resp) => break (resp, sender),
            Err(mut err) => {
                tracing::debug!(backend = %backend.name, error = %err.error(), "upstream request failed");
                if attempt >= MAX_ATTEMPTS {
                    return plain(StatusCode::BAD_GATEWAY, "backend connection failed\n");
                }
                // Never written (stale pooled connection): send it again.
                if let Some(req) = err.take_message() {
                    pending = Some(req);
                } else if let Some(parts) = &replay {
                    let empty = Empty::new().map_err(|never| match never {}).boxed_unsync();
                    pending = Some(Request::from_parts(clone_parts(parts), empty));
                } else {
                    return plain(StatusCode::BAD_GATEWAY, "backend connection failed\n");
                }
                // A fresh connection: if the backend died, connect fails
                // and the request fails over.
                fresh = true;
            }
        }
    };
    tracing::debug!(
        service = %svc.config.name,
        backend = %backend.name,
        status = resp.status().as_u16(),
        new_session = need_cookie,
        attempts = attempt,
        "proxied"
    );
    // A renewed or re-signed cookie is still a hit, not a new session.
    if out.decision == Some(Decision::Hit) {
        backend.state.stats.sticky_hits.fetch_add(1, Ordering::Relaxed);
    } else if need_cookie {
        backend.state.stats.sessions.fetch_add(1, Ordering::Relaxed);
    }
    out.backend = Some(backend.clone());
    respond(
        inner,
        ctx,
        &svc,
        &backend,
        resp,
        sender,
        upgrade,
        need_cookie,
        secure,
        limits.pool_idle_per_backend,
    )
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename the arguments"
)]
fn respond(
    inner: &Inner,
    ctx: &ConnCtx,
    svc: &Service,
    backend: &Arc<Backend>,
    mut resp: Response<Incoming>,
    sender: hyper::client::conn::http1::SendRequest<ProxyBody>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    need_cookie: bool,
    secure: bool,
    max_idle: usize,
) -> Response<ProxyBody> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    let back = if switching || client_upgrade.is_some() {
        None
    } else {
        Some((pool::key_of(backend), sender, max_idle))
    };
    if switching {
        if let Some(client) = client_upgrade {
            let upstream = hyper::upgrade::on(&mut resp);
            let t = super::tunnel::Tunnel {
                client_fd: ctx.client.dup(),
                backend: backend.clone(),
                idle_timeout: inner.balancer.table().limits.idle_timeout,
            };
            let task = tokio::task::spawn_local(super::tunnel::run(client, upstream, t));
            ctx.tunnel.set(Some(task));
        }
    } else {
        strip_hop_by_hop(resp.headers_mut());
    }
    if need_cookie {
        let value = set_cookie_cached(svc, backend, secure, inner);
        if let Some(v) = value {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
    resp.map(|body| pool::PooledBody::new(body, back).boxed_unsync())
}

/// The backend a valid cookie names, if it may serve; how that was
/// decided; and whether a new cookie must be sent.
fn sticky_backend(inner: &Inner, svc: &Service, headers: &HeaderMap) -> (Option<Arc<Backend>>, Decision, bool) {
    let cfg = &svc.config.cookie;
    let Some(value) = cookie::find_cookie(headers, &cfg.name) else {
        return (None, Decision::New, true);
    };
    let max_age = cfg.max_age.map(|d| d.as_secs());
    let now = cookie::unix_now();
    let mut buf = [0u8; cookie::MAX_VALUE_LEN];
    match inner
        .keyring
        .load()
        .verify_in(&svc.config.name, value, now, max_age, &mut buf)
    {
        Ok(cookie::Verified {
            identity: backend,
            issued_at,
            current_key,
        }) => match svc.backend(backend) {
            // With a Max-Age, a cookie past half its life is renewed so
            // that an active session does not expire in the browser; one
            // signed by the previous key is re-signed, so that it survives
            // the next key rotation too.
            Some(b) if inner.balancer.is_up(b) => {
                let renew = !current_key || max_age.is_some_and(|max| now.saturating_sub(issued_at) > max / 2);
                (Some(b.clone()), Decision::Hit, renew)
            }
            Some(b) => {
                b.state.stats.failovers.fetch_add(1, Ordering::Relaxed);
                (None, Decision::Failover, true)
            }
            // The task is gone: its slot's replacement takes the session,
            // with a new cookie naming it.
            None if svc.config.slot_affinity => {
                let next = svc
                    .backend_in_slot_of(backend)
                    .filter(|b| inner.balancer.is_available(b))
                    .cloned();
                (next, Decision::Failover, true)
            }
            None => (None, Decision::Failover, true),
        },
        Err(err) => {
            // Traefik v1 migration: the plain backend URL, honoured only
            // when it is the address of a backend in the current table.
            let legacy = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.strip_prefix("http://"))
                .and_then(|v| v.trim_end_matches('/').parse::<SocketAddr>().ok())
                .and_then(|addr| svc.backend_by_addr(addr))
                .filter(|b| inner.balancer.is_up(b))
                .cloned();
            if legacy.is_some() {
                return (legacy, Decision::Migrated, true);
            }
            svc.stats.rejected(RejectReason::from(err));
            (None, Decision::Rejected, true)
        }
    }
}

impl ConnCtx {
    /// This connection's earlier pick for `svc`, if it may take sessions.
    fn pinned(&self, inner: &Inner, svc: &Service) -> Option<Arc<Backend>> {
        let pins = self.pins.borrow();
        let (_, name) = pins.iter().find(|(s, _)| *s == svc.config.name)?;
        svc.backend(name).filter(|b| inner.balancer.is_available(b)).cloned()
    }

    /// Remembers the backend that a new cookie names for cookie-less
    /// requests that follow on this connection.
    fn pin(&self, svc: &Service, backend: &Backend, issued: bool) {
        if !issued {
            return;
        }
        let mut pins = self.pins.borrow_mut();
        match pins.iter_mut().find(|(s, _)| *s == svc.config.name) {
            Some((_, b)) if *b == backend.name => {}
            Some((_, b)) => b.clone_from(&backend.name),
            None => pins.push((svc.config.name.clone(), backend.name.clone())),
        }
    }
}

/// (backend pointer, secure).
type CookieCacheKey = (usize, bool);
/// (second, the backend and the keyring it was built with, the value).
type CookieCacheEntry = (u64, Weak<Backend>, Weak<crate::cookie::Keyring>, HeaderValue);

thread_local! {
    /// Signed Set-Cookie values per (backend, secure), rebuilt each second
    /// and whenever the keyring is replaced (a rotation signs at once).
    static SET_COOKIE_CACHE: RefCell<HashMap<CookieCacheKey, CookieCacheEntry>> = RefCell::new(HashMap::new());
}

fn set_cookie_cached(svc: &Service, backend: &Arc<Backend>, secure: bool, inner: &Inner) -> Option<HeaderValue> {
    let now = cookie::unix_now();
    let key = (Arc::as_ptr(backend) as usize, secure);
    let keyring = inner.keyring.load_full();
    let hit = SET_COOKIE_CACHE.with_borrow(|c| {
        c.get(&key)
            .filter(|(t, w, k, _)| {
                *t == now
                    && w.upgrade().is_some_and(|b| Arc::ptr_eq(&b, backend))
                    && k.upgrade().is_some_and(|k| Arc::ptr_eq(&k, &keyring))
            })
            .map(|(_, _, _, v)| v.clone())
    });
    if hit.is_some() {
        return hit;
    }
    let value = build_set_cookie(&svc.config.cookie, &svc.config.name, backend, secure, now, &keyring)?;
    SET_COOKIE_CACHE.with_borrow_mut(|c| {
        if c.len() > 4096 {
            c.retain(|_, (t, w, _, _)| *t == now && w.strong_count() > 0);
        }
        c.insert(
            key,
            (now, Arc::downgrade(backend), Arc::downgrade(&keyring), value.clone()),
        );
    });
    Some(value)
}

fn build_set_cookie(
    cfg: &CookieConfig,
    service: &str,
    backend: &Backend,
    secure: bool,
    now: u64,
    keyring: &crate::cookie::Keyring,
) -> Option<HeaderValue> {
    match keyring.encode(
        service,
        &Sticky {
            backend: backend.name.clone(),
            issued_at: now,
        },
    ) {
        Ok(v) => cookie::set_cookie_value(cfg, &v, secure),
        Err(err) => {
            tracing::warn!(backend = %backend.name, error = %err, "cannot sign a cookie");
            None
        }
    }
}

#[cfg(test)]
mod tests;
