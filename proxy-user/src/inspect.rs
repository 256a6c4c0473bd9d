//! Support tools: `swarm-sticky cookie decode` (what a cookie says and
//! whether this deployment accepts it) and `swarm-sticky check-config`
//! (what a configuration file would do).
//!
//! Both read the same configuration as `run` (through
//! [`crate::config`]), and neither binds a socket or writes a file:
//! decoding never generates a key.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    access_log::rfc3339,
    cookie::{self, CookieError, Keyring},
    services::{SameSite, SecureMode, ServiceConfig, ServicesConfig},
};

/// What a cookie is checked against.
#[derive(Debug, Clone)]
pub struct DecodeConfig {
    /// The configured services (their names, cookie names and Max-Age).
    pub services: Vec<ServiceConfig>,
    /// `--service`: the one service to check against.
    pub service: Option<String>,
    /// `--max-age`: reject cookies older than this (default: the
    /// service's Max-Age).
    pub max_age: Option<u64>,
}

/// Why a cookie could not be examined at all.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Nothing says which service the cookie belongs to.
    #[error("no service to check the cookie against: name it with --service, or give --config/--backend as for `run`")]
    NoService,
}

/// What `cookie decode` found.
#[derive(Debug, Serialize)]
pub struct DecodeReport {
    /// The cookie name, when the input was `name=value`.
    pub cookie_name: Option<String>,
    /// The service whose key and name verified it (or the one tried).
    pub service: Option<String>,
    /// The backend identity it names (unverified when `valid` is false).
    pub backend: Option<String>,
    /// When it was issued (Unix seconds).
    pub issued_at: Option<u64>,
    /// `issued_at` in RFC 3339.
    pub issued_at_utc: Option<String>,
    /// Seconds since it was issued.
    pub age_secs: Option<i64>,
    /// The id of the key it names (hex), and whether this keyring holds it.
    pub key_id: Option<String>,
    /// Whether that key is the current signing key.
    pub signing_key: bool,
    /// Whether `run` would accept it.
    pub valid: bool,
    /// Why not, when not valid.
    pub reason: Option<String>,
}

impl std::fmt::Display for DecodeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        if let Some(name) = &self.cookie_name {
            writeln!(f, "cookie name: {name}")?;
        }
        writeln!(f, "service:     {}", or_dash(&self.service))?;
        let unverified = if self.valid { "" } else { " (unverified)" };
        writeln!(f, "backend:     {}{unverified}", or_dash(&self.backend))?;
        if let (Some(utc), Some(age)) = (&self.issued_at_utc, self.age_secs) {
            writeln!(f, "issued at:   {utc} ({age} s ago){unverified}")?;
        }
        if let Some(id) = &self.key_id {
            let role = if self.signing_key { " (the signing key)" } else { "" };
            writeln!(f, "key id:      {id}{role}")?;
        }
        match &self.reason {
            None => write!(f, "valid:       yes"),
            Some(why) => write!(f, "valid:       no: {why}"),
        }
    }
}

/// Explains a rejection for a person doing support.
fn explain(err: CookieError) -> String {
    match err {
        CookieError::BadTag => {
            "the signature does not verify (edited, signed with another key, or a cookie of another service)".into()
        }
        CookieError::UnknownKey => {
            "signed with a key this keyring does not hold (rotated out, or another cluster's key)".into()
        }
        CookieError::Expired => "expired (older than the Max-Age, or issued in the future)".into(),
        other => other.to_string(),
    }
}

