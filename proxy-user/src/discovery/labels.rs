//! Service labels → what swarm-sticky should do with a Swarm service.
//!
//! Three spellings are read, in this order of precedence when they
//! disagree (each disagreement is a warning):
//!
//! 1. swarm-sticky's own namespace, the preferred one:
//!    `swarm-sticky.enable`, `.network`, `.port`, `.rule.host`,
//!    `.rule.path-prefix`, `.weight`, `.affinity` (`same-slot` | `rebalance`),
//!    `.sticky`, `.cookie.name|path|domain|secure|http-only|same-site|max-age`;
//! 2. Traefik v2/v3: `traefik.http.routers.<r>.rule` (`Host(`…`)`,
//!    `PathPrefix(`…`)`, joined by `&&`), `traefik.http.services.<s>.loadbalancer.server.port`,
//!    `….loadbalancer.sticky.cookie[.name|.secure|.httponly|.samesite|.maxage|.path]`,
//!    `traefik.swarm.network`, `traefik.docker.network`;
//! 3. Traefik v1 (the classic tutorial): `traefik.enable`, `traefik.port`,
//!    `traefik.docker.network`, `traefik.frontend.rule` (`PathPrefix:/x`,
//!    `Host:a.example`, several joined by `;`, alternatives by `,`),
//!    `traefik.backend.loadbalancer.stickiness[.cookieName]`, `traefik.backend.weight`,
//!    `traefik.backend` (it only names the cookie: a service with v1 labels
//!    keeps the cookie name Traefik v1 gave it, see [`super::traefik_v1`]).
//!
//! A label that is recognised but not supported, a misspelled
//! `swarm-sticky.*` key, and contradictory values each give one warning for
//! the service instead of being ignored silently. This module is pure: it
//! sees only the label map.

use std::collections::BTreeMap;

use self::{
    pick::{closest, parse_bool, pick},
    rules::{parse_v1_rule, parse_v2_rule},
};

/// How a pinned client moves after a rolling update replaced its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Affinity {
    /// To the replacement task in the same slot (the default).
    #[default]
    SameSlot,
    /// Like a new session: a normal pick.
    Rebalance,
}

/// Cookie settings from labels; `None` leaves the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieLabels {
    /// Cookie name.
    pub name: Option<String>,
    /// `Path` attribute.
    pub path: Option<String>,
    /// `Domain` attribute.
    pub domain: Option<String>,
    /// Force `Secure`.
    pub secure: Option<bool>,
    /// `HttpOnly`.
    pub http_only: Option<bool>,
    /// `SameSite` (`Lax`, `Strict`, `None`).
    pub same_site: Option<String>,
    /// `Max-Age` in seconds.
    pub max_age: Option<u64>,
}

/// A routing rule: every listed matcher kind must match; within a kind,
/// any of the values may.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleLabels {
    /// Host names (empty: any host).
    pub hosts: Vec<String>,
    /// Path prefixes (empty: `/`).
    pub path_prefixes: Vec<String>,
    /// Strip the matched prefix before forwarding (`PathPrefixStrip`).
    pub strip_prefix: bool,
}

/// What the labels of one service ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLabels {
    /// Network (name or ID) whose task addresses to use; `None`: the
    /// service's only network.
    pub network: Option<String>,
    /// Backend port on the tasks.
    pub port: u16,
    /// Routing rule.
    pub rule: RuleLabels,
    /// Whether sessions stick (a cookie is set).
    pub sticky: bool,
    /// Cookie settings.
    pub cookie: CookieLabels,
    /// Weight of each task (default 1).
    pub weight: u32,
    /// What a pinned session does after its task was replaced.
    pub affinity: Affinity,
    /// Set when Traefik v1 labels select the service: without a cookie name
    /// in the labels, the cookie keeps the name Traefik v1 gave it.
    pub traefik_v1: Option<TraefikV1>,
    /// One line per problem found.
    pub warnings: Vec<String>,
}

/// What the Traefik v1 labels say beyond routing (for its cookie name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraefikV1 {
    /// The `traefik.backend` label (default: the service name).
    pub backend: Option<String>,
}

/// Why a service is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// No label of ours or Traefik's: not meant for us.
    NotLabelled,
    /// `enable=false`.
    Disabled,
    /// Labelled, but unusable; the message says why.
    Invalid(String),
}

const V1_KNOWN: [&str; 8] = [
    "traefik.enable",
    "traefik.port",
    "traefik.docker.network",
    "traefik.frontend.rule",
    "traefik.backend.loadbalancer.stickiness",
    "traefik.backend.loadbalancer.stickiness.cookieName",
    "traefik.backend.weight",
    "traefik.backend",
];

