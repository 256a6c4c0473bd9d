//! Label parsing: the tutorial's labels, the v2 and own spellings, warnings.

use std::collections::BTreeMap;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// The four labels of the classic tutorial work unchanged.
#[test]
fn tutorial_v1_labels() {
    let s = parse(&labels(&[
        ("traefik.docker.network", "whoaminet"),
        ("traefik.port", "8000"),
        ("traefik.frontend.rule", "PathPrefix:/"),
        ("traefik.backend.loadbalancer.stickiness", "true"),
    ]))
    .unwrap();
    assert_eq!(s.network.as_deref(), Some("whoaminet"));
    assert_eq!(s.port, 8000);
    assert_eq!(s.rule.path_prefixes, vec!["/"]);
    assert!(s.sticky);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn v1_rules_with_several_matchers_and_alternatives() {
    let s = parse(&labels(&[
        ("traefik.port", "80"),
        ("traefik.frontend.rule", "Host:a.example,b.example;PathPrefix:/api"),
    ]))
    .unwrap();
    assert_eq!(s.rule.hosts, vec!["a.example", "b.example"]);
    assert_eq!(s.rule.path_prefixes, vec!["/api"]);
    assert!(!s.rule.strip_prefix);
    let s = parse(&labels(&[
        ("traefik.port", "80"),
        ("traefik.frontend.rule", "PathPrefixStrip:/api,/v1"),
    ]))
    .unwrap();
    assert_eq!(s.rule.path_prefixes, vec!["/api", "/v1"]);
    assert!(s.rule.strip_prefix);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn v2_labels() {
    let s = parse(&labels(&[
        (
            "traefik.http.routers.web.rule",
            "Host(`a.example`) && PathPrefix(`/app`)",
        ),
        ("traefik.http.services.web.loadbalancer.server.port", "9000"),
        ("traefik.http.services.web.loadbalancer.sticky.cookie.name", "sess"),
        ("traefik.http.services.web.loadbalancer.sticky.cookie.secure", "true"),
        (
            "traefik.http.services.web.loadbalancer.sticky.cookie.samesite",
            "strict",
        ),
        ("traefik.http.services.web.loadbalancer.sticky.cookie.maxage", "3600"),
        ("traefik.swarm.network", "appnet"),
    ]))
    .unwrap();
    assert_eq!(s.port, 9000);
    assert_eq!(s.rule.hosts, vec!["a.example"]);
    assert_eq!(s.rule.path_prefixes, vec!["/app"]);
    assert_eq!(s.cookie.name.as_deref(), Some("sess"));
    assert_eq!(s.cookie.secure.as_deref(), Some("always"));
    assert_eq!(s.cookie.same_site.as_deref(), Some("strict"));
    assert_eq!(s.cookie.max_age, Some(3600));
    assert_eq!(s.network.as_deref(), Some("appnet"));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn own_labels_take_precedence_and_disagreement_warns() {
    let s = parse(&labels(&[
        ("swarm-sticky.port", "8080"),
        ("traefik.port", "8000"),
        ("swarm-sticky.affinity", "rebalance"),
        ("swarm-sticky.rule.path-prefix", "/x"),
    ]))
    .unwrap();
    assert_eq!(s.port, 8080);
    assert_eq!(s.affinity, Affinity::Rebalance);
    assert_eq!(s.rule.path_prefixes, vec!["/x"]);
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("disagree"));
}

#[test]
fn misspelled_and_unsupported_labels_warn_once_each() {
    let s = parse(&labels(&[
        ("swarm-sticky.prot", "8080"),
        ("swarm-sticky.port", "8080"),
        ("traefik.frontend.entryPoints", "http"),
        ("traefik.http.middlewares.x.stripprefix.prefixes", "/a"),
    ]))
    .unwrap();
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    assert!(s.warnings.iter().any(|w| w.contains("did you mean swarm-sticky.port")));
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("entryPoints") && w.contains("middlewares"))
    );
}

#[test]
fn skips() {
    assert_eq!(parse(&labels(&[("com.example", "x")])), Err(Skip::NotLabelled));
    assert_eq!(
        parse(&labels(&[("traefik.enable", "false"), ("traefik.port", "80")])),
        Err(Skip::Disabled)
    );
    assert!(matches!(parse(&labels(&[("traefik.enable", "true")])), Err(Skip::Invalid(m)) if m.contains("port")));
    assert!(matches!(
        parse(&labels(&[("traefik.port", "http")])),
        Err(Skip::Invalid(_))
    ));
    assert!(
        matches!(parse(&labels(&[("swarm-sticky.port", "80"), ("swarm-sticky.rule.path-prefix", "api")])), Err(Skip::Invalid(m)) if m.contains("/"))
    );
}

#[test]
fn sticky_is_the_default_and_can_be_switched_off() {
    assert!(parse(&labels(&[("traefik.port", "80")])).unwrap().sticky);
    assert!(
        !parse(&labels(&[
            ("swarm-sticky.port", "80"),
            ("swarm-sticky.sticky", "false")
        ]))
        .unwrap()
        .sticky
    );
}

/// Health checks cannot come from labels: they are named in a warning,
/// not accepted silently.
#[test]
fn health_labels_are_warned_about() {
    let s = parse(&labels(&[
        ("swarm-sticky.port", "80"),
        ("swarm-sticky.health.path", "/healthz"),
        ("swarm-sticky.health.interval", "5s"),
    ]))
    .unwrap();
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(
        s.warnings[0].contains("swarm-sticky.health.interval") && s.warnings[0].contains("HEALTHCHECK"),
        "{:?}",
        s.warnings
    );
}

/// A service's own deadlines and upgrades; a bad duration is warned about
/// and the default stays.
#[test]
fn deadlines_and_upgrades_from_labels() {
    let s = parse(&labels(&[
        ("swarm-sticky.port", "80"),
        ("swarm-sticky.request-body-timeout", "2m"),
        ("swarm-sticky.response-timeout", "1500ms"),
        ("swarm-sticky.upgrades", "websocket, H2C"),
    ]))
    .unwrap();
    assert_eq!(s.timeouts.request_body, Some(std::time::Duration::from_secs(120)));
    assert_eq!(s.timeouts.response, Some(std::time::Duration::from_millis(1500)));
    assert_eq!(s.upgrades, ["websocket", "h2c"]);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let s = parse(&labels(&[
        ("swarm-sticky.port", "80"),
        ("swarm-sticky.response-timeout", "soon"),
    ]))
    .unwrap();
    assert_eq!(s.timeouts.response, None);
    assert!(
        s.warnings[0].contains("swarm-sticky.response-timeout"),
        "{:?}",
        s.warnings
    );
    assert_eq!(s.upgrades, ["websocket"]);
}
