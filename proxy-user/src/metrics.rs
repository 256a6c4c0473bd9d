//! `/metrics`: the counters of [`crate::stats`], the workers, the eBPF
//! steering and XDP maps and the Docker watcher, in the Prometheus text
//! format (version 0.0.4), encoded by prometheus-client.
//!
//! Nothing is registered ahead of time: each scrape takes a [`Scrape`] (a
//! plain copy of every value) and encodes it through a collector, so the
//! request path only ever touches its own atomics and a backend that leaves
//! the table leaves the output with it.

mod acme;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
    registry::Registry,
};

use crate::{
    dataplane::DataplaneStatus,
    status::ServiceStatus,
    tls::{CertStatus, TlsCounts},
};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One service's latency histogram: (sum, count, cumulative buckets).
pub type Latency = (f64, u64, Vec<(f64, u64)>);

/// Every value one scrape reports.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// Services with backend state and counters.
    pub services: Vec<ServiceStatus>,
    /// Per service name, its latency histogram.
    pub latency: Vec<(String, Latency)>,
    /// Requests no rule matched, by status.
    pub unrouted: Vec<(u16, u64)>,
    /// Per worker: (accepted, open).
    pub workers: Vec<(u64, u64)>,
    /// Steering and XDP.
    pub dataplane: DataplaneStatus,
    /// Docker discovery, when enabled: (connected, table age, warnings).
    pub discovery: Option<(bool, Option<f64>, usize)>,
    /// TLS, with an HTTPS listener: handshakes and certificates.
    pub tls: Option<(TlsCounts, Vec<CertStatus>)>,
    /// ACME, when on: certificates obtained, orders failed, and each
    /// managed certificate.
    pub acme: Option<(u64, u64, Vec<crate::acme::ManagedStatus>)>,
}

impl Scrape {
    /// Encodes the scrape in the Prometheus text format.
    ///
    /// # Errors
    /// Only if formatting fails (it does not for these types).
    pub fn encode(self) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix("swarm_sticky");
        registry.register_collector(Box::new(self));
        let mut out = String::with_capacity(8192);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

type Labels = Vec<(&'static str, String)>;

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, samples: &[(Labels, u64)]) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        m.encode_family(labels)?.encode_counter::<NoLabelSet, _, u64>(v, None)?;
    }
    Ok(())
}

fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, samples: &[(Labels, f64)]) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

#[expect(clippy::cast_precision_loss, reason = "gauges are floats in the exposition format")]
fn float(v: u64) -> f64 {
    v as f64
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        self.encode_requests(&mut enc)?;
        self.encode_backends(&mut enc)?;
        self.encode_sticky(&mut enc)?;
        self.encode_dataplane(&mut enc)?;
        self.encode_discovery(&mut enc)?;
        self.encode_tls(&mut enc)?;
        self.encode_acme(&mut enc)
    }
}

fn svc_backend(service: &str, backend: &str) -> Labels {
    vec![("service", service.to_owned()), ("backend", backend.to_owned())]
}

impl Scrape {
    fn encode_requests(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut requests: Vec<(Labels, u64)> = Vec::new();
        for s in &self.services {
            for b in &s.backends {
                for (code, n) in &b.responses {
                    let mut l = svc_backend(&s.name, &b.name);
                    l.push(("code", code.to_string()));
                    requests.push((l, *n));
                }
            }
            // Answered by the proxy itself: no backend.
            for (code, n) in &s.local_responses {
                let mut l = svc_backend(&s.name, "");
                l.push(("code", code.to_string()));
                requests.push((l, *n));
            }
        }
        for (code, n) in &self.unrouted {
            let mut l = svc_backend("", "");
            l.push(("code", code.to_string()));
            requests.push((l, *n));
        }
        counter(
            enc,
            "requests",
            "Requests by service, backend (empty: answered by the proxy) and status code.",
            &requests,
        )?;
        let mut m = enc.encode_descriptor(
            "request_duration_seconds",
            "Time from the request head to the response head, by service.",
            None,
            MetricType::Histogram,
        )?;
        for (service, (sum, count, buckets)) in &self.latency {
            let labels: Labels = vec![("service", service.clone())];
            m.encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
        }
        Ok(())
    }

