//! The tables of `cargo xtask bench tls`: each round's figures, and the
//! medians over the rounds with swarm-sticky's ratios to HAProxy (each
//! ratio taken within its round) against the targets.

use crate::bench::rounds::{median, spread};

/// The measured rows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Test {
    /// `openssl s_time -new`: full TLS 1.3 handshakes.
    Full,
    /// `openssl s_time -reuse -www /`: resumed handshakes and one request each.
    Resumed,
    /// `wrk -t1 -c64` over HTTPS with the sticky cookie.
    Http1,
    /// `h2load -c64 -m10` with the sticky cookie.
    H2,
}

impl Test {
    /// Every row, in order.
    pub(super) const ALL: [Self; 4] = [Self::Full, Self::Resumed, Self::Http1, Self::H2];

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Full => "full handshakes (s_time -new)",
            Self::Resumed => "resumed handshakes (s_time -reuse -www)",
            Self::Http1 => "HTTP/1.1 keep-alive, sticky (wrk)",
            Self::H2 => "h2, sticky (h2load)",
        }
    }

    pub(super) fn is_handshake(self) -> bool {
        matches!(self, Self::Full | Self::Resumed)
    }
}

/// One target's figures for one row.
pub(super) struct Sample {
    pub(super) test: Test,
    pub(super) target: &'static str,
    /// Handshakes (connections) or requests completed.
    pub(super) ops: f64,
    /// Wall time, in seconds.
    pub(super) seconds: f64,
    /// The proxy's CPU time over the run, in seconds.
    pub(super) cpu: f64,
    pub(super) p99_ms: Option<f64>,
    /// Share of connections resumed: the load tool's count, and
    /// swarm-sticky's own (`tls_handshakes_total`).
    pub(super) resumed: Option<f64>,
    pub(super) resumed_by_proxy: Option<f64>,
    pub(super) errors: u64,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.ops / self.seconds
    }

    /// Handshakes or requests per second of the proxy's CPU time.
    fn per_cpu(&self) -> f64 {
        self.ops / self.cpu.max(f64::EPSILON)
    }

    fn cpu_us(&self) -> f64 {
        self.cpu / self.ops.max(1.0) * 1e6
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("-".into(), f)
}

/// One round's table.
pub(super) fn print_round(samples: &[Sample]) {
    println!("| row | target | per s | proxy CPU | per CPU-second | CPU µs each | p99 ms | resumed | errors |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in samples {
        let resumed = match (s.resumed, s.resumed_by_proxy) {
            (Some(t), Some(p)) => format!("{:.1} % ({:.1} %)", t * 100.0, p * 100.0),
            (Some(t), None) => format!("{:.1} %", t * 100.0),
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {:.0} | {:.0} % | {:.0} | {:.1} | {} | {resumed} | {} |",
            s.test.name(),
            s.target,
            s.rate(),
            s.cpu / s.seconds * 100.0,
            s.per_cpu(),
            s.cpu_us(),
            opt(s.p99_ms, |p| format!("{p:.2}")),
            s.errors
        );
    }
}

/// A figure of a row: its name, how to read it off a sample, and the
/// target for swarm-sticky's ratio to HAProxy (`Some(true)`: at least,
/// `Some(false)`: at most).
type Figure = (&'static str, fn(&Sample) -> Option<f64>, Option<(bool, f64)>);

fn figures(test: Test) -> Vec<Figure> {
    let mut f: Vec<Figure> = vec![("per s", |s| Some(s.rate()), None)];
    if test.is_handshake() {
        f.push(("per CPU-second", |s| Some(s.per_cpu()), Some((true, 1.5))));
    } else {
        f.push(("CPU µs each", |s| Some(s.cpu_us()), Some((false, 1.0))));
        f.push(("p99 ms", |s| s.p99_ms, Some((false, 1.0))));
    }
    if test == Test::Resumed {
        f.push(("resumed share", |s| s.resumed, None));
    }
    f
}

/// The medians over `rounds` and the ratios against the targets.
pub(super) fn print_summary(rounds: &[Vec<Sample>]) {
    println!("| row | figure | HAProxy | swarm-sticky | × HAProxy: median (lowest–highest) | target | met |");
    println!("|---|---|---:|---:|---:|---:|---|");
    for test in Test::ALL {
        for (name, get, target) in figures(test) {
            let mut ha = Vec::new();
            let mut ss = Vec::new();
            let mut ratio = Vec::new();
            for round in rounds {
                let find = |t: &str| round.iter().find(|s| s.test == test && s.target == t).and_then(get);
                let (h, s) = (find("haproxy"), find("swarm-sticky"));
                ha.extend(h);
                ss.extend(s);
                if let (Some(h), Some(s)) = (h, s) {
                    ratio.push(s / h.max(f64::EPSILON));
                }
            }
            let mid = median(&mut ratio.clone());
            let (goal, met) = match (target, mid) {
                (Some((true, t)), Some(m)) => (format!("≥ {t:.1}"), if m >= t { "met" } else { "missed" }),
                (Some((false, t)), Some(m)) => (format!("≤ {t:.1}"), if m <= t { "met" } else { "missed" }),
                _ => ("-".into(), ""),
            };
            let fig = |v: Option<f64>| {
                opt(v, |v| {
                    if v < 100.0 {
                        format!("{v:.2}")
                    } else {
                        format!("{v:.0}")
                    }
                })
            };
            println!(
                "| {} | {name} | {} | {} | {} | {goal} | {met} |",
                test.name(),
                fig(median(&mut ha)),
                fig(median(&mut ss)),
                spread(&mut ratio)
            );
        }
    }
}
