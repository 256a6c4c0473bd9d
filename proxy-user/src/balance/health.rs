//! Active HTTP health checks: for each service with a `health` setting, a
//! GET of its path on every backend each interval; a wrong status, an error
//! or a timeout marks the backend unhealthy until a check passes. Runs as
//! one task on the main runtime and follows table swaps (reload).

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::{Backend, Balancer};
use crate::services::HealthCheckConfig;

/// How often the checker looks for due checks.
const TICK: Duration = Duration::from_millis(100);

/// Starts the health checker on the current tokio runtime. It runs until
/// the returned handle is aborted (or the runtime ends).
pub fn spawn_health_checks(balancer: Arc<Balancer>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut due: HashMap<String, Instant> = HashMap::new();
        loop {
            let table = balancer.table();
            let now = Instant::now();
            for svc in &table.services {
                let Some(cfg) = &svc.config.health else {
                    continue;
                };
                let next = due.entry(svc.config.name.clone()).or_insert(now);
                if *next > now {
                    continue;
                }
                *next = now + cfg.interval;
                for b in &svc.backends {
                    let (balancer, b, cfg) = (balancer.clone(), b.clone(), cfg.clone());
                    tokio::spawn(async move {
                        let ok = check(&b, &cfg).await;
                        balancer.set_healthy(&b, ok);
                    });
                }
            }
            due.retain(|name, _| table.services.iter().any(|s| &s.config.name == name));
            drop(table);
            tokio::time::sleep(TICK).await;
        }
    })
}

async fn check(b: &Backend, cfg: &HealthCheckConfig) -> bool {
    let attempt = async {
        let stream = crate::netns::connect(b.via.as_deref(), b.addr).await.ok()?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "health check connection");
            }
        });
        let req = http::Request::get(cfg.path.as_str())
            .header(http::header::HOST, b.addr.to_string())
            .header(http::header::USER_AGENT, "swarm-sticky-health")
            .body(Empty::<Bytes>::new())
            .ok()?;
        let resp = send.send_request(req).await.ok()?;
        Some(resp.status().as_u16() == cfg.expected_status)
    };
    let ok = tokio::time::timeout(cfg.timeout, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false);
    if !ok {
        tracing::debug!(backend = %b.name, addr = %b.addr, path = %cfg.path, "health check failed");
    }
    ok
}