    fn encode_backends(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let backends = || {
            self.services
                .iter()
                .flat_map(|s| s.backends.iter().map(move |b| (s, b)))
        };
        let per = |f: &dyn Fn(&crate::status::BackendStatus) -> u64| -> Vec<(Labels, u64)> {
            backends().map(|(s, b)| (svc_backend(&s.name, &b.name), f(b))).collect()
        };
        counter(
            enc,
            "sessions",
            "New sessions (Set-Cookie) started per backend.",
            &per(&|b| b.sessions),
        )?;
        counter(
            enc,
            "failovers",
            "Requests that had to leave a backend (down, removed or unreachable).",
            &per(&|b| b.failovers),
        )?;
        counter(
            enc,
            "response_timeouts",
            "Requests a backend took and did not answer within the response timeout (504 or moved).",
            &per(&|b| b.timeouts),
        )?;
        let tunnel: Vec<(Labels, u64)> = backends()
            .flat_map(|(s, b)| {
                [("up", b.tunnel_bytes_up), ("down", b.tunnel_bytes_down)]
                    .into_iter()
                    .map(move |(dir, v)| {
                        let mut l = svc_backend(&s.name, &b.name);
                        l.push(("direction", dir.to_owned()));
                        (l, v)
                    })
            })
            .collect();
        counter(
            enc,
            "tunnel_bytes",
            "Bytes of upgraded (e.g. WebSocket) connections that ended, by direction (up: client to backend).",
            &tunnel,
        )?;
        let states: Vec<(Labels, f64)> = backends()
            .flat_map(|(s, b)| {
                ["healthy", "failing", "draining", "down"]
                    .into_iter()
                    .map(move |state| {
                        let mut l = svc_backend(&s.name, &b.name);
                        l.push(("state", state.to_owned()));
                        (l, if b.state == state { 1.0 } else { 0.0 })
                    })
            })
            .collect();
        gauge(enc, "backend_state", "1 for the backend's current state.", &states)?;
        let weights: Vec<(Labels, f64)> = backends()
            .map(|(s, b)| (svc_backend(&s.name, &b.name), f64::from(b.weight)))
            .collect();
        gauge(enc, "backend_weight", "Weight for new sessions.", &weights)
    }

    fn encode_sticky(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let decisions: Vec<(Labels, u64)> = self
            .services
            .iter()
            .flat_map(|s| {
                s.decisions
                    .iter()
                    .map(|(d, n)| (vec![("service", s.name.clone()), ("decision", (*d).to_owned())], *n))
            })
            .collect();
        counter(
            enc,
            "sticky_decisions",
            "How each request's backend was chosen: hit, new, failover, migrated (Traefik v1 cookie), rejected or stand_in (its slot's next task is starting).",
            &decisions,
        )?;
        let rejected: Vec<(Labels, u64)> = self
            .services
            .iter()
            .flat_map(|s| {
                s.rejected
                    .iter()
                    .map(|(r, n)| (vec![("service", s.name.clone()), ("reason", (*r).to_owned())], *n))
            })
            .collect();
        counter(
            enc,
            "cookies_rejected",
            "Sticky cookies rejected, by reason.",
            &rejected,
        )
    }

