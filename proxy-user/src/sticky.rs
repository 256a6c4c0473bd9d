//! Stickiness, the product's core: which backend a request goes to, and
//! the cookie that keeps it there.
//!
//! * [`choose`]: a valid cookie's backend (when it may serve), else the
//!   connection's earlier pick ([`Pins`]), else a new one by SWRR;
//! * [`affinity`]: what the cookie says ([`Decision`], and why one was
//!   rejected: [`RejectReason`]), including the slot of a replaced task and
//!   the Traefik v1 cookie (the backend's URL, honoured only for a current
//!   backend);
//! * [`set_cookie`]: the signed `Set-Cookie` value, cached per backend and
//!   second.
//!
//! The cookie's format and keys are [`crate::cookie`]; the counters these
//! decisions feed are [`crate::stats`].

use std::{
    cell::RefCell,
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Weak, atomic::Ordering},
};

use http::{HeaderMap, HeaderValue};
use serde::Serialize;

use crate::{
    balance::Balancer,
    cookie::{self, CookieError, Keyring, Sticky},
    routing::{Backend, Service},
    services::CookieConfig,
    stats::{DECISION_KINDS, REJECT_REASONS},
};

/// How the backend of a request was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// A valid cookie named a backend that served the request.
    Hit,
    /// No cookie: a new session (or the connection's earlier pick).
    New,
    /// A valid cookie named a backend that could not serve it (down,
    /// unhealthy, removed, or its connection failed): moved elsewhere.
    Failover,
    /// A Traefik v1 cookie (the backend URL) naming a current backend.
    Migrated,
    /// The cookie was not acceptable (see [`RejectReason`]): a new session.
    Rejected,
    /// A valid cookie named a task that is gone, and its slot's next task
    /// is not running yet (`same-slot`, a stop-first rolling update):
    /// another backend serves the request and the cookie stays as it is.
    StandIn,
}

impl Decision {
    /// Every decision, in the order the counters are kept.
    pub const ALL: [Self; DECISION_KINDS] = [
        Self::Hit,
        Self::New,
        Self::Failover,
        Self::Migrated,
        Self::Rejected,
        Self::StandIn,
    ];

    /// Its counter in [`crate::stats::ServiceStats::decisions`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::New => "new",
            Self::Failover => "failover",
            Self::Migrated => "migrated",
            Self::Rejected => "rejected",
            Self::StandIn => "stand_in",
        }
    }
}

/// Why a cookie was rejected (a coarser view of [`CookieError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Not a value this proxy (or Traefik v1) issues: bad base64, length,
    /// version or identity, or too long.
    Malformed,
    /// Well-formed but the signature does not verify (tampered, another
    /// cluster's key, or another service's cookie).
    Forged,
    /// Signed by a key that is no longer in the keyring.
    UnknownKey,
    /// Older than the service's Max-Age.
    Expired,
}

impl RejectReason {
    /// Every reason, in the order the counters are kept.
    pub const ALL: [Self; REJECT_REASONS] = [Self::Malformed, Self::Forged, Self::UnknownKey, Self::Expired];

    /// Its counter in [`crate::stats::ServiceStats::rejected`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Forged => "forged",
            Self::UnknownKey => "unknown_key",
            Self::Expired => "expired",
        }
    }
}

impl From<CookieError> for RejectReason {
    fn from(err: CookieError) -> Self {
        match err {
            CookieError::TooLong
            | CookieError::Base64
            | CookieError::Malformed
            | CookieError::Version(_)
            | CookieError::Identity => Self::Malformed,
            CookieError::BadTag => Self::Forged,
            CookieError::UnknownKey => Self::UnknownKey,
            CookieError::Expired => Self::Expired,
        }
    }
}

