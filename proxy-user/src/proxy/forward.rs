//! The request path: refuse what cannot be served, route, choose the
//! backend (`sticky.rs`), rewrite the request (`headers.rs`), send it with
//! failover and deadlines, and rewrite the response. Nothing here panics;
//! every failure becomes a short plain-text response: 400 malformed, 405
//! CONNECT, 408 a stalled request body, 502 no backend reachable, 503 no
//! service or backend, 504 no answer in time. A service that asks for it
//! redirects plain HTTP to HTTPS (308) and gets HSTS over TLS
//! (`redirect.rs`).

use std::sync::atomic::Ordering;

use http::{Method, Request, Response, StatusCode, header::SET_COOKIE};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::{
    ConnCtx, Inner, ProxyBody,
    answer::{closing, plain, text},
    authority,
    headers::{X_FORWARDED_PROTO, is_allowed_upgrade, prepare_request, strip_hop_by_hop, strip_prefix},
    outcome::Outcome,
    pool, redirect,
    send::{self, Exchange},
};
use crate::{
    listener::Scheme,
    routing::Service,
    sticky::{self, Decision},
};

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
    if let Some(answer) = acme_answer(inner, req.uri().path()) {
        return answer;
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
    let trusted = table.is_trusted(ctx.peer.ip());
    // Over TLS, or over TLS to a trusted proxy in front that says so.
    let secure = ctx.scheme == Scheme::Https
        || trusted
            && req
                .headers()
                .get(&X_FORWARDED_PROTO)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    if !secure && redirect::applies(&svc, req.uri().path()) {
        let target = req.uri().path_and_query().map_or("/", http::uri::PathAndQuery::as_str);
        return redirect::to_https(&svc, authority.as_ref(), target, inner.edge.https_port())
            .unwrap_or_else(|| closing(version, StatusCode::BAD_REQUEST, "no host to redirect to over HTTPS\n"));
    }
    if svc.backends.is_empty() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "no backend configured\n");
    }
    let deadlines = send::Deadlines::of(&svc, &table.limits);
    let max_idle = table.limits.pool_idle_per_backend;
    drop(table);

    let (decision, choice) = sticky::choose(&inner.balancer, &inner.keyring.load(), &ctx.pins, &svc, req.headers());
    out.decision = Some(decision);
    let Some(choice) = choice else {
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
    let exchange =
        match send::send_with_failover(inner, ctx, &svc, choice, req, upgrade.is_some(), deadlines, out).await {
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

/// The answer to an ACME HTTP-01 validation request for a challenge
/// published now (by this instance's orders or, with `--docker`, another
/// manager's); other requests under the challenge path go to the
/// services, which may run ACME themselves.
fn acme_answer(inner: &Inner, path: &str) -> Option<Response<ProxyBody>> {
    let book = inner.edge.tls.as_ref()?.challenges()?;
    if !path.starts_with(crate::tls::HTTP_CHALLENGE_PATH) {
        return None;
    }
    let key_authorization = book.http_answer(path)?;
    tracing::info!(path, "ACME HTTP-01 challenge answered");
    Some(text(StatusCode::OK, key_authorization))
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
        && let Some(v) = sticky::set_cookie(svc, backend, secure, &inner.keyring.load_full())
    {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    if secure {
        redirect::add_hsts(svc, &mut resp);
    }
    resp.map(|body| pool::PooledBody::new(body, back).boxed_unsync())
}

#[cfg(test)]
mod tests;