const OWN_KEYS: [&str; 17] = [
    "enable",
    "network",
    "port",
    "rule.host",
    "rule.path-prefix",
    "rule.strip-prefix",
    "weight",
    "affinity",
    "sticky",
    "cookie.name",
    "cookie.path",
    "cookie.domain",
    "cookie.secure",
    "cookie.http-only",
    "cookie.same-site",
    "cookie.max-age",
    "backend",
];

/// Reads the labels of one service.
///
/// # Errors
/// [`Skip`] when the service is not for us, disabled, or unusable.
pub fn parse(labels: &BTreeMap<String, String>) -> Result<ServiceLabels, Skip> {
    let ours: BTreeMap<&str, &str> = labels
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("swarm-sticky.").map(|k| (k, v.as_str())))
        .collect();
    let traefik: BTreeMap<&str, &str> = labels
        .iter()
        .filter(|(k, _)| k.starts_with("traefik."))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if ours.is_empty() && traefik.is_empty() {
        return Err(Skip::NotLabelled);
    }
    let mut warnings = Vec::new();

    // Unknown keys of our own namespace: probably misspelled.
    for key in ours.keys() {
        if !OWN_KEYS.contains(key) && !key.starts_with("health.") {
            let hint = closest(key)
                .map(|k| format!("; did you mean swarm-sticky.{k}?"))
                .unwrap_or_default();
            warnings.push(format!("swarm-sticky.{key} is not a known label{hint}"));
        }
    }

    // Traefik v2/v3: routers and services by name.
    let mut v2_rule = None;
    let mut v2_port = None;
    let mut v2_cookie = CookieLabels::default();
    let mut v2_sticky = None;
    let mut unsupported = Vec::new();
    for (key, value) in &traefik {
        let parts: Vec<&str> = key.split('.').collect();
        match parts.as_slice() {
            ["traefik", "http", "routers", _, "rule"] => v2_rule = Some(parse_v2_rule(key, value, &mut warnings)),
            ["traefik", "http", "services", _, "loadbalancer", "server", "port"] => match value.parse::<u16>() {
                Ok(p) => v2_port = Some(p),
                Err(_) => warnings.push(format!("{key}: {value:?} is not a port")),
            },
            ["traefik", "http", "services", _, "loadbalancer", "sticky", "cookie"] => {
                v2_sticky = parse_bool(value).or(Some(true))
            }
            [
                "traefik",
                "http",
                "services",
                _,
                "loadbalancer",
                "sticky",
                "cookie",
                attr,
            ] => {
                v2_sticky.get_or_insert(true);
                match *attr {
                    "name" => v2_cookie.name = Some((*value).to_string()),
                    "path" => v2_cookie.path = Some((*value).to_string()),
                    "secure" => v2_cookie.secure = parse_bool(value),
                    "httponly" => v2_cookie.http_only = parse_bool(value),
                    "samesite" => v2_cookie.same_site = Some((*value).to_string()),
                    "maxage" => v2_cookie.max_age = value.parse().ok(),
                    _ => unsupported.push((*key).to_string()),
                }
            }
            ["traefik", "swarm" | "docker", "network"] | ["traefik", "enable"] => {}
            _ if V1_KNOWN.contains(key) => {}
            _ => unsupported.push((*key).to_string()),
        }
    }
    if !unsupported.is_empty() {
        warnings.push(format!(
            "labels recognised but not supported (ignored): {}",
            unsupported.join(", ")
        ));
    }

    let enable = pick(
        "enable",
        &[
            ("swarm-sticky.enable", ours.get("enable").and_then(|v| parse_bool(v))),
            (
                "traefik.enable",
                traefik.get("traefik.enable").and_then(|v| parse_bool(v)),
            ),
        ],
        &mut warnings,
    );
    if enable == Some(false) {
        return Err(Skip::Disabled);
    }

    let port_of = |k: &str, v: Option<&&str>, warnings: &mut Vec<String>| {
        v.and_then(|v| match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => {
                warnings.push(format!("{k}: {v:?} is not a port"));
                None
            }
        })
    };
    let own_port = port_of("swarm-sticky.port", ours.get("port"), &mut warnings);
    let v1_port = port_of("traefik.port", traefik.get("traefik.port"), &mut warnings);
    let port = pick(
        "port",
        &[
            ("swarm-sticky.port", own_port),
            ("traefik.http.services.*.loadbalancer.server.port", v2_port),
            ("traefik.port", v1_port),
        ],
        &mut warnings,
    );
    let Some(port) = port else {
        // Say why there is none, too (a value that is not a port).
        let mut why = String::from("no backend port: set swarm-sticky.port (or traefik.port)");
        for w in &warnings {
            why.push_str("; ");
            why.push_str(w);
        }
        return Err(Skip::Invalid(why));
    };

    let network = pick(
        "network",
        &[
            ("swarm-sticky.network", ours.get("network").map(|v| (*v).to_string())),
            (
                "traefik.swarm.network",
                traefik.get("traefik.swarm.network").map(|v| (*v).to_string()),
            ),
            (
                "traefik.docker.network",
                traefik.get("traefik.docker.network").map(|v| (*v).to_string()),
            ),
        ],
        &mut warnings,
    );

    let own_rule = (ours.contains_key("rule.host")
        || ours.contains_key("rule.path-prefix")
        || ours.contains_key("rule.strip-prefix"))
    .then(|| RuleLabels {
        hosts: ours
            .get("rule.host")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default(),
        path_prefixes: ours
            .get("rule.path-prefix")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default(),
        strip_prefix: ours.get("rule.strip-prefix").and_then(|v| parse_bool(v)) == Some(true),
    });
    let v1_rule = traefik
        .get("traefik.frontend.rule")
        .map(|r| parse_v1_rule(r, &mut warnings));
    let rule = pick(
        "rule",
        &[
            ("swarm-sticky.rule.*", own_rule),
            ("traefik.http.routers.*.rule", v2_rule),
            ("traefik.frontend.rule", v1_rule),
        ],
        &mut warnings,
    )
    .unwrap_or_default();
    for p in &rule.path_prefixes {
        if !p.starts_with('/') {
            return Err(Skip::Invalid(format!("path prefix {p:?} does not start with /")));
        }
    }

    let v1_sticky = traefik
        .get("traefik.backend.loadbalancer.stickiness")
        .and_then(|v| parse_bool(v));
    let sticky = pick(
        "sticky",
        &[
            ("swarm-sticky.sticky", ours.get("sticky").and_then(|v| parse_bool(v))),
            ("traefik.http.services.*.loadbalancer.sticky.cookie", v2_sticky),
            ("traefik.backend.loadbalancer.stickiness", v1_sticky),
        ],
        &mut warnings,
    )
    // Stickiness is what swarm-sticky is for: on unless switched off.
    .unwrap_or(true);

    let mut cookie = CookieLabels {
        name: pick(
            "cookie name",
            &[
                (
                    "swarm-sticky.cookie.name",
                    ours.get("cookie.name").map(|v| (*v).to_string()),
                ),
                (
                    "traefik.http.services.*.loadbalancer.sticky.cookie.name",
                    v2_cookie.name.clone(),
                ),
                (
                    "traefik.backend.loadbalancer.stickiness.cookieName",
                    // Traefik v1 replaced non-token characters by `_`; the
                    // browser holds the cookie under that name.
                    traefik
                        .get("traefik.backend.loadbalancer.stickiness.cookieName")
                        .map(|v| super::traefik_v1::sanitize_cookie_name(v)),
                ),
            ],
            &mut warnings,
        ),
        ..v2_cookie
    };
    if let Some(v) = ours.get("cookie.path") {
        cookie.path = Some((*v).to_string());
    }
    if let Some(v) = ours.get("cookie.domain") {
        cookie.domain = Some((*v).to_string());
    }
    if let Some(v) = ours.get("cookie.secure") {
        cookie.secure = parse_bool(v);
    }
    if let Some(v) = ours.get("cookie.http-only") {
        cookie.http_only = parse_bool(v);
    }
    if let Some(v) = ours.get("cookie.same-site") {
        cookie.same_site = Some((*v).to_string());
    }
    if let Some(v) = ours.get("cookie.max-age") {
        cookie.max_age = v.parse().ok();
    }

    let weight_of = |v: Option<&&str>| v.and_then(|v| v.trim().parse::<u32>().ok());
    let weight = pick(
        "weight",
        &[
            ("swarm-sticky.weight", weight_of(ours.get("weight"))),
            (
                "traefik.backend.weight",
                weight_of(traefik.get("traefik.backend.weight")),
            ),
        ],
        &mut warnings,
    )
    .unwrap_or(1);
    let affinity = match ours.get("affinity").map(|v| v.trim()) {
        None | Some("same-slot") => Affinity::SameSlot,
        Some("rebalance") => Affinity::Rebalance,
        Some(other) => {
            warnings.push(format!(
                "swarm-sticky.affinity: {other:?} is neither same-slot nor rebalance; using same-slot"
            ));
            Affinity::SameSlot
        }
    };
    // The v1 spelling is in use when a v1-only key is set (enable and
    // docker.network are shared with v2).
    let traefik_v1 = traefik
        .keys()
        .any(|k| V1_KNOWN.contains(k) && !matches!(*k, "traefik.enable" | "traefik.docker.network"))
        .then(|| TraefikV1 {
            backend: traefik.get("traefik.backend").map(|v| v.trim().to_string()),
        });
    Ok(ServiceLabels {
        network,
        port,
        rule,
        sticky,
        cookie,
        weight,
        affinity,
        traefik_v1,
        warnings,
    })
}

mod pick;
mod rules;

#[cfg(test)]
mod tests;
