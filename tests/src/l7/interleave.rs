//! A property test of the upstream pool under uploads: random interleavings
//! of slow uploads, backends answering before the upload ends, stalled
//! uploads and plain GETs, all through one worker and one backend (so one
//! pool), and no request may wait longer than its own deadlines.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proxy_user::{cookie::Keyring, services::ServicesConfig};
use tokio::{io::AsyncWriteExt as _, net::TcpStream};

use crate::harness::{
    proxy::{TestProxy, get},
    raw::{Behaviour, RawBackend, read_reply},
};

/// The body and response deadlines of the proxy under test.
const BODY_TIMEOUT: Duration = Duration::from_millis(1000);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Scheduling slack on a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(1000);

#[derive(Debug, Clone)]
enum Kind {
    /// A GET: answered within its response timeout, whatever uploads run.
    Get,
    /// `POST /early`: the backend answers 413 at once; the client then
    /// sends the rest after `stall`, or never.
    Early {
        size: usize,
        first: usize,
        stall: Duration,
        finish: bool,
    },
    /// `POST /upload`: the client pauses `stall` in the middle; a pause
    /// longer than the body timeout (and no rest) must get 408.
    Upload { size: usize, first: usize, stall: Duration },
}

#[derive(Debug, Clone)]
struct Op {
    start: Duration,
    kind: Kind,
}

fn op() -> impl Strategy<Value = Op> {
    let short = (0u64..200).prop_map(Duration::from_millis);
    // Well past the body timeout, never near it: the outcome is certain.
    let long = (1500u64..2200).prop_map(Duration::from_millis);
    let stall = prop_oneof![short, long];
    let kind = prop_oneof![
        2 => Just(Kind::Get),
        1 => (1usize..32_768, stall.clone(), any::<bool>(), any::<prop::sample::Index>())
            .prop_map(|(size, stall, finish, i)| Kind::Early { size, first: i.index(size), stall, finish }),
        1 => (1usize..32_768, stall, any::<prop::sample::Index>())
            .prop_map(|(size, stall, i)| Kind::Upload { size, first: i.index(size), stall }),
    ];
    ((0u64..800).prop_map(Duration::from_millis), kind).prop_map(|(start, kind)| Op { start, kind })
}

/// Runs one op; `Err` says which deadline it missed.
async fn run(addr: std::net::SocketAddr, op: Op) -> Result<(), String> {
    tokio::time::sleep(op.start).await;
    let t0 = Instant::now();
    match op.kind {
        Kind::Get => {
            let r = tokio::time::timeout(RESPONSE_TIMEOUT + SLACK, get(addr, "/", None))
                .await
                .map_err(|_| format!("GET at {:?} not answered in time", op.start))?;
            if r.status != 200 {
                return Err(format!("GET at {:?}: {} {}", op.start, r.status, r.body));
            }
            let waited = t0.elapsed();
            if waited > RESPONSE_TIMEOUT {
                return Err(format!("GET at {:?} waited {waited:?}", op.start));
            }
        }
        Kind::Early {
            size,
            first,
            stall,
            finish,
        } => {
            let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let head = format!("POST /early HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n\r\n");
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&vec![b'e'; first]).await;
            let r = read_reply(&mut s).await.ok_or("early upload: no answer")?;
            if r.status != 413 || t0.elapsed() > RESPONSE_TIMEOUT + SLACK {
                return Err(format!("early upload: {} after {:?}", r.status, t0.elapsed()));
            }
            tokio::time::sleep(stall).await;
            if finish {
                // The proxy may have closed the connection by now.
                let _ = s.write_all(&vec![b'e'; size - first]).await;
            }
        }
        Kind::Upload { size, first, stall } => {
            let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let head = format!("POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n\r\n");
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&vec![b'u'; first]).await;
            let stalls = stall > BODY_TIMEOUT;
            if !stalls {
                tokio::time::sleep(stall).await;
                let _ = s.write_all(&vec![b'u'; size - first]).await;
            }
            let r = read_reply(&mut s).await.ok_or("upload: no answer")?;
            let waited = t0.elapsed();
            let (want, bound) = if stalls {
                (408, BODY_TIMEOUT + SLACK)
            } else {
                (200, stall + RESPONSE_TIMEOUT + SLACK)
            };
            if r.status != want || waited > bound {
                return Err(format!(
                    "upload of {size} stalling {stall:?} after {first}: {} after {waited:?}",
                    r.status
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        // Each case takes seconds: a failure is reported after a short
        // search for a smaller one.
        max_shrink_iters: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever the interleaving, every request meets its deadlines.
    #[test]
    fn interleaved_uploads_and_gets_meet_their_deadlines(ops in prop::collection::vec(op(), 4..12)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let failures: Vec<String> = rt.block_on(async {
            let backend = RawBackend::start("early", Behaviour::EarlyAnswer).await;
            let mut cfg = ServicesConfig::single("web", &[("early".into(), backend.addr)]);
            cfg.limits.request_body_timeout = BODY_TIMEOUT;
            cfg.limits.response_timeout = RESPONSE_TIMEOUT;
            // One worker: every request shares one upstream pool.
            let p = TestProxy::start_with(cfg, Keyring::random(), 1);
            let tasks: Vec<_> = ops.iter().cloned().map(|op| tokio::spawn(run(p.addr, op))).collect();
            let mut failures = Vec::new();
            for t in tasks {
                match t.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failures.push(e),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        });
        prop_assert!(failures.is_empty(), "{failures:#?}");
    }
}