/// What a request's cookie says about its backend.
#[derive(Debug)]
pub struct Affinity {
    /// The backend a valid cookie names, if it may serve.
    pub backend: Option<Arc<Backend>>,
    /// How that was decided.
    pub decision: Decision,
    /// Whether the response must carry a new cookie.
    pub set_cookie: bool,
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
#[derive(Debug)]
pub struct Choice {
    /// Where it goes.
    pub backend: Arc<Backend>,
    /// Whether the response carries a cookie naming it.
    pub set_cookie: bool,
}

/// Chooses the backend of a request to `svc`: the one its cookie names,
/// else this connection's earlier pick (`pins`), else a new one by SWRR.
/// Returns how the cookie was judged, and the choice: `None` when no
/// backend may take the request.
pub fn choose(
    balancer: &Balancer,
    keyring: &Keyring,
    pins: &Pins,
    svc: &Service,
    headers: &HeaderMap,
) -> (Decision, Option<Choice>) {
    let affinity = affinity(balancer, keyring, svc, headers);
    let backend = affinity
        .backend
        .or_else(|| pins.pinned(balancer, svc))
        .or_else(|| balancer.pick(svc, &[]));
    let Some(backend) = backend else {
        return (affinity.decision, None);
    };
    // Pin before sending: the parallel first requests of one connection
    // (HTTP/2 streams of one page) all see the same pick.
    if affinity.set_cookie {
        pins.pin(svc, &backend);
    }
    let choice = Choice {
        backend,
        set_cookie: affinity.set_cookie,
    };
    (affinity.decision, Some(choice))
}

/// What the cookie of `svc` in `headers` says.
pub fn affinity(balancer: &Balancer, keyring: &Keyring, svc: &Service, headers: &HeaderMap) -> Affinity {
    let cfg = &svc.config.cookie;
    let Some(value) = cookie::find_cookie(headers, &cfg.name) else {
        return Affinity::new_session(Decision::New);
    };
    let max_age = cfg.max_age.map(|d| d.as_secs());
    let now = cookie::unix_now();
    let mut buf = [0u8; cookie::MAX_VALUE_LEN];
    match keyring.verify_in(&svc.config.name, value, now, max_age, &mut buf) {
        Ok(cookie::Verified {
            identity: backend,
            issued_at,
            current_key,
        }) => match svc.backend(backend) {
            // With a Max-Age, a cookie past half its life is renewed so
            // that an active session does not expire in the browser; one
            // signed by the previous key is re-signed, so that it survives
            // the next key rotation too.
            Some(b) if balancer.is_up(b) => Affinity {
                backend: Some(b.clone()),
                decision: Decision::Hit,
                set_cookie: !current_key || max_age.is_some_and(|max| now.saturating_sub(issued_at) > max / 2),
            },
            Some(b) => {
                b.state.stats.failovers.fetch_add(1, Ordering::Relaxed);
                Affinity {
                    backend: slot_successor(balancer, svc, backend),
                    decision: Decision::Failover,
                    set_cookie: true,
                }
            }
            None => match slot_successor(balancer, svc, backend) {
                // The task is gone: its slot's replacement takes the
                // session, with a new cookie naming it.
                Some(next) => Affinity {
                    backend: Some(next),
                    decision: Decision::Failover,
                    set_cookie: true,
                },
                // The replacement is on its way: a stand-in serves until
                // it runs, and the cookie keeps naming the slot.
                None if svc.is_waiting(backend) => Affinity {
                    backend: stand_in(balancer, svc, backend),
                    decision: Decision::StandIn,
                    set_cookie: false,
                },
                None => Affinity::new_session(Decision::Failover),
            },
        },
        Err(err) => {
            if let Some(legacy) = traefik_v1_backend(balancer, svc, value) {
                return Affinity {
                    backend: Some(legacy),
                    decision: Decision::Migrated,
                    set_cookie: true,
                };
            }
            svc.stats.rejected.add(RejectReason::from(err).index());
            Affinity::new_session(Decision::Rejected)
        }
    }
}

/// With `same-slot`, the task that now holds the slot of `name`, when it
/// may take sessions.
fn slot_successor(balancer: &Balancer, svc: &Service, name: &str) -> Option<Arc<Backend>> {
    if !svc.config.slot_affinity {
        return None;
    }
    svc.backend_in_slot_of(name)
        .filter(|b| balancer.is_available(b))
        .cloned()
}

/// The backend that serves a waiting slot's clients until the slot's task
/// runs: one of the available backends, the same for every request naming
/// `name` while the table stays (so a client does not hop between them).
/// Also the retry of such a client whose draining task refused it
/// (`proxy/send.rs`), so that it meets the same stand-in either way.
pub(crate) fn stand_in(balancer: &Balancer, svc: &Service, name: &str) -> Option<Arc<Backend>> {
    let available: Vec<&Arc<Backend>> = svc.backends.iter().filter(|b| balancer.is_available(b)).collect();
    if available.is_empty() {
        return None;
    }
    // FNV-1a: stable across processes, so every manager picks alike.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let i = usize::try_from(hash % available.len() as u64).unwrap_or(0);
    Some(available[i].clone())
}

/// Traefik v1 migration: its cookie is the plain backend URL, honoured
/// only when it is the address of a backend in the current table.
fn traefik_v1_backend(balancer: &Balancer, svc: &Service, value: &[u8]) -> Option<Arc<Backend>> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.strip_prefix("http://"))
        .and_then(|v| v.trim_end_matches('/').parse::<SocketAddr>().ok())
        .and_then(|addr| svc.backend_by_addr(addr))
        .filter(|b| balancer.is_up(b))
        .cloned()
}

