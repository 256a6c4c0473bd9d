//! Label parsing: the tutorial's labels, the v2 and own spellings, warnings.

use std::collections::BTreeMap;

use super::*;
use crate::services::{AcmeRequest, Hsts};

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
        ("traefik.frontend.passHostHeader", "true"),
        ("traefik.http.middlewares.x.stripprefix.prefixes", "/a"),
    ]))
    .unwrap();
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    assert!(s.warnings.iter().any(|w| w.contains("did you mean swarm-sticky.port")));
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("passHostHeader") && w.contains("middlewares"))
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

/// The HTTPS policy and warnings of a service with `pairs` (and a port).
fn tls_of(pairs: &[(&str, &str)]) -> (TlsPolicy, Vec<String>) {
    let mut all = vec![("swarm-sticky.port", "80")];
    all.extend_from_slice(pairs);
    let s = parse(&labels(&all)).unwrap();
    (s.tls, s.warnings)
}

fn hsts(max_age: u64, include_subdomains: bool, preload: bool) -> Option<Hsts> {
    Some(Hsts {
        max_age,
        include_subdomains,
        preload,
    })
}

/// Each spelling of redirect and HSTS gives the same policy, without
/// warnings; the labels that choose listeners are recognised.
#[test]
fn tls_spellings() {
    let full = TlsPolicy {
        redirect_https: true,
        hsts: hsts(31_536_000, true, true),
        ..Default::default()
    };
    let spellings: &[&[(&str, &str)]] = &[
        &[
            ("swarm-sticky.tls", "true"),
            ("swarm-sticky.tls.redirect", "true"),
            ("swarm-sticky.tls.hsts", "31536000"),
            ("swarm-sticky.tls.hsts-include-subdomains", "true"),
            ("swarm-sticky.tls.hsts-preload", "true"),
        ],
        &[
            ("traefik.http.routers.web.tls", "true"),
            ("traefik.http.routers.web.entrypoints", "web,websecure"),
            ("traefik.http.routers.web.middlewares", "to-https@docker, sts"),
            ("traefik.http.middlewares.to-https.redirectscheme.scheme", "https"),
            ("traefik.http.middlewares.to-https.redirectscheme.permanent", "true"),
            ("traefik.http.middlewares.sts.headers.stsSeconds", "31536000"),
            ("traefik.http.middlewares.sts.headers.stsIncludeSubdomains", "true"),
            ("traefik.http.middlewares.sts.headers.stspreload", "true"),
        ],
        &[
            ("traefik.frontend.entryPoints", "http,https"),
            ("traefik.frontend.redirect.entryPoint", "https"),
            ("traefik.frontend.headers.STSSeconds", "31536000"),
            ("traefik.frontend.headers.STSIncludeSubdomains", "true"),
            ("traefik.frontend.headers.STSPreload", "true"),
        ],
        &[
            ("traefik.frontend.headers.SSLRedirect", "true"),
            ("traefik.frontend.headers.STSSeconds", "31536000"),
            ("traefik.frontend.headers.STSIncludeSubdomains", "true"),
            ("traefik.frontend.headers.STSPreload", "true"),
        ],
    ];
    for pairs in spellings {
        let (tls, warnings) = tls_of(pairs);
        // v1's https entry point also asks for certificates (below).
        let tls = TlsPolicy {
            acme: AcmeRequest::None,
            ..tls
        };
        assert_eq!(tls, full, "{pairs:?}");
        assert!(warnings.is_empty(), "{pairs:?}: {warnings:?}");
    }
    assert_eq!(tls_of(&[]), (TlsPolicy::default(), Vec::new()));
}

