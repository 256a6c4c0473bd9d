//! The tables of `cargo xtask bench proxy`: each round against HAProxy in
//! the same round, and the median of the rounds' ratios.

use super::Row;
use crate::bench::rounds::spread;

/// One round's table, ratios against that round's own rows.
pub(super) fn print_rows(rows: &[Row]) {
    let direct = rows.iter().find(|r| r.target == "direct").map_or(1.0, |r| r.wrk.rps);
    let ha = |mode: &str| rows.iter().find(|r| r.target == "haproxy" && r.mode == mode);
    println!(
        "| target | cookie | req/s | × direct | × HAProxy | p50 ms | p99 ms | CPU µs/req | CPU × HAProxy | errors |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let base = ha(r.mode);
        let x_ha = base.map_or("-".into(), |b| format!("{:.2}", r.wrk.rps / b.wrk.rps));
        let cpu = r.cpu_us_per_req.map_or("-".into(), |c| format!("{c:.1}"));
        let cpu_x = match (r.cpu_us_per_req, base.and_then(|b| b.cpu_us_per_req)) {
            (Some(c), Some(b)) => format!("{:.2}", c / b),
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {:.0} | {:.2} | {x_ha} | {:.2} | {:.2} | {cpu} | {cpu_x} | {} |",
            r.target,
            r.mode,
            r.wrk.rps,
            r.wrk.rps / direct,
            r.wrk.p50_ms,
            r.wrk.p99_ms,
            r.wrk.errors
        );
    }
}

/// Per swarm-sticky row: the median and range over the rounds of its
/// req/s, CPU per request and p99 as ratios to HAProxy's in the same round.
pub(super) fn print_summary(rounds: &[Vec<Row>]) {
    println!("| target | cookie | req/s × HAProxy | CPU/req × HAProxy | p99 × HAProxy |");
    println!("|---|---|---:|---:|---:|");
    for mode in ["sticky", "nocookie"] {
        let mut rps = Vec::new();
        let mut cpu = Vec::new();
        let mut p99 = Vec::new();
        for rows in rounds {
            let find = |target: &str| rows.iter().find(|r| r.target == target && r.mode == mode);
            let (Some(ss), Some(ha)) = (find("swarm-sticky"), find("haproxy")) else {
                continue;
            };
            rps.push(ss.wrk.rps / ha.wrk.rps);
            p99.push(ss.wrk.p99_ms / ha.wrk.p99_ms);
            if let (Some(c), Some(b)) = (ss.cpu_us_per_req, ha.cpu_us_per_req) {
                cpu.push(c / b);
            }
        }
        println!(
            "| swarm-sticky | {mode} | {} | {} | {} |",
            spread(&mut rps),
            spread(&mut cpu),
            spread(&mut p99)
        );
    }
}
