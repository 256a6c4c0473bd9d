//! Stickiness on the request path: which backend a request goes to (a
//! valid cookie's, else the connection's earlier pick, else a new one by
//! SWRR), the connection's pins, the Traefik v1 cookie fallback, and the
//! signed Set-Cookie value (cached per backend and second).

use std::{
    cell::RefCell,
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Weak, atomic::Ordering},
};

use http::{HeaderMap, HeaderValue};

use super::{ConnCtx, Inner, observe::Outcome};
use crate::{
    balance::{Backend, Service},
    cookie::{self, Keyring, Sticky},
    services::CookieConfig,
    stats::{Decision, RejectReason},
};

/// What a request's cookie says about its backend.
#[derive(Debug)]
pub(super) struct Affinity {
    /// The backend a valid cookie names, if it may serve.
    pub(super) backend: Option<Arc<Backend>>,
    /// How that was decided.
    pub(super) decision: Decision,
    /// Whether the response must carry a new cookie.
    pub(super) set_cookie: bool,
}

impl Affinity {
    fn new_session(decision: Decision) -> Self {
        Self {
            backend: None,
            decision,
            set_cookie: true,
        }
    }
}

/// The backend chosen for a request.
pub(super) struct Choice {
    /// Where it goes.
    pub(super) backend: Arc<Backend>,
    /// Whether the response carries a cookie naming it.
    pub(super) set_cookie: bool,
}

/// Chooses the backend of a request to `svc`: the one its cookie names,
/// else this connection's earlier pick, else a new one. `None` when no
/// backend may take it.
pub(super) fn choose(
    inner: &Inner,
    ctx: &ConnCtx,
    svc: &Service,
    headers: &HeaderMap,
    out: &mut Outcome,
) -> Option<Choice> {
    let affinity = affinity(inner, svc, headers);
    out.decision = Some(affinity.decision);
    let backend = affinity
        .backend
        .or_else(|| ctx.pinned(inner, svc))
        .or_else(|| inner.balancer.pick(svc, &[]))?;
    // Pin before sending: the parallel first requests of one connection
    // (HTTP/2 streams of one page) all see the same pick.
    ctx.pin(svc, &backend, affinity.set_cookie);
    Some(Choice {
        backend,
        set_cookie: affinity.set_cookie,
    })
}

/// What the cookie of `svc` in `headers` says.
pub(super) fn affinity(inner: &Inner, svc: &Service, headers: &HeaderMap) -> Affinity {
    let cfg = &svc.config.cookie;
    let Some(value) = cookie::find_cookie(headers, &cfg.name) else {
        return Affinity::new_session(Decision::New);
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
            Some(b) if inner.balancer.is_up(b) => Affinity {
                backend: Some(b.clone()),
                decision: Decision::Hit,
                set_cookie: !current_key || max_age.is_some_and(|max| now.saturating_sub(issued_at) > max / 2),
            },
            Some(b) => {
                b.state.stats.failovers.fetch_add(1, Ordering::Relaxed);
                Affinity::new_session(Decision::Failover)
            }
            // The task is gone: its slot's replacement takes the session,
            // with a new cookie naming it.
            None if svc.config.slot_affinity => Affinity {
                backend: svc
                    .backend_in_slot_of(backend)
                    .filter(|b| inner.balancer.is_available(b))
                    .cloned(),
                decision: Decision::Failover,
                set_cookie: true,
            },
            None => Affinity::new_session(Decision::Failover),
        },
        Err(err) => {
            if let Some(legacy) = traefik_v1_backend(inner, svc, value) {
                return Affinity {
                    backend: Some(legacy),
                    decision: Decision::Migrated,
                    set_cookie: true,
                };
            }
            svc.stats.rejected(RejectReason::from(err));
            Affinity::new_session(Decision::Rejected)
        }
    }
}

/// Traefik v1 migration: its cookie is the plain backend URL, honoured
/// only when it is the address of a backend in the current table.
fn traefik_v1_backend(inner: &Inner, svc: &Service, value: &[u8]) -> Option<Arc<Backend>> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.strip_prefix("http://"))
        .and_then(|v| v.trim_end_matches('/').parse::<SocketAddr>().ok())
        .and_then(|addr| svc.backend_by_addr(addr))
        .filter(|b| inner.balancer.is_up(b))
        .cloned()
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
    pub(super) fn pin(&self, svc: &Service, backend: &Backend, issued: bool) {
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
type CookieCacheEntry = (u64, Weak<Backend>, Weak<Keyring>, HeaderValue);

thread_local! {
    /// Signed Set-Cookie values per (backend, secure), rebuilt each second
    /// and whenever the keyring is replaced (a rotation signs at once).
    static SET_COOKIE_CACHE: RefCell<HashMap<CookieCacheKey, CookieCacheEntry>> = RefCell::new(HashMap::new());
}

/// The Set-Cookie value naming `backend`, signed with the current key.
pub(super) fn set_cookie(svc: &Service, backend: &Arc<Backend>, secure: bool, inner: &Inner) -> Option<HeaderValue> {
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
    keyring: &Keyring,
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
