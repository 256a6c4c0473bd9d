//! SWRR weights, drain, passive health, routing and state across swaps.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use super::*;
use crate::services::{BackendConfig, ServicesConfig};

fn cfg(weights: &[u32]) -> ServicesConfig {
    let backends: Vec<(String, SocketAddr)> = weights
        .iter()
        .enumerate()
        .map(|(i, _)| {
            (
                format!("b{i}"),
                SocketAddr::from(([192, 0, 2, 1], 8000 + u16::try_from(i).unwrap())),
            )
        })
        .collect();
    let mut c = ServicesConfig::single("web", &backends);
    for (b, w) in c.services[0].backends.iter_mut().zip(weights) {
        b.weight = *w;
    }
    c
}

fn counts(bal: &Balancer, n: usize) -> HashMap<String, usize> {
    let t = bal.table();
    let mut m = HashMap::new();
    for _ in 0..n {
        *m.entry(bal.pick(&t.services[0], &[]).unwrap().name.clone())
            .or_default() += 1;
    }
    m
}

/// SWRR honours weights exactly over a full cycle and interleaves smoothly.
#[test]
fn swrr_weights() {
    let bal = Balancer::new(cfg(&[5, 1, 1]));
    let t = bal.table();
    let seq: Vec<String> = (0..7)
        .map(|_| bal.pick(&t.services[0], &[]).unwrap().name.clone())
        .collect();
    assert_eq!(seq, ["b0", "b0", "b1", "b0", "b2", "b0", "b0"]);
    let c = counts(&bal, 700);
    assert_eq!((c["b0"], c["b1"], c["b2"]), (500, 100, 100));
}

/// Draining and weight-0 backends get no new sessions but stay up for pinned ones.
#[test]
fn drain_excludes_from_new_sessions() {
    let bal = Balancer::new(cfg(&[1, 1, 0]));
    bal.set_draining("web", "b0", true).unwrap();
    let c = counts(&bal, 10);
    assert_eq!(c.get("b1"), Some(&10));
    let t = bal.table();
    assert!(bal.is_up(t.services[0].backend("b0").unwrap()));
    assert!(!bal.is_available(t.services[0].backend("b0").unwrap()));
    assert_eq!(
        bal.set_draining("web", "nope", true),
        Err(BalanceError::UnknownBackend {
            service: "web".into(),
            backend: "nope".into()
        })
    );
    assert_eq!(
        bal.set_draining("x", "b0", true),
        Err(BalanceError::UnknownService("x".into()))
    );
}

/// N consecutive failures take a backend down; success resets the count.
#[test]
fn passive_health() {
    let mut c = cfg(&[1, 1]);
    c.services[0].passive.failures = 2;
    c.services[0].passive.backoff = Duration::from_secs(60);
    let bal = Balancer::new(c);
    let t = bal.table();
    let (svc, b0) = (&t.services[0], t.services[0].backend("b0").unwrap());
    bal.record_failure(svc, b0);
    bal.record_success(b0);
    bal.record_failure(svc, b0);
    assert!(bal.is_up(b0));
    bal.record_failure(svc, b0);
    assert!(!bal.is_up(b0));
    assert!(bal.down_for(b0).is_some());
    assert_eq!(counts(&bal, 4).get("b1"), Some(&4));
    assert!(bal.pick(svc, &["b1"]).is_none());
}

/// Drain and health state survive a reload; a removed backend's state is dropped.
#[test]
fn state_survives_swap() {
    let bal = Balancer::new(cfg(&[1, 1, 1]));
    bal.set_draining("web", "b1", true).unwrap();
    let mut next = cfg(&[1, 1]);
    next.services[0].backends.push(BackendConfig {
        name: "new".into(),
        addr: SocketAddr::from(([192, 0, 2, 9], 1)),
        weight: 1,
        via: None,
        down: None,
        task: None,
    });
    bal.replace(next);
    let t = bal.table();
    assert!(Service::is_draining(t.services[0].backend("b1").unwrap()));
    assert!(t.services[0].backend("b2").is_none());
    assert_eq!(lock(&bal.states).backends.len(), 3);
    assert_eq!(lock(&bal.states).services.len(), 1);
}

/// Longest prefix wins; a host rule beats none on a tie.
#[test]
fn routing() {
    let text = r#"
[[services]]
name = "root"
backends = [{ name = "a", url = "http://192.0.2.1:1" }]
[[services]]
name = "api"
rule = { path_prefix = "/api" }
backends = [{ name = "a", url = "http://192.0.2.1:1" }]
[[services]]
name = "host"
rule = { host = "example.com" }
backends = [{ name = "a", url = "http://192.0.2.1:1" }]
"#;
    let bal = Balancer::new(ServicesConfig::from_toml_str(text).unwrap());
    let t = bal.table();
    let name = |h: Option<&str>, p: &str| t.route(h, p).map(|r| r.service.config.name.clone());
    assert_eq!(name(None, "/"), Some("root".into()));
    assert_eq!(name(None, "/api/v1"), Some("api".into()));
    assert_eq!(name(Some("example.com"), "/x"), Some("host".into()));
    assert_eq!(name(Some("example.com"), "/api"), Some("api".into()));
}

/// A rule with several hosts and prefixes (Traefik v1 `Host:a,b`,
/// `PathPrefix:/x,/y`) matches any of them, and reports the prefix that
/// matched.
#[test]
fn rules_with_alternatives() {
    let text = r#"
[[services]]
name = "root"
backends = [{ name = "a", url = "http://192.0.2.1:1" }]
[[services]]
name = "shop"
rule = { host = ["a.example", "b.example"], path_prefix = ["/shop", "/cart/"], strip_prefix = true }
backends = [{ name = "a", url = "http://192.0.2.1:1" }]
"#;
    let bal = Balancer::new(ServicesConfig::from_toml_str(text).unwrap());
    let t = bal.table();
    let route = |h: Option<&str>, p: &str| {
        t.route(h, p)
            .map(|r| (r.service.config.name.clone(), r.prefix.to_owned()))
    };
    assert_eq!(
        route(Some("a.example"), "/shop/x"),
        Some(("shop".into(), "/shop".into()))
    );
    assert_eq!(
        route(Some("b.example"), "/cart/1"),
        Some(("shop".into(), "/cart/".into()))
    );
    assert_eq!(route(Some("c.example"), "/shop/x"), Some(("root".into(), "/".into())));
    assert_eq!(route(Some("b.example"), "/other"), Some(("root".into(), "/".into())));
    assert_eq!(
        t.services[1].config.rule.to_string(),
        "Host:a.example,b.example PathPrefixStrip:/shop,/cart/"
    );
}

/// The admin view reflects drain and passive health.
#[test]
fn status_view() {
    let bal = Balancer::new(cfg(&[2, 1]));
    bal.set_draining("web", "b1", true).unwrap();
    let t = bal.table();
    for _ in 0..t.services[0].config.passive.failures {
        bal.record_failure(&t.services[0], t.services[0].backend("b0").unwrap());
    }
    let s = crate::status::services(&bal);
    assert_eq!(s[0].name, "web");
    let (b0, b1) = (&s[0].backends[0], &s[0].backends[1]);
    assert!(!b0.available && b0.down_for_ms > 0 && !b0.draining && b0.healthy);
    assert!(b1.draining && !b1.available && b1.down_for_ms == 0);
    assert_eq!(b0.addr, "192.0.2.1:8000");
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"draining\":true"), "{json}");
}
