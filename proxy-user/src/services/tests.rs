//! Validation of `--backend`, `--cookie-name` and the TOML config.

use super::*;

/// The services of `--backend` and `--cookie-name` flags as `run` gets them.
fn from_args(args: &[&str]) -> Result<ServicesConfig, FieldError> {
    let mut backends = Vec::new();
    let mut cookie_name = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = (*it.next().expect("a value")).to_owned();
        match *flag {
            "--backend" => backends.push(value),
            "--cookie-name" => cookie_name = Some(value),
            other => panic!("no flag {other} here"),
        }
    }
    from_flags(None, &backends, cookie_name.as_deref(), false)
}

/// `--backend NAME=URL` forms one service on PathPrefix:/ with defaults.
#[test]
fn backends_from_flags() {
    let cfg = from_args(&[
        "--backend",
        "a=http://127.0.0.1:8001",
        "--backend",
        "b=http://127.0.0.1:8002/",
    ])
    .unwrap();
    assert_eq!(cfg.services.len(), 1);
    let s = &cfg.services[0];
    assert_eq!(s.name, CLI_SERVICE);
    assert_eq!(s.rule, Rule::default());
    assert_eq!(s.backends[1].addr, "127.0.0.1:8002".parse().unwrap());
    assert_eq!(s.cookie.name, default_cookie_name(CLI_SERVICE));
    assert!(s.cookie.http_only);
    assert_eq!(s.cookie.same_site, SameSite::Lax);
}

/// The default cookie name is `_` plus five hex digits and differs per service.
#[test]
fn default_cookie_name_shape() {
    let a = default_cookie_name("web");
    assert_eq!(a.len(), 6);
    assert!(a.starts_with('_') && a[1..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(a, default_cookie_name("api"));
    assert_eq!(a, default_cookie_name("web"));
}

/// Invalid flags are rejected with the flag named.
#[test]
fn flag_errors_name_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "--backend"),
        (&["--backend", "nourl"], "--backend[0]: \"nourl\" is not NAME=URL"),
        (&["--backend", "a=ftp://x:1"], "--backend[0]"),
        (&["--backend", "a=http://127.0.0.1"], "needs a port"),
        (
            &["--backend", "a=http://127.0.0.1:1", "--backend", "a=http://127.0.0.1:2"],
            "declared twice",
        ),
        (&["--backend", "bad name=http://127.0.0.1:1"], "--backend[0]"),
        (&["--backend", "a=http://127.0.0.1:1/path"], "without a path"),
        (
            &["--backend", "a=http://127.0.0.1:1", "--cookie-name", "bad;name"],
            "--cookie-name: \"bad;name\" is not a valid cookie name",
        ),
    ];
    for (args, needle) in cases {
        let err = from_args(args).expect_err("invalid").to_string();
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

const EXAMPLE: &str = r#"
trusted_proxies = ["127.0.0.1"]
[limits]
header_read_timeout_ms = 500
[[services]]
name = "api"
rule = { path_prefix = "/api", host = "Example.COM" }
backends = [ { name = "a1", url = "http://127.0.0.1:9001", weight = 3 }, { name = "a2", url = "http://127.0.0.1:9002" } ]
cookie = { name = "SID", same_site = "none", secure = "always", max_age = 3600, domain = "example.com", http_only = false }
health = { path = "/healthz", interval_ms = 1000 }
passive_health = { failures = 2, backoff_ms = 500 }
[[services]]
name = "web"
[[services.backends]]
name = "w1"
url = "http://127.0.0.1:9003"
"#;

/// The TOML format parses into the model with defaults filled in.
#[test]
fn toml_services() {
    let cfg = ServicesConfig::from_toml_str(EXAMPLE).unwrap();
    assert_eq!(cfg.trusted_proxies, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(cfg.limits.header_read_timeout, Duration::from_millis(500));
    let api = &cfg.services[0];
    assert_eq!(api.rule.hosts, ["example.com"]);
    assert_eq!(api.backends[0].weight, 3);
    assert_eq!(api.backends[1].weight, 1);
    assert_eq!(api.cookie.same_site, SameSite::None);
    assert_eq!(api.cookie.max_age, Some(Duration::from_secs(3600)));
    assert!(!api.cookie.http_only);
    let h = api.health.as_ref().unwrap();
    assert_eq!(
        (h.path.as_str(), h.timeout, h.expected_status),
        ("/healthz", Duration::from_secs(1), 200)
    );
    assert_eq!(
        api.passive,
        PassiveHealthConfig {
            failures: 2,
            backoff: Duration::from_millis(500)
        }
    );
    let web = &cfg.services[1];
    assert_eq!(web.rule.path_prefixes, ["/"]);
    assert_eq!(web.cookie.name, default_cookie_name("web"));
}

/// The example file shipped in docs/ is valid.
#[test]
fn example_file_is_valid() {
    let text = include_str!("../../../docs/config.example.toml");
    let cfg = ServicesConfig::from_toml_str(text).unwrap();
    assert!(cfg.services.len() >= 2);
}

/// Config errors name the path of the field.
#[test]
fn toml_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            "[[services]]\nname='x'\nbackends=[{name='a', url='http://nope'}]",
            "services[0].backends[0].url",
        ),
        ("[[services]]\nname='x'\nbackends=[]", "services[0].backends"),
        (
            "[[services]]\nname='x'\nbackends=[{name='a',url='http://127.0.0.1:1'}]\n[[services]]\nname='y'\nbackends=[{name='a',url='1'}]",
            "services[1].backends[0].url",
        ),
        (
            "[[services]]\nname='x'\nrule={path_prefix='api'}\nbackends=[{name='a',url='http://127.0.0.1:1'}]",
            "services[0].rule.path_prefix",
        ),
        (
            "[[services]]\nname='x'\ncookie={same_site='sometimes'}\nbackends=[{name='a',url='http://127.0.0.1:1'}]",
            "services[0].cookie.same_site",
        ),
        (
            "[[services]]\nname='x'\nbackends=[{name='a',url='http://127.0.0.1:1',wieght=2}]",
            "--config: unknown field",
        ),
        (
            "[[services]]\nname='x'\ncookie={path=\"/a\\tb\"}\nbackends=[{name='a',url='http://127.0.0.1:1'}]",
            "services[0].cookie.path",
        ),
        (
            "[limits]\nidle_timeout_ms=0\n[[services]]\nname='x'\nbackends=[{name='a',url='http://127.0.0.1:1'}]",
            "limits.idle_timeout_ms",
        ),
        (
            "trusted_proxies=['nope']\n[[services]]\nname='x'\nbackends=[{name='a',url='http://127.0.0.1:1'}]",
            "trusted_proxies[0]",
        ),
        (
            "[[services]]\nname='x'\nbackends=[{name='a',url='http://127.0.0.1:1'}]\n[[services]]\nname='x'\nrule={path_prefix='/b'}\nbackends=[{name='a',url='http://127.0.0.1:1'}]",
            "services[1].name",
        ),
    ];
    for (text, needle) in cases {
        let err = ServicesConfig::from_toml_str(text).expect_err("invalid").to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
}

