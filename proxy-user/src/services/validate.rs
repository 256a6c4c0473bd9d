//! Validation of the service model, one door for every source: each
//! service on its own ([`validate_service`]: names, rule, backends, cookie,
//! health, deadlines, upgrades, HTTPS policy), what services may not share
//! ([`Claims`]: names, cookie names, rules), and the table-wide limits.
//! The config file and the flags go through [`validate`]; discovered
//! services go through the same checks one by one, so that a bad label
//! skips its service and no other.

use std::collections::HashSet;

use super::{HSTS_PRELOAD_MIN_MAX_AGE, ServiceConfig, ServicesConfig, TlsPolicy};
use crate::error::FieldError;

pub(super) fn validate_name(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("name {name:?} must be 1-64 characters of [A-Za-z0-9._-]"),
        ))
    }
}

/// Checks a cookie name; `field` is where it came from (the
/// `--cookie-name` flag is checked before it is copied into services, so
/// that its error names the flag).
pub(super) fn validate_cookie_name(field: &str, name: &str) -> Result<(), FieldError> {
    if is_token(name) {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("{name:?} is not a valid cookie name")))
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// What no two services may share: names, cookie names, and (host, path
/// prefix) pairs of their rules.
#[derive(Debug, Default)]
pub struct Claims {
    names: HashSet<String>,
    cookies: HashSet<String>,
    rules: HashSet<(Option<String>, String)>,
}

impl Claims {
    /// Claims what `svc` uses, unless a service claimed before has some of
    /// it; the error names `svc`'s field (through `at`).
    ///
    /// # Errors
    /// The first name, cookie name or rule already claimed.
    pub fn claim(&mut self, at: impl Fn(&str) -> String, svc: &ServiceConfig) -> Result<(), FieldError> {
        if self.names.contains(&svc.name) {
            return Err(FieldError::new(
                &at("name"),
                format!("{:?} is declared twice", svc.name),
            ));
        }
        if self.cookies.contains(&svc.cookie.name) {
            return Err(FieldError::new(
                &at("cookie.name"),
                format!("{:?} is used by two services", svc.cookie.name),
            ));
        }
        let hosts: Vec<Option<String>> = if svc.rule.hosts.is_empty() {
            vec![None]
        } else {
            svc.rule.hosts.iter().cloned().map(Some).collect()
        };
        let pairs: Vec<(Option<String>, String)> = hosts
            .iter()
            .flat_map(|h| svc.rule.path_prefixes.iter().map(move |p| (h.clone(), p.clone())))
            .collect();
        if let Some((host, prefix)) = pairs.iter().find(|p| self.rules.contains(*p)) {
            let host = host.as_ref().map(|h| format!("host {h}, prefix ")).unwrap_or_default();
            return Err(FieldError::new(
                &at("rule"),
                format!("another service has the rule {host}{prefix}"),
            ));
        }
        self.names.insert(svc.name.clone());
        self.cookies.insert(svc.cookie.name.clone());
        self.rules.extend(pairs);
        Ok(())
    }
}

/// Checks one service on its own; `at` names a field of it (e.g.
/// `services[1].cookie.name`, or `labels.cookie.name` for a discovered
/// service). A service without backends passes: a discovered one may have
/// no running task for a while.
///
/// # Errors
/// The first field that is not acceptable.
pub fn validate_service(at: impl Fn(&str) -> String, svc: &ServiceConfig) -> Result<(), FieldError> {
    validate_name(&at("name"), &svc.name)?;
    validate_rule(&at, svc)?;
    let mut backend_names = HashSet::new();
    for (j, b) in svc.backends.iter().enumerate() {
        validate_name(&at(&format!("backends[{j}].name")), &b.name)?;
        if !backend_names.insert(b.name.as_str()) {
            return Err(FieldError::new(
                &at(&format!("backends[{j}].name")),
                format!("{:?} is declared twice", b.name),
            ));
        }
    }
    let c = &svc.cookie;
    validate_cookie_name(&at("cookie.name"), &c.name)?;
    if !c.path.starts_with('/') || !c.path.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
        return Err(FieldError::new(
            &at("cookie.path"),
            "must start with / and be visible ASCII without ;",
        ));
    }
    if let Some(d) = &c.domain
        && !is_token(d)
    {
        return Err(FieldError::new(
            &at("cookie.domain"),
            format!("{d:?} is not a valid domain"),
        ));
    }
    if let Some(h) = &svc.health {
        if !h.path.starts_with('/') {
            return Err(FieldError::new(&at("health.path"), "must start with /"));
        }
        if h.interval.is_zero() || h.timeout.is_zero() {
            return Err(FieldError::new(&at("health"), "interval and timeout must be positive"));
        }
        if !(100..=599).contains(&h.expected_status) {
            return Err(FieldError::new(
                &at("health.expected_status"),
                "must be an HTTP status 100-599",
            ));
        }
    }
    if svc.passive.failures == 0 {
        return Err(FieldError::new(&at("passive_health.failures"), "must be at least 1"));
    }
    for (field, d) in [
        ("limits.request_body_timeout_ms", svc.timeouts.request_body),
        ("limits.response_timeout_ms", svc.timeouts.response),
    ] {
        if d.is_some_and(|d| d.is_zero()) {
            return Err(FieldError::new(&at(field), "must be positive"));
        }
    }
    for (j, p) in svc.upgrades.iter().enumerate() {
        if !is_token(p) {
            return Err(FieldError::new(
                &at(&format!("upgrades[{j}]")),
                format!("{p:?} is not a protocol name"),
            ));
        }
    }
    validate_tls(&at, &svc.tls)
}

