//! Request counters kept on the request path: a few relaxed atomic adds per
//! request, no locks, no label lookups. The admin API and `/metrics` read
//! them on demand ([`crate::metrics`] turns them into Prometheus families).
//!
//! [`BackendStats`] lives in the backend's runtime state and
//! [`ServiceStats`] in the balancer, so both survive table swaps (SIGHUP,
//! Docker changes) for as long as the backend or service exists.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use serde::Serialize;

use crate::cookie::CookieError;

/// Lowest and highest status code counted one by one.
const FIRST_STATUS: u16 = 100;
const LAST_STATUS: u16 = 599;
const STATUS_SLOTS: usize = (LAST_STATUS - FIRST_STATUS + 1) as usize;

/// Responses by exact status code (100–599; anything else counts as 599).
#[derive(Debug)]
pub struct StatusCounts([AtomicU64; STATUS_SLOTS]);

impl Default for StatusCounts {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl StatusCounts {
    /// Counts one response with `status`.
    pub fn record(&self, status: u16) {
        let i = status.clamp(FIRST_STATUS, LAST_STATUS) - FIRST_STATUS;
        self.0[usize::from(i)].fetch_add(1, Ordering::Relaxed);
    }

    /// The codes seen so far with their counts, in code order.
    pub fn nonzero(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        (FIRST_STATUS..).zip(self.0.iter()).filter_map(|(code, n)| {
            let n = n.load(Ordering::Relaxed);
            (n > 0).then_some((code, n))
        })
    }

    /// All responses counted.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

/// Counters of one backend.
#[derive(Debug, Default)]
pub struct BackendStats {
    /// Responses relayed from this backend, by status.
    pub responses: StatusCounts,
    /// New sessions started here (a Set-Cookie naming this backend).
    pub sessions: AtomicU64,
    /// Requests whose cookie named this backend and that it served.
    pub sticky_hits: AtomicU64,
    /// Requests that had to leave this backend (its cookie named it, or it
    /// was picked, but it could not serve).
    pub failovers: AtomicU64,
    /// Requests this backend took and did not answer within the response
    /// timeout.
    pub timeouts: AtomicU64,
    /// Bytes client → backend on upgraded connections.
    pub tunnel_bytes_up: AtomicU64,
    /// Bytes backend → client on upgraded connections.
    pub tunnel_bytes_down: AtomicU64,
}

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
}

impl Decision {
    /// Every decision, in the order the counters are kept.
    pub const ALL: [Self; 5] = [Self::Hit, Self::New, Self::Failover, Self::Migrated, Self::Rejected];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::New => "new",
            Self::Failover => "failover",
            Self::Migrated => "migrated",
            Self::Rejected => "rejected",
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
    pub const ALL: [Self; 4] = [Self::Malformed, Self::Forged, Self::UnknownKey, Self::Expired];

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

/// Upper bounds (seconds) of the latency histogram's buckets: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A fixed-bucket histogram of request durations, lock-free.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum of all observations in microseconds.
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// (sum in seconds, count, (upper bound, count) per bucket with +Inf
    /// last). The counts are per bucket, not cumulative: the encoder adds
    /// them up.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut count = 0;
        let mut out = Vec::with_capacity(self.buckets.len());
        for (i, n) in self.buckets.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            count += n;
            out.push((LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        #[expect(clippy::cast_precision_loss, reason = "a sum of latencies in seconds")]
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (sum, count, out)
    }
}

/// Counters of one service.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Sticky decisions, indexed like [`Decision::ALL`].
    decisions: [AtomicU64; Decision::ALL.len()],
    /// Rejected cookies, indexed like [`RejectReason::ALL`].
    rejected: [AtomicU64; RejectReason::ALL.len()],
    /// Answers the proxy gave itself (no backend configured, available or
    /// reachable), by status.
    pub local_responses: StatusCounts,
    /// Time from the request head to the response head, every request.
    pub latency: LatencyHistogram,
}

impl ServiceStats {
    /// Counts one decision.
    pub fn decided(&self, d: Decision) {
        self.decisions[d as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one rejected cookie (the decision is counted separately).
    pub fn rejected(&self, r: RejectReason) {
        self.rejected[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Decisions with their counts.
    pub fn decisions(&self) -> impl Iterator<Item = (Decision, u64)> + '_ {
        Decision::ALL
            .into_iter()
            .zip(&self.decisions)
            .map(|(d, n)| (d, n.load(Ordering::Relaxed)))
    }

    /// Rejections with their counts.
    pub fn rejections(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL
            .into_iter()
            .zip(&self.rejected)
            .map(|(r, n)| (r, n.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_are_exact_and_clamped() {
        let s = StatusCounts::default();
        s.record(200);
        s.record(200);
        s.record(502);
        s.record(42);
        s.record(999);
        assert_eq!(
            s.nonzero().collect::<Vec<_>>(),
            [(100, 1), (200, 2), (502, 1), (599, 1)]
        );
        assert_eq!(s.total(), 5);
    }

    #[test]
    fn histogram_counts_per_bucket_with_inf_last() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 20.0033).abs() < 1e-9, "{sum}");
        assert_eq!(buckets[0], (0.0005, 1));
        assert_eq!(buckets[3], (0.005, 1));
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 3);
        assert_eq!(buckets.last().map(|b| b.1), Some(1));
        assert!(buckets.last().is_some_and(|b| b.0.is_infinite()));
    }

    #[test]
    fn decisions_and_rejections_count_by_kind() {
        let s = ServiceStats::default();
        s.decided(Decision::Hit);
        s.decided(Decision::Rejected);
        s.rejected(RejectReason::from(CookieError::BadTag));
        s.rejected(RejectReason::from(CookieError::Base64));
        let d: Vec<_> = s.decisions().filter(|(_, n)| *n > 0).collect();
        assert_eq!(d, [(Decision::Hit, 1), (Decision::Rejected, 1)]);
        let r: Vec<_> = s.rejections().filter(|(_, n)| *n > 0).collect();
        assert_eq!(r, [(RejectReason::Malformed, 1), (RejectReason::Forged, 1)]);
    }
}