/// Traefik v2 middlewares count only when a router of the service names
/// them; a named middleware of another kind is warned about as before.
#[test]
fn tls_v2_middlewares_must_be_attached() {
    let (tls, warnings) = tls_of(&[
        ("traefik.http.middlewares.to-https.redirectscheme.scheme", "https"),
        ("traefik.http.middlewares.sts.headers.stsSeconds", "600"),
    ]);
    assert_eq!(tls, TlsPolicy::default());
    assert!(warnings.is_empty(), "{warnings:?}");
    let (tls, warnings) = tls_of(&[
        ("traefik.http.routers.web.middlewares", "strip@docker,sts@file"),
        ("traefik.http.middlewares.strip.stripprefix.prefixes", "/a"),
        ("traefik.http.middlewares.sts.headers.stsSeconds", "600"),
    ]);
    assert_eq!(tls.hsts, hsts(600, false, false));
    assert_eq!(
        warnings,
        ["labels recognised but not supported (ignored): traefik.http.middlewares.strip.stripprefix.prefixes"]
    );
}

/// Each spelling of automatic certificates, the first that says anything
/// winning; `tls.options` is warned about.
#[test]
fn tls_acme_spellings() {
    let acme = |pairs: &[(&str, &str)]| {
        let (tls, warnings) = tls_of(pairs);
        (tls.acme, warnings)
    };
    let certs = |c: &[&[&str]]| {
        AcmeRequest::Certificates(c.iter().map(|n| n.iter().map(|s| (*s).to_owned()).collect()).collect())
    };
    assert_eq!(
        acme(&[("swarm-sticky.tls.acme", "true")]),
        (AcmeRequest::RuleHosts, vec![])
    );
    assert_eq!(
        acme(&[("swarm-sticky.tls.acme", "A.example.com, *.example.com")]),
        (certs(&[&["a.example.com", "*.example.com"]]), vec![])
    );
    assert_eq!(
        acme(&[
            ("swarm-sticky.tls.acme", "false"),
            ("traefik.http.routers.web.tls.certresolver", "le")
        ]),
        (AcmeRequest::None, vec![])
    );
    let (got, warnings) = acme(&[
        ("traefik.http.routers.web.tls", "true"),
        ("traefik.http.routers.web.tls.certresolver", "le"),
        ("traefik.http.routers.web.tls.domains[0].main", "example.com"),
        (
            "traefik.http.routers.web.tls.domains[0].sans",
            "*.example.com,www.example.com",
        ),
        ("traefik.http.routers.web.tls.domains[1].main", "other.test"),
        ("traefik.http.routers.web.tls.options", "modern@file"),
    ]);
    assert_eq!(
        got,
        certs(&[&["example.com", "*.example.com", "www.example.com"], &["other.test"]])
    );
    assert_eq!(
        warnings,
        ["traefik.http.routers.web.tls.options ignored: TLS options are set for every listener (--tls-min-version)"]
    );
    assert_eq!(
        acme(&[("traefik.http.routers.web.tls.certresolver", "le")]),
        (AcmeRequest::RuleHosts, vec![])
    );
    assert_eq!(
        acme(&[("traefik.frontend.entryPoints", "http,https")]),
        (AcmeRequest::RuleHosts, vec![])
    );
    assert_eq!(
        acme(&[("traefik.frontend.entryPoints", "http")]),
        (AcmeRequest::None, vec![])
    );
    let (got, warnings) = acme(&[("swarm-sticky.tls.acme", "10.0.0.1")]);
    assert_eq!(got, AcmeRequest::None);
    assert!(
        warnings[0].starts_with("swarm-sticky.tls.acme: \"10.0.0.1\" is not a DNS name"),
        "{warnings:?}"
    );
}