/// One client connection's picks, per service: its cookie-less requests
/// (keep-alive, HTTP/2 streams, parallel or not) follow its first pick.
#[derive(Debug, Default)]
pub struct Pins(RefCell<Vec<(String, String)>>);

impl Pins {
    /// This connection's earlier pick for `svc`, if it may take sessions.
    fn pinned(&self, balancer: &Balancer, svc: &Service) -> Option<Arc<Backend>> {
        let pins = self.0.borrow();
        let (_, name) = pins.iter().find(|(s, _)| *s == svc.config.name)?;
        svc.backend(name).filter(|b| balancer.is_available(b)).cloned()
    }

    /// Remembers `backend`, which a new cookie names, for the cookie-less
    /// requests that follow on this connection.
    pub fn pin(&self, svc: &Service, backend: &Backend) {
        let mut pins = self.0.borrow_mut();
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

/// The Set-Cookie value naming `backend`, signed with `keyring`'s
/// signing key. Built at most once a second per backend (and again when
/// the keyring is replaced), so a burst of new sessions signs once.
pub fn set_cookie(svc: &Service, backend: &Arc<Backend>, secure: bool, keyring: &Arc<Keyring>) -> Option<HeaderValue> {
    let now = cookie::unix_now();
    let key = (Arc::as_ptr(backend) as usize, secure);
    let hit = SET_COOKIE_CACHE.with_borrow(|c| {
        c.get(&key)
            .filter(|(t, w, k, _)| {
                *t == now
                    && w.upgrade().is_some_and(|b| Arc::ptr_eq(&b, backend))
                    && k.upgrade().is_some_and(|k| Arc::ptr_eq(&k, keyring))
            })
            .map(|(_, _, _, v)| v.clone())
    });
    if hit.is_some() {
        return hit;
    }
    let value = build_set_cookie(&svc.config.cookie, &svc.config.name, backend, secure, now, keyring)?;
    SET_COOKIE_CACHE.with_borrow_mut(|c| {
        if c.len() > 4096 {
            c.retain(|_, (t, w, _, _)| *t == now && w.strong_count() > 0);
        }
        c.insert(
            key,
            (now, Arc::downgrade(backend), Arc::downgrade(keyring), value.clone()),
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

#[cfg(test)]
mod tests;