/// Checks HSTS preloading against hstspreload.org's rules, which refuse a
/// host that asks for it otherwise. A `max_age` of 0 is fine: it tells
/// browsers to forget the host.
fn validate_tls(at: &impl Fn(&str) -> String, tls: &TlsPolicy) -> Result<(), FieldError> {
    let Some(hsts) = tls.hsts.as_ref().filter(|h| h.preload) else {
        return Ok(());
    };
    if !hsts.include_subdomains {
        return Err(FieldError::new(
            &at("tls.hsts_preload"),
            "preload needs hsts_include_subdomains (hstspreload.org)",
        ));
    }
    if hsts.max_age < HSTS_PRELOAD_MIN_MAX_AGE {
        return Err(FieldError::new(
            &at("tls.hsts_preload"),
            format!(
                "preload needs hsts_max_age of at least {HSTS_PRELOAD_MIN_MAX_AGE} (one year, hstspreload.org), not {}",
                hsts.max_age
            ),
        ));
    }
    Ok(())
}

/// Checks a rule's hosts and prefixes.
fn validate_rule(at: &impl Fn(&str) -> String, svc: &ServiceConfig) -> Result<(), FieldError> {
    let rule = &svc.rule;
    if rule.path_prefixes.is_empty() {
        return Err(FieldError::new(
            &at("rule.path_prefix"),
            "at least one prefix is required",
        ));
    }
    for p in &rule.path_prefixes {
        if !p.starts_with('/') || p.bytes().any(|b| !b.is_ascii_graphic() || matches!(b, b'?' | b'#')) {
            return Err(FieldError::new(
                &at("rule.path_prefix"),
                format!("{p:?} must start with / and be a path without spaces, ? or #"),
            ));
        }
    }
    for h in &rule.hosts {
        let ok = !h.is_empty()
            && !h.ends_with('.')
            && h.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_'));
        if !ok {
            return Err(FieldError::new(
                &at("rule.host"),
                format!("{h:?} is not a lower-case host name"),
            ));
        }
    }
    Ok(())
}

/// Checks a whole configuration (the file and the flags): the limits,
/// every service, and what they may not share.
pub(super) fn validate(cfg: &ServicesConfig, cookie_flag: bool, docker: bool) -> Result<(), FieldError> {
    // With Docker discovery the services come from the engine.
    if cfg.services.is_empty() && !docker {
        return Err(FieldError::new(
            "--backend",
            "no service: give --backend NAME=URL, --config FILE or --docker",
        ));
    }
    if cfg.limits.max_header_bytes < 8192 {
        return Err(FieldError::new("limits.max_header_bytes", "must be at least 8192"));
    }
    let l = &cfg.limits;
    for (field, d) in [
        ("limits.header_read_timeout_ms", l.header_read_timeout),
        ("limits.connect_timeout_ms", l.connect_timeout),
        ("limits.idle_timeout_ms", l.idle_timeout),
        ("limits.request_body_timeout_ms", l.request_body_timeout),
        ("limits.response_timeout_ms", l.response_timeout),
    ] {
        if d.is_zero() {
            return Err(FieldError::new(field, "must be positive"));
        }
    }
    let mut claims = Claims::default();
    for (i, svc) in cfg.services.iter().enumerate() {
        let at = |f: &str| format!("services[{i}].{f}");
        validate_service(at, svc)?;
        // A discovered service may have no task for a while; a configured
        // one without a backend is a mistake.
        if svc.backends.is_empty() {
            return Err(FieldError::new(&at("backends"), "at least one backend is required"));
        }
        claims.claim(at, svc).map_err(|mut err| {
            if cookie_flag && err.field.ends_with("cookie.name") {
                err.message
                    .push_str(" (--cookie-name applies to every service without cookie.name)");
            }
            err
        })?;
    }
    Ok(())
}
