//! The TOML format of `--config` (documented in `docs/config.example.toml`)
//! and its conversion to [`ServicesConfig`]. Unknown keys are errors, so a
//! typo never silently falls back to a default.

use std::{net::IpAddr, time::Duration};

use serde::Deserialize;

use super::{
    AcmeRequest, BackendConfig, CookieConfig, CookieOverrides, DEFAULT_UPGRADE, HealthCheckConfig, Hsts, Limits,
    PassiveHealthConfig, Rule, ServiceConfig, ServiceTimeouts, ServicesConfig, TlsPolicy, acme_name, parse_backend_url,
};
use crate::error::FieldError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    services: Vec<FileService>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    header_read_timeout_ms: Option<u64>,
    max_header_bytes: Option<usize>,
    connect_timeout_ms: Option<u64>,
    pool_idle_per_backend: Option<usize>,
    idle_timeout_ms: Option<u64>,
    request_body_timeout_ms: Option<u64>,
    response_timeout_ms: Option<u64>,
}

/// The deadlines a service may set for itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServiceLimits {
    request_body_timeout_ms: Option<u64>,
    response_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileService {
    name: String,
    #[serde(default)]
    rule: FileRule,
    #[serde(default)]
    backends: Vec<FileBackend>,
    #[serde(default)]
    cookie: FileCookie,
    health: Option<FileHealth>,
    #[serde(default)]
    passive_health: FilePassive,
    #[serde(default)]
    limits: FileServiceLimits,
    upgrades: Option<Vec<String>>,
    #[serde(default)]
    tls: FileTls,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    path_prefix: Option<OneOrMany>,
    host: Option<OneOrMany>,
    #[serde(default)]
    strip_prefix: bool,
}

