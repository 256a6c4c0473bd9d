//! Cross-field validation of a [`ServicesConfig`]: names, uniqueness of
//! services, rules and cookie names, paths, health settings.

use std::collections::HashSet;

use super::{Rule, ServicesConfig};
use crate::config::ConfigError;

pub(super) fn validate_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::field(
            field,
            format!("name {name:?} must be 1-64 characters of [A-Za-z0-9._-]"),
        ))
    }
}

/// Checks a cookie name; `field` is where it came from (the
/// `--cookie-name` flag is checked before it is copied into services, so
/// that its error names the flag).
pub(super) fn validate_cookie_name(field: &str, name: &str) -> Result<(), ConfigError> {
    if is_token(name) {
        Ok(())
    } else {
        Err(ConfigError::field(
            field,
            format!("{name:?} is not a valid cookie name"),
        ))
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks a rule's hosts and prefixes; `taken` holds the (host, prefix)
/// pairs of the services before it, which no other rule may repeat.
fn validate_rule<'a>(
    field: &str,
    rule: &'a Rule,
    taken: &mut HashSet<(Option<&'a str>, &'a str)>,
) -> Result<(), ConfigError> {
    if rule.path_prefixes.is_empty() {
        return Err(ConfigError::field(
            &format!("{field}.path_prefix"),
            "at least one prefix is required",
        ));
    }
    for p in &rule.path_prefixes {
        if !p.starts_with('/') || p.bytes().any(|b| !b.is_ascii_graphic() || matches!(b, b'?' | b'#')) {
            return Err(ConfigError::field(
                &format!("{field}.path_prefix"),
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
            return Err(ConfigError::field(
                &format!("{field}.host"),
                format!("{h:?} is not a lower-case host name"),
            ));
        }
    }
    let hosts: Vec<Option<&str>> = if rule.hosts.is_empty() {
        vec![None]
    } else {
        rule.hosts.iter().map(|h| Some(h.as_str())).collect()
    };
    for host in hosts {
        for prefix in &rule.path_prefixes {
            if !taken.insert((host, prefix.as_str())) {
                return Err(ConfigError::field(
                    field,
                    format!(
                        "another service has the rule {}{prefix}",
                        host.map(|h| format!("host {h}, prefix ")).unwrap_or_default()
                    ),
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn validate(cfg: &ServicesConfig, cookie_flag: bool, docker: bool) -> Result<(), ConfigError> {
    // With Docker discovery the services come from the engine.
    if cfg.services.is_empty() && !docker {
        return Err(ConfigError::field(
            "--backend",
            "no service: give --backend NAME=URL, --config FILE or --docker",
        ));
    }
    if cfg.limits.max_header_bytes < 8192 {
        return Err(ConfigError::field("limits.max_header_bytes", "must be at least 8192"));
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
            return Err(ConfigError::field(field, "must be positive"));
        }
    }
    let mut names = HashSet::new();
    let mut cookies = HashSet::new();
    let mut rules = HashSet::new();
    for (i, svc) in cfg.services.iter().enumerate() {
        let at = |f: &str| format!("services[{i}].{f}");
        validate_name(&at("name"), &svc.name)?;
        if !names.insert(svc.name.as_str()) {
            return Err(ConfigError::field(
                &at("name"),
                format!("{:?} is declared twice", svc.name),
            ));
        }
        validate_rule(&at("rule"), &svc.rule, &mut rules)?;
        if svc.backends.is_empty() {
            return Err(ConfigError::field(&at("backends"), "at least one backend is required"));
        }
        let mut backend_names = HashSet::new();
        for (j, b) in svc.backends.iter().enumerate() {
            validate_name(&at(&format!("backends[{j}].name")), &b.name)?;
            if !backend_names.insert(b.name.as_str()) {
                return Err(ConfigError::field(
                    &at(&format!("backends[{j}].name")),
                    format!("{:?} is declared twice", b.name),
                ));
            }
        }
        let c = &svc.cookie;
        validate_cookie_name(&at("cookie.name"), &c.name)?;
        if !cookies.insert(c.name.as_str()) {
            let hint = if cookie_flag {
                " (--cookie-name applies to every service without cookie.name)"
            } else {
                ""
            };
            return Err(ConfigError::field(
                &at("cookie.name"),
                format!("{:?} is used by two services{hint}", c.name),
            ));
        }
        if !c.path.starts_with('/') || !c.path.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
            return Err(ConfigError::field(
                &at("cookie.path"),
                "must start with / and be visible ASCII without ;",
            ));
        }
        if let Some(d) = &c.domain
            && !is_token(d)
        {
            return Err(ConfigError::field(
                &at("cookie.domain"),
                format!("{d:?} is not a valid domain"),
            ));
        }
        if let Some(h) = &svc.health {
            if !h.path.starts_with('/') {
                return Err(ConfigError::field(&at("health.path"), "must start with /"));
            }
            if h.interval.is_zero() || h.timeout.is_zero() {
                return Err(ConfigError::field(
                    &at("health"),
                    "interval and timeout must be positive",
                ));
            }
            if !(100..=599).contains(&h.expected_status) {
                return Err(ConfigError::field(
                    &at("health.expected_status"),
                    "must be an HTTP status 100-599",
                ));
            }
        }
        if svc.passive.failures == 0 {
            return Err(ConfigError::field(&at("passive_health.failures"), "must be at least 1"));
        }
        for (field, d) in [
            ("limits.request_body_timeout_ms", svc.timeouts.request_body),
            ("limits.response_timeout_ms", svc.timeouts.response),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(ConfigError::field(&at(field), "must be positive"));
            }
        }
        for (j, p) in svc.upgrades.iter().enumerate() {
            if !is_token(p) {
                return Err(ConfigError::field(
                    &at(&format!("upgrades[{j}]")),
                    format!("{p:?} is not a protocol name"),
                ));
            }
        }
    }
    Ok(())
}
