//! The request rate over the last minutes, for the dashboard's chart: a
//! sampler reads the request total once a second into a ring, so a page
//! opened now shows the last five minutes at once.

use std::{collections::VecDeque, sync::Mutex, time::Duration};

use serde::Serialize;

/// Samples kept: five minutes at one per second.
pub(super) const SAMPLES: usize = 300;

/// How often the total is read.
pub(super) const PERIOD: Duration = Duration::from_secs(1);

/// One point of the chart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(super) struct Point {
    /// Unix time (seconds) at the end of the interval.
    pub t: u64,
    /// Requests per second over the interval.
    pub rps: f64,
}

/// Request totals sampled once per [`PERIOD`].
#[derive(Debug, Default)]
pub(super) struct RateHistory {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_total: Option<u64>,
    points: VecDeque<Point>,
}

impl RateHistory {
    /// Records the request total seen at Unix time `t`, `elapsed` after the
    /// previous sample. Counters of removed backends leave the total, so a
    /// smaller total counts as no requests rather than a negative rate.
    pub(super) fn record(&self, t: u64, total: u64, elapsed: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(last) = inner.last_total {
            #[expect(clippy::cast_precision_loss, reason = "a rate for a chart")]
            let rps = total.saturating_sub(last) as f64 / elapsed.as_secs_f64().max(1e-3);
            if inner.points.len() == SAMPLES {
                inner.points.pop_front();
            }
            inner.points.push_back(Point { t, rps });
        }
        inner.last_total = Some(total);
    }

    /// The points, oldest first.
    pub(super) fn points(&self) -> Vec<Point> {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.points.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_the_difference_over_time_and_the_ring_is_bounded() {
        let h = RateHistory::default();
        h.record(100, 0, PERIOD);
        h.record(101, 50, PERIOD);
        h.record(103, 150, Duration::from_secs(2));
        h.record(104, 20, PERIOD);
        assert_eq!(
            h.points(),
            [
                Point { t: 101, rps: 50.0 },
                Point { t: 103, rps: 50.0 },
                Point { t: 104, rps: 0.0 }
            ]
        );
        for i in 0..2 * SAMPLES as u64 {
            h.record(200 + i, i, PERIOD);
        }
        let points = h.points();
        assert_eq!(points.len(), SAMPLES);
        assert_eq!(points.last().map(|p| p.t), Some(200 + 2 * SAMPLES as u64 - 1));
    }
}