/// Longest prefix wins, and host rules need the host.
#[test]
fn rule_matching() {
    let r = Rule {
        hosts: vec!["example.com".into()],
        path_prefixes: vec!["/api".into(), "/api/v2".into()],
        strip_prefix: false,
    };
    assert_eq!(r.matched_prefix(Some("example.com"), "/api/x"), Some("/api"));
    assert_eq!(r.matched_prefix(Some("example.com"), "/api/v2/x"), Some("/api/v2"));
    assert_eq!(r.matched_prefix(Some("other"), "/api/x"), None);
    assert_eq!(r.matched_prefix(None, "/api"), None);
    assert_eq!(r.matched_prefix(Some("example.com"), "/ap"), None);
    assert_eq!(r.matched_prefix(Some("example.com"), "/apix"), None);
}

const TLS_SERVICE: &str = "[[services]]\nname='x'\nbackends=[{name='a',url='http://127.0.0.1:1'}]\n";

/// `[services.tls]` becomes the service's HTTPS policy; without the table
/// there is no redirect and no HSTS.
#[test]
fn toml_tls_policy() {
    let text = format!(
        "{TLS_SERVICE}[services.tls]\nredirect=true\nhsts_max_age=31536000\nhsts_include_subdomains=true\nhsts_preload=true\n"
    );
    let cfg = ServicesConfig::from_toml_str(&text).unwrap();
    let tls = &cfg.services[0].tls;
    assert_eq!(
        *tls,
        TlsPolicy {
            redirect_https: true,
            hsts: Some(Hsts {
                max_age: 31_536_000,
                include_subdomains: true,
                preload: true
            }),
            ..Default::default()
        }
    );
    assert_eq!(
        tls.hsts.as_ref().unwrap().header_value(),
        "max-age=31536000; includeSubDomains; preload"
    );
    let cfg = ServicesConfig::from_toml_str(TLS_SERVICE).unwrap();
    assert_eq!(cfg.services[0].tls, TlsPolicy::default());
    assert_eq!(ServicesConfig::single("x", &[]).services[0].tls, TlsPolicy::default());
}

/// `max_age` 0 is accepted (it tells browsers to forget the host), and the
/// header carries only the directives asked for.
#[test]
fn hsts_max_age_zero_and_header_values() {
    let text = format!("{TLS_SERVICE}[services.tls]\nhsts_max_age=0\n");
    let cfg = ServicesConfig::from_toml_str(&text).unwrap();
    let hsts = cfg.services[0].tls.hsts.clone().unwrap();
    assert!(!cfg.services[0].tls.redirect_https);
    assert_eq!(hsts.header_value(), "max-age=0");
    let sub = Hsts {
        max_age: 600,
        include_subdomains: true,
        preload: false,
    };
    assert_eq!(sub.header_value(), "max-age=600; includeSubDomains");
}

/// Preloading follows hstspreload.org's rules; HSTS directives need a
/// max-age; unknown keys are errors, as elsewhere in the file.
#[test]
fn toml_tls_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            "hsts_max_age=31536000\nhsts_preload=true",
            "services[0].tls.hsts_preload: preload needs hsts_include_subdomains",
        ),
        (
            "hsts_max_age=600\nhsts_include_subdomains=true\nhsts_preload=true",
            "services[0].tls.hsts_preload: preload needs hsts_max_age of at least 31536000",
        ),
        (
            "hsts_include_subdomains=true",
            "services[0].tls.hsts_include_subdomains: needs hsts_max_age",
        ),
        ("hsts_preload=false", "services[0].tls.hsts_preload: needs hsts_max_age"),
        ("redirect=true\nhsts=600", "--config: unknown field `hsts`"),
        ("hsts_max_age=-1", "--config"),
    ];
    for (table, needle) in cases {
        let text = format!("{TLS_SERVICE}[services.tls]\n{table}\n");
        let err = ServicesConfig::from_toml_str(&text).expect_err("invalid").to_string();
        assert!(err.contains(needle), "{table}: {err}");
    }
}