    fn encode_dataplane(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let per_worker = |f: fn(&(u64, u64)) -> u64| -> Vec<(Labels, u64)> {
            self.workers
                .iter()
                .enumerate()
                .map(|(i, w)| (vec![("worker", i.to_string())], f(w)))
                .collect()
        };
        counter(
            enc,
            "connections_accepted",
            "Client connections accepted, per worker.",
            &per_worker(|w| w.0),
        )?;
        let open: Vec<(Labels, f64)> = per_worker(|w| w.1).into_iter().map(|(l, v)| (l, float(v))).collect();
        gauge(
            enc,
            "connections_open",
            "Client connections open now, per worker.",
            &open,
        )?;
        let dp = &self.dataplane;
        let steering: Labels = vec![("steering", dp.steering.as_str().to_owned())];
        gauge(enc, "steering_info", "The steering mode in use.", &[(steering, 1.0)])?;
        if let (Some(steered), Some(no_worker)) = (dp.steered, dp.no_worker) {
            counter(
                enc,
                "steered_connections",
                "New connections the eBPF sk_lookup program steered, by result.",
                &[
                    (vec![("result", "worker".to_owned())], steered),
                    (vec![("result", "no_worker".to_owned())], no_worker),
                ],
            )?;
        }
        let port = |p: u16| vec![("port", p.to_string())];
        let xdp = |f: fn(&crate::dataplane::xdp::PortCounters) -> u64| -> Vec<(Labels, u64)> {
            dp.xdp_ports.iter().map(|c| (port(c.port), f(c))).collect()
        };
        if !dp.xdp_ports.is_empty() {
            counter(
                enc,
                "xdp_packets",
                "Packets seen by XDP per published port.",
                &xdp(|c| c.packets),
            )?;
            counter(
                enc,
                "xdp_bytes",
                "Bytes seen by XDP per published port.",
                &xdp(|c| c.bytes),
            )?;
            counter(
                enc,
                "xdp_syns",
                "SYNs seen by XDP per published port.",
                &xdp(|c| c.syns),
            )?;
            counter(
                enc,
                "xdp_syns_dropped",
                "SYNs the XDP SYN guard dropped per published port.",
                &xdp(|c| c.syns_dropped),
            )?;
        }
        Ok(())
    }

    fn encode_discovery(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let Some((connected, age, warnings)) = self.discovery else {
            return Ok(());
        };
        gauge(
            enc,
            "docker_connected",
            "1 while the Docker API answers.",
            &[(Vec::new(), if connected { 1.0 } else { 0.0 })],
        )?;
        if let Some(age) = age {
            gauge(
                enc,
                "backend_table_age_seconds",
                "Seconds since the Docker API last confirmed the backend table.",
                &[(Vec::new(), age)],
            )?;
        }
        gauge(
            enc,
            "label_warnings",
            "Label warnings on discovered services.",
            &[(Vec::new(), float(u64::try_from(warnings).unwrap_or(u64::MAX)))],
        )
    }
}

impl Scrape {
    fn encode_tls(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let Some((counts, certs)) = &self.tls else {
            return Ok(());
        };
        let done: Vec<(Labels, u64)> = counts
            .completed
            .iter()
            .map(|c| {
                let kind = if c.resumed { "resumed" } else { "full" };
                (
                    vec![("version", c.version.to_owned()), ("handshake", kind.to_owned())],
                    c.count,
                )
            })
            .collect();
        counter(
            enc,
            "tls_handshakes",
            "Completed TLS handshakes by version, full or resumed.",
            &done,
        )?;
        let failed: Vec<(Labels, u64)> = counts
            .failed
            .iter()
            .map(|f| (vec![("reason", f.reason.to_owned())], f.count))
            .collect();
        counter(
            enc,
            "tls_handshake_failures",
            "TLS handshakes that did not complete, by reason (error, timeout, plain_http, hello_too_large, closed).",
            &failed,
        )?;
        let (sum, count, buckets) = &counts.duration;
        enc.encode_descriptor(
            "tls_handshake_duration_seconds",
            "Time from a connection's first byte to its completed TLS handshake.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
        let now = i64::try_from(crate::cookie::unix_now()).unwrap_or(i64::MAX);
        let cert_labels = |c: &CertStatus| -> Labels {
            vec![("source", c.source.display().to_string()), ("names", c.names.join(","))]
        };
        let expiry: Vec<(Labels, f64)> = certs
            .iter()
            .filter_map(|c| c.not_after.map(|t| (cert_labels(c), (t - now) as f64)))
            .collect();
        gauge(
            enc,
            "tls_certificate_expiry_seconds",
            "Seconds until each certificate in service expires (negative: expired).",
            &expiry,
        )?;
        let errors: Vec<(Labels, f64)> = certs
            .iter()
            .map(|c| (cert_labels(c), if c.error.is_some() { 1.0 } else { 0.0 }))
            .collect();
        gauge(
            enc,
            "tls_certificate_load_error",
            "1 when a certificate source's last read failed (its previous certificate, if any, stays in service).",
            &errors,
        )
    }
}