/// Own labels win over Traefik v2, which wins over v1; each disagreement
/// is a warning.
#[test]
fn tls_precedence() {
    let (tls, warnings) = tls_of(&[
        ("swarm-sticky.tls.redirect", "false"),
        ("traefik.frontend.headers.SSLRedirect", "true"),
        ("swarm-sticky.tls.hsts", "600"),
        ("traefik.frontend.headers.STSSeconds", "600"),
    ]);
    assert_eq!(
        tls,
        TlsPolicy {
            redirect_https: false,
            hsts: hsts(600, false, false),
            ..Default::default()
        }
    );
    assert_eq!(
        warnings,
        [
            "redirect: swarm-sticky.tls.redirect=false and traefik.frontend.headers.SSLRedirect=true disagree; \
             using swarm-sticky.tls.redirect"
        ]
    );
    let (tls, warnings) = tls_of(&[
        ("traefik.http.routers.web.middlewares", "sts"),
        ("traefik.http.middlewares.sts.headers.stsSeconds", "300"),
        ("traefik.frontend.headers.STSSeconds", "600"),
    ]);
    assert_eq!(tls.hsts, hsts(300, false, false));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("hsts: traefik.http.middlewares.sts.headers.sts*=")
            && warnings[0].ends_with("disagree; using traefik.http.middlewares.sts.headers.sts*"),
        "{warnings:?}"
    );
}

/// A value of the wrong kind is named and ignored; directives without a
/// max-age and redirects elsewhere than https are ignored with a warning.
#[test]
fn tls_bad_values_are_warned_about() {
    type Labelled = &'static [(&'static str, &'static str)];
    let cases: &[(Labelled, TlsPolicy, &str)] = &[
        (
            &[("swarm-sticky.tls.hsts", "1y")],
            TlsPolicy::default(),
            "swarm-sticky.tls.hsts: \"1y\" is not a number of seconds; ignored",
        ),
        (
            &[("swarm-sticky.tls.redirect", "please")],
            TlsPolicy::default(),
            "swarm-sticky.tls.redirect: \"please\" is not true or false; ignored",
        ),
        (
            &[
                ("traefik.frontend.headers.STSSeconds", "600"),
                ("traefik.frontend.headers.STSIncludeSubdomains", "sure"),
            ],
            TlsPolicy {
                redirect_https: false,
                hsts: hsts(600, false, false),
                ..Default::default()
            },
            "traefik.frontend.headers.STSIncludeSubdomains: \"sure\" is not true or false; ignored",
        ),
        (
            &[("swarm-sticky.tls.hsts-preload", "true")],
            TlsPolicy::default(),
            "swarm-sticky.tls.hsts-preload ignored: it has no effect without swarm-sticky.tls.hsts",
        ),
        (
            &[("traefik.frontend.redirect.entryPoint", "http")],
            TlsPolicy::default(),
            "traefik.frontend.redirect.entryPoint: \"http\" is not supported, only a redirect to https; ignored",
        ),
        (
            &[
                ("traefik.http.routers.r.middlewares", "m"),
                ("traefik.http.middlewares.m.redirectscheme.scheme", "http"),
            ],
            TlsPolicy::default(),
            "traefik.http.middlewares.m.redirectscheme.scheme: \"http\" is not supported, only a redirect to https; ignored",
        ),
        (
            &[("swarm-sticky.tls", "false")],
            TlsPolicy::default(),
            "swarm-sticky.tls=false has no effect: every service is served on every listener, plain and TLS",
        ),
        (
            &[("swarm-sticky.tls.hts", "600")],
            TlsPolicy::default(),
            "swarm-sticky.tls.hts is not a known label; did you mean swarm-sticky.tls.hsts?",
        ),
    ];
    for (pairs, expected, warning) in cases {
        let (tls, warnings) = tls_of(pairs);
        assert_eq!(tls, *expected, "{pairs:?}");
        assert_eq!(warnings, [*warning], "{pairs:?}");
    }
}

/// Traefik sends no HSTS header for 0 seconds; swarm-sticky's own label
/// sends `max-age=0`, which tells browsers to forget the host.
#[test]
fn tls_zero_seconds() {
    assert_eq!(tls_of(&[("traefik.frontend.headers.STSSeconds", "0")]).0.hsts, None);
    assert_eq!(tls_of(&[("swarm-sticky.tls.hsts", "0")]).0.hsts, hsts(0, false, false));
}