/// `"a"` or `["a", "b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(v) => vec![v],
            Self::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBackend {
    name: String,
    url: String,
    #[serde(default = "one")]
    weight: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCookie {
    name: Option<String>,
    path: Option<String>,
    http_only: Option<bool>,
    same_site: Option<String>,
    secure: Option<String>,
    max_age: Option<u64>,
    domain: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHealth {
    path: Option<String>,
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    expected_status: Option<u16>,
}

/// `[services.tls]`: redirect to HTTPS, HSTS and ACME.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    #[serde(default)]
    redirect: bool,
    /// A certificate for the rule's hosts.
    #[serde(default)]
    acme: bool,
    /// A certificate for these names instead.
    acme_domains: Option<Vec<String>>,
    hsts_max_age: Option<u64>,
    hsts_include_subdomains: Option<bool>,
    hsts_preload: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePassive {
    failures: Option<u32>,
    backoff_ms: Option<u64>,
}

/// Parses the file; `cookie_flag` (from `--cookie-name`) names the cookie
/// of services that set none. Cross-field checks happen in `validate`.
pub(super) fn parse(text: &str, cookie_flag: Option<&str>) -> Result<ServicesConfig, FieldError> {
    let raw: FileConfig = toml::from_str(text).map_err(|e| {
        let msg = e.message().to_owned();
        FieldError::new(
            "--config",
            format!(
                "{msg} ({})",
                e.span().map_or_else(String::new, |s| format!("at byte {}", s.start))
            ),
        )
    })?;
    let mut trusted_proxies = Vec::new();
    for (i, p) in raw.trusted_proxies.iter().enumerate() {
        let ip = p
            .parse::<IpAddr>()
            .map_err(|_| FieldError::new(&format!("trusted_proxies[{i}]"), format!("{p:?} is not an IP address")))?;
        trusted_proxies.push(ip);
    }
    let d = Limits::default();
    let l = raw.limits;
    let limits = Limits {
        header_read_timeout: l
            .header_read_timeout_ms
            .map_or(d.header_read_timeout, Duration::from_millis),
        max_header_bytes: l.max_header_bytes.unwrap_or(d.max_header_bytes),
        connect_timeout: l.connect_timeout_ms.map_or(d.connect_timeout, Duration::from_millis),
        pool_idle_per_backend: l.pool_idle_per_backend.unwrap_or(d.pool_idle_per_backend),
        idle_timeout: l.idle_timeout_ms.map_or(d.idle_timeout, Duration::from_millis),
        request_body_timeout: l
            .request_body_timeout_ms
            .map_or(d.request_body_timeout, Duration::from_millis),
        response_timeout: l.response_timeout_ms.map_or(d.response_timeout, Duration::from_millis),
    };
    let mut services = Vec::new();
    for (i, s) in raw.services.into_iter().enumerate() {
        services.push(service(i, s, cookie_flag)?);
    }
    Ok(ServicesConfig {
        services,
        trusted_proxies,
        limits,
    })
}

fn service(i: usize, s: FileService, cookie_flag: Option<&str>) -> Result<ServiceConfig, FieldError> {
    let at = |f: &str| format!("services[{i}].{f}");
    let mut backends = Vec::new();
    for (j, b) in s.backends.into_iter().enumerate() {
        let addr = parse_backend_url(&at(&format!("backends[{j}].url")), &b.url)?;
        backends.push(BackendConfig {
            name: b.name,
            addr,
            weight: b.weight,
            via: None,
            down: None,
            task: None,
        });
    }
    let mut cookie = CookieConfig::for_service(&s.name);
    let c = s.cookie;
    let overrides = CookieOverrides {
        name: c.name.or_else(|| cookie_flag.map(str::to_owned)),
        path: c.path,
        domain: c.domain,
        http_only: c.http_only,
        same_site: c.same_site,
        secure: c.secure,
        max_age: c.max_age,
    };
    if let Some((field, problem)) = overrides.apply(&mut cookie).into_iter().next() {
        return Err(FieldError::new(&at(&format!("cookie.{field}")), problem));
    }
    let health = s.health.map(|h| HealthCheckConfig {
        path: h.path.unwrap_or_else(|| "/".to_owned()),
        interval: Duration::from_millis(h.interval_ms.unwrap_or(5000)),
        timeout: Duration::from_millis(h.timeout_ms.unwrap_or(1000)),
        expected_status: h.expected_status.unwrap_or(200),
    });
    let dp = PassiveHealthConfig::default();
    let passive = PassiveHealthConfig {
        failures: s.passive_health.failures.unwrap_or(dp.failures),
        backoff: s.passive_health.backoff_ms.map_or(dp.backoff, Duration::from_millis),
    };
    let rule = Rule {
        hosts: s
            .rule
            .host
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        path_prefixes: s
            .rule
            .path_prefix
            .map_or_else(|| vec!["/".to_owned()], OneOrMany::into_vec),
        strip_prefix: s.rule.strip_prefix,
    };
    let timeouts = ServiceTimeouts {
        request_body: s.limits.request_body_timeout_ms.map(Duration::from_millis),
        response: s.limits.response_timeout_ms.map(Duration::from_millis),
    };
    let upgrades = s.upgrades.map_or_else(
        || vec![DEFAULT_UPGRADE.to_owned()],
        |u| u.iter().map(|p| p.to_ascii_lowercase()).collect(),
    );
    let tls = tls(&at, s.tls)?;
    Ok(ServiceConfig {
        name: s.name,
        rule,
        backends,
        cookie,
        health,
        passive,
        slot_affinity: false,
        waiting_slots: Vec::new(),
        timeouts,
        upgrades,
        tls,
    })
}

/// `[services.tls]` → the policy; the HSTS directives mean nothing without
/// `hsts_max_age`, so setting one alone is an error rather than ignored.
fn tls(at: &impl Fn(&str) -> String, t: FileTls) -> Result<TlsPolicy, FieldError> {
    let hsts = match t.hsts_max_age {
        Some(max_age) => Some(Hsts {
            max_age,
            include_subdomains: t.hsts_include_subdomains.unwrap_or(false),
            preload: t.hsts_preload.unwrap_or(false),
        }),
        None => {
            for (field, set) in [
                ("hsts_include_subdomains", t.hsts_include_subdomains),
                ("hsts_preload", t.hsts_preload),
            ] {
                if set.is_some() {
                    return Err(FieldError::new(&at(&format!("tls.{field}")), "needs hsts_max_age"));
                }
            }
            None
        }
    };
    let acme = match (t.acme, t.acme_domains) {
        (_, Some(names)) => {
            let names = names
                .iter()
                .map(|n| acme_name(n))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| FieldError::new(&at("tls.acme_domains"), e))?;
            if names.is_empty() {
                return Err(FieldError::new(&at("tls.acme_domains"), "names no domain"));
            }
            AcmeRequest::Certificates(vec![names])
        }
        (true, None) => AcmeRequest::RuleHosts,
        (false, None) => AcmeRequest::None,
    };
    Ok(TlsPolicy {
        redirect_https: t.redirect,
        hsts,
        acme,
    })
}
