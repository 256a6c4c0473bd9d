//! Test harness: backends ([`backend`]) and a proxy served by real workers
//! ([`proxy`]), all in process on loopback ephemeral ports.

pub mod backend;
pub mod proxy;

use std::time::Duration;

/// Upper bound for any single wait in the tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `cond` every 10 ms until it is true or `WAIT` passes (then panics
/// with `what`).
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
