//! Request counters kept on the request path: a few relaxed atomic adds per
//! request, no locks, no label lookups. The admin API and `/metrics` read
//! them on demand ([`crate::metrics`] turns them into Prometheus families).
//!
//! [`BackendStats`] lives in the backend's runtime state and
//! [`ServiceStats`] in the balancer, so both survive table swaps (SIGHUP,
//! Docker changes) for as long as the backend or service exists.
//!
//! Counters only: this module knows no other part of swarm-sticky. What a
//! [`Tally`] counts by (the sticky decisions, the reasons a cookie is
//! rejected) is defined with the decision, in [`crate::sticky`].

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

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

/// One counter per kind of a small enum, indexed by the kind's position.
#[derive(Debug)]
pub struct Tally<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Tally<N> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl<const N: usize> Tally<N> {
    /// Counts one of kind `i` (ignored when out of range).
    pub fn add(&self, i: usize) {
        if let Some(n) = self.0.get(i) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The count of kind `i` (0 when out of range).
    pub fn get(&self, i: usize) -> u64 {
        self.0.get(i).map_or(0, |n| n.load(Ordering::Relaxed))
    }
}

/// How many sticky decisions there are (`sticky::Decision::ALL`, which
/// checks it at compile time).
pub const DECISION_KINDS: usize = 6;
/// How many reasons a cookie is rejected for (`sticky::RejectReason::ALL`,
/// which checks it at compile time).
pub const REJECT_REASONS: usize = 4;

/// Counters of one service.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Sticky decisions, by `sticky::Decision`.
    pub decisions: Tally<DECISION_KINDS>,
    /// Rejected cookies, by `sticky::RejectReason`.
    pub rejected: Tally<REJECT_REASONS>,
    /// Answers the proxy gave itself (no backend configured, available or
    /// reachable), by status.
    pub local_responses: StatusCounts,
    /// Time from the request head to the response head, every request.
    pub latency: LatencyHistogram,
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
    fn a_tally_counts_by_kind() {
        let t = Tally::<3>::default();
        t.add(0);
        t.add(2);
        t.add(2);
        t.add(7);
        assert_eq!((t.get(0), t.get(1), t.get(2), t.get(7)), (1, 0, 2, 0));
    }
}