/// `swarm-sticky cookie decode`.
///
/// # Errors
/// When the configuration is invalid, no key can be read, or no service
/// can be named. An invalid cookie is not an error: the report says why.
pub fn decode_cookie(cfg: &DecodeConfig, keyring: &Keyring, input: &str) -> Result<DecodeReport, InspectError> {
    let input = input.trim();
    let (cookie_name, value) = match input.split_once('=') {
        Some((name, value)) => (Some(name.trim().to_owned()), value.trim()),
        None => (None, input),
    };
    let configured = &cfg.services;
    let candidates: Vec<(String, Option<u64>)> = match &cfg.service {
        Some(name) => {
            let max_age = configured
                .iter()
                .find(|s| s.name == *name)
                .and_then(|s| s.cookie.max_age);
            vec![(name.clone(), max_age.map(|d| d.as_secs()))]
        }
        None => configured
            .iter()
            .filter(|s| cookie_name.as_ref().is_none_or(|n| *n == s.cookie.name))
            .map(|s| (s.name.clone(), s.cookie.max_age.map(|d| d.as_secs())))
            .collect(),
    };
    if candidates.is_empty() {
        return Err(InspectError::NoService);
    }
    let now = cookie::unix_now();
    let mut report = DecodeReport {
        cookie_name,
        service: None,
        backend: None,
        issued_at: None,
        issued_at_utc: None,
        age_secs: None,
        key_id: None,
        signing_key: false,
        valid: false,
        reason: None,
    };
    if let Some(url) = value.strip_prefix("http://") {
        report.backend = Some(url.to_owned());
        report.reason = Some(format!(
            "a Traefik v1 cookie naming http://{url}: honoured (and replaced) only while that address is a current backend"
        ));
        return Ok(report);
    }
    let peeked = match cookie::peek(value.as_bytes()) {
        Ok(p) => p,
        Err(err) => {
            report.reason = Some(explain(err));
            return Ok(report);
        }
    };
    let ids = keyring.key_ids();
    report.backend = Some(peeked.backend.clone());
    report.issued_at = Some(peeked.issued_at);
    report.issued_at_utc = Some(rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(peeked.issued_at),
    ));
    report.age_secs = Some(i64::try_from(now).unwrap_or(i64::MAX) - i64::try_from(peeked.issued_at).unwrap_or(0));
    report.key_id = Some(peeked.key_id.iter().map(|b| format!("{b:02x}")).collect());
    report.signing_key = ids.first() == Some(&peeked.key_id);
    // The first candidate that verifies wins; otherwise the most telling
    // reason (expired beats a signature mismatch for another service).
    let mut best: Option<(String, CookieError)> = None;
    for (service, service_max_age) in &candidates {
        let max_age = cfg.max_age.or(*service_max_age);
        match keyring.decode(service, value.as_bytes(), now, max_age) {
            Ok(_) => {
                report.service = Some(service.clone());
                report.valid = true;
                return Ok(report);
            }
            Err(err) => {
                if best.as_ref().is_none_or(|(_, e)| *e == CookieError::BadTag) {
                    best = Some((service.clone(), err));
                }
            }
        }
    }
    if let Some((service, err)) = best {
        report.service = Some(service);
        report.reason = Some(explain(err));
    }
    Ok(report)
}

/// `swarm-sticky check-config`: what a valid configuration would do.
pub fn describe(cfg: &ServicesConfig) -> String {
    let mut out = String::new();
    let n = cfg.services.len();
    let _ = writeln!(
        out,
        "configuration is valid: {n} service{}",
        if n == 1 { "" } else { "s" }
    );
    for svc in &cfg.services {
        describe_service(&mut out, svc);
    }
    let l = &cfg.limits;
    let _ = writeln!(
        out,
        "\nlimits: request head at most {} bytes (431 above), head read timeout {:?} (408), connect timeout {:?}, HTTP/2 idle timeout {:?}, {} idle upstream connections per backend and worker",
        l.max_header_bytes, l.header_read_timeout, l.connect_timeout, l.idle_timeout, l.pool_idle_per_backend
    );
    if cfg.trusted_proxies.is_empty() {
        let _ = writeln!(out, "trusted proxies: none (X-Forwarded-* from clients is replaced)");
    } else {
        let list: Vec<String> = cfg.trusted_proxies.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "trusted proxies: {}", list.join(", "));
    }
    out
}

fn describe_service(out: &mut String, svc: &ServiceConfig) {
    let _ = writeln!(out, "\nservice {:?}: requests matching {}", svc.name, svc.rule);
    let c = &svc.cookie;
    let same_site = c.same_site.as_str();
    let secure = match (c.secure, c.same_site) {
        (_, SameSite::None) | (SecureMode::Always, _) => "always",
        (SecureMode::Auto, _) => "over TLS or a trusted X-Forwarded-Proto: https",
        (SecureMode::Never, _) => "never",
    };
    let max_age = c.max_age.map_or_else(
        || "none (a session cookie)".to_owned(),
        |d| format!("{} s", d.as_secs()),
    );
    let _ = writeln!(
        out,
        "  sticky cookie {}: Path={}{}, SameSite={same_site}, Secure {secure}, Max-Age {max_age}{}",
        c.name,
        c.path,
        if c.http_only { ", HttpOnly" } else { "" },
        c.domain.as_deref().map_or(String::new(), |d| format!(", Domain={d}")),
    );
    let _ = writeln!(out, "  new sessions by smooth weighted round robin over:");
    for b in &svc.backends {
        let note = if b.weight == 0 { " (no new sessions)" } else { "" };
        let _ = writeln!(out, "    {:<20} http://{}  weight {}{note}", b.name, b.addr, b.weight);
    }
    match &svc.health {
        Some(h) => {
            let _ = writeln!(
                out,
                "  active health check: GET {} every {:?}, timeout {:?}, healthy on status {}",
                h.path, h.interval, h.timeout, h.expected_status
            );
        }
        None => {
            let _ = writeln!(out, "  active health check: none");
        }
    }
    let p = &svc.passive;
    let _ = writeln!(
        out,
        "  passive health: {} connect failures in a row take a backend out for {:?}",
        p.failures, p.backoff
    );
}
