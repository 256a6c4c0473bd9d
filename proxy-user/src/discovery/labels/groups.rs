//! One function per group of labels: each reads every spelling of its
//! group (swarm-sticky's own, Traefik v2/v3, Traefik v1), picks one in that
//! order of precedence, and records a warning for anything it ignores. The
//! HTTPS group is in `labels/tls.rs`.

use std::{collections::BTreeMap, time::Duration};

use super::{
    Affinity, OWN_KEYS, RuleLabels, Skip, TraefikV1, V1_KNOWN,
    pick::{closest, parse_bool, parse_duration, pick},
    rules::{parse_v1_rule, parse_v2_rule},
    tls::{V1_TLS_KEYS, V2Tls},
};
use crate::services::{CookieOverrides, DEFAULT_UPGRADE, ServiceTimeouts};

/// The labels of one service, split by namespace, and the warnings so far.
pub(super) struct Labels<'a> {
    /// `swarm-sticky.*`, without the prefix.
    ours: BTreeMap<&'a str, &'a str>,
    /// `traefik.*`, whole.
    traefik: BTreeMap<&'a str, &'a str>,
    /// One line per problem.
    pub(super) warnings: Vec<String>,
}

/// What the Traefik v2/v3 routers and services say.
#[derive(Default)]
pub(super) struct V2 {
    pub(super) rule: Option<RuleLabels>,
    pub(super) port: Option<u16>,
    pub(super) cookie: CookieOverrides,
    pub(super) sticky: Option<bool>,
    pub(super) tls: V2Tls,
}

impl<'a> Labels<'a> {
    /// `None` when no label is ours or Traefik's: not meant for us.
    pub(super) fn new(labels: &'a BTreeMap<String, String>) -> Option<Self> {
        let ours: BTreeMap<&str, &str> = labels
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("swarm-sticky.").map(|k| (k, v.as_str())))
            .collect();
        let traefik: BTreeMap<&str, &str> = labels
            .iter()
            .filter(|(k, _)| k.starts_with("traefik."))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        (!ours.is_empty() || !traefik.is_empty()).then_some(Self {
            ours,
            traefik,
            warnings: Vec::new(),
        })
    }

    pub(super) fn own(&self, key: &str) -> Option<&'a str> {
        self.ours.get(key).copied()
    }

    pub(super) fn v1(&self, key: &str) -> Option<&'a str> {
        self.traefik.get(key).copied()
    }

    /// Our own keys that are misspelled (with a "did you mean"), and the
    /// health-check keys, which labels cannot set.
    pub(super) fn check_own_keys(&mut self) {
        let mut health = Vec::new();
        for key in self.ours.keys() {
            if key.starts_with("health.") {
                health.push(format!("swarm-sticky.{key}"));
            } else if !OWN_KEYS.contains(key) {
                let hint = closest(key)
                    .map(|k| format!("; did you mean swarm-sticky.{k}?"))
                    .unwrap_or_default();
                self.warnings
                    .push(format!("swarm-sticky.{key} is not a known label{hint}"));
            }
        }
        if !health.is_empty() {
            self.warnings.push(format!(
                "{} ignored: active health checks cannot be set by labels; give the image a HEALTHCHECK (swarm-sticky reads it) or use the config file",
                health.join(", ")
            ));
        }
    }

    /// Traefik v2/v3: routers and services by name.
    pub(super) fn traefik_v2(&mut self) -> V2 {
        let mut v2 = V2::default();
        let mut unsupported = Vec::new();
        let entries: Vec<(&str, &str)> = self.traefik.iter().map(|(k, v)| (*k, *v)).collect();
        for (key, value) in entries {
            let parts: Vec<&str> = key.split('.').collect();
            if v2.tls.read(key, &parts, value) {
                continue;
            }
            match parts.as_slice() {
                ["traefik", "http", "routers", _, "rule"] => {
                    v2.rule = Some(parse_v2_rule(key, value, &mut self.warnings));
                }
                ["traefik", "http", "services", _, "loadbalancer", "server", "port"] => match value.parse::<u16>() {
                    Ok(p) => v2.port = Some(p),
                    Err(_) => self.warnings.push(format!("{key}: {value:?} is not a port")),
                },
                ["traefik", "http", "services", _, "loadbalancer", "sticky", "cookie"] => {
                    v2.sticky = parse_bool(value).or(Some(true));
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
                    v2.sticky.get_or_insert(true);
                    let c = &mut v2.cookie;
                    match *attr {
                        "name" => c.name = Some(value.to_owned()),
                        "path" => c.path = Some(value.to_owned()),
                        "secure" => c.secure = parse_bool(value).map(secure_mode),
                        "httponly" => c.http_only = parse_bool(value),
                        "samesite" => c.same_site = Some(value.to_owned()),
                        "maxage" => c.max_age = value.parse().ok(),
                        _ => unsupported.push(key.to_owned()),
                    }
                }
                ["traefik", "swarm" | "docker", "network"] | ["traefik", "enable"] => {}
                _ if V1_KNOWN.contains(&key) || V1_TLS_KEYS.contains(&key) => {}
                _ => unsupported.push(key.to_owned()),
            }
        }
        if !unsupported.is_empty() {
            self.warnings.push(format!(
                "labels recognised but not supported (ignored): {}",
                unsupported.join(", ")
            ));
        }
        v2
    }

    /// `enable`: `Some(false)` leaves the service out.
    pub(super) fn enabled(&mut self) -> Option<bool> {
        let candidates = [
            ("swarm-sticky.enable", self.own("enable").and_then(parse_bool)),
            ("traefik.enable", self.v1("traefik.enable").and_then(parse_bool)),
        ];
        pick("enable", &candidates, &mut self.warnings)
    }

    fn port_of(&mut self, key: &str, value: Option<&str>) -> Option<u16> {
        let v = value?;
        match v.trim().parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => {
                self.warnings.push(format!("{key}: {v:?} is not a port"));
                None
            }
        }
    }

    /// The tasks' port; a service without one cannot be served.
    pub(super) fn port(&mut self, v2_port: Option<u16>) -> Result<u16, Skip> {
        let own = self.port_of("swarm-sticky.port", self.own("port"));
        let v1 = self.port_of("traefik.port", self.v1("traefik.port"));
        let candidates = [
            ("swarm-sticky.port", own),
            ("traefik.http.services.*.loadbalancer.server.port", v2_port),
            ("traefik.port", v1),
        ];
        pick("port", &candidates, &mut self.warnings).ok_or_else(|| {
            // Say why there is none, too (a value that is not a port).
            let mut why = String::from("no backend port: set swarm-sticky.port (or traefik.port)");
            for w in &self.warnings {
                why.push_str("; ");
                why.push_str(w);
            }
            Skip::Invalid(why)
        })
    }

    /// The network whose task addresses to use.
    pub(super) fn network(&mut self) -> Option<String> {
        let candidates = [
            ("swarm-sticky.network", self.own("network").map(str::to_owned)),
            (
                "traefik.swarm.network",
                self.v1("traefik.swarm.network").map(str::to_owned),
            ),
            (
                "traefik.docker.network",
                self.v1("traefik.docker.network").map(str::to_owned),
            ),
        ];
        pick("network", &candidates, &mut self.warnings)
    }

    /// The routing rule; a prefix that is not a path leaves the service out.
    pub(super) fn rule(&mut self, v2_rule: Option<RuleLabels>) -> Result<RuleLabels, Skip> {
        let list = |v: Option<&str>| -> Vec<String> {
            v.map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default()
        };
        let own = ["rule.host", "rule.path-prefix", "rule.strip-prefix"]
            .iter()
            .any(|k| self.ours.contains_key(k))
            .then(|| RuleLabels {
                hosts: list(self.own("rule.host")),
                path_prefixes: list(self.own("rule.path-prefix")),
                strip_prefix: self.own("rule.strip-prefix").and_then(parse_bool) == Some(true),
            });
        let v1 = self
            .v1("traefik.frontend.rule")
            .map(|r| parse_v1_rule(r, &mut self.warnings));
        let candidates = [
            ("swarm-sticky.rule.*", own),
            ("traefik.http.routers.*.rule", v2_rule),
            ("traefik.frontend.rule", v1),
        ];
        let rule = pick("rule", &candidates, &mut self.warnings).unwrap_or_default();
        if let Some(p) = rule.path_prefixes.iter().find(|p| !p.starts_with('/')) {
            return Err(Skip::Invalid(format!("path prefix {p:?} does not start with /")));
        }
        Ok(rule)
    }

    /// Whether the labels ask for stickiness (swarm-sticky pins anyway).
    pub(super) fn sticky(&mut self, v2_sticky: Option<bool>) -> bool {
        let candidates = [
            ("swarm-sticky.sticky", self.own("sticky").and_then(parse_bool)),
            ("traefik.http.services.*.loadbalancer.sticky.cookie", v2_sticky),
            (
                "traefik.backend.loadbalancer.stickiness",
                self.v1("traefik.backend.loadbalancer.stickiness").and_then(parse_bool),
            ),
        ];
        // Stickiness is what swarm-sticky is for: on unless switched off.
        pick("sticky", &candidates, &mut self.warnings).unwrap_or(true)
    }

    /// Cookie settings: the name from any spelling, the attributes from
    /// ours over v2's.
    pub(super) fn cookie(&mut self, v2: CookieOverrides) -> CookieOverrides {
        let candidates = [
            ("swarm-sticky.cookie.name", self.own("cookie.name").map(str::to_owned)),
            (
                "traefik.http.services.*.loadbalancer.sticky.cookie.name",
                v2.name.clone(),
            ),
            (
                "traefik.backend.loadbalancer.stickiness.cookieName",
                // Traefik v1 replaced non-token characters by `_`; the
                // browser holds the cookie under that name.
                self.v1("traefik.backend.loadbalancer.stickiness.cookieName")
                    .map(crate::discovery::traefik_v1::sanitize_cookie_name),
            ),
        ];
        let name = pick("cookie name", &candidates, &mut self.warnings);
        let own = |k: &str| self.own(k).map(str::to_owned);
        CookieOverrides {
            name,
            path: own("cookie.path").or(v2.path),
            domain: own("cookie.domain").or(v2.domain),
            http_only: self.own("cookie.http-only").and_then(parse_bool).or(v2.http_only),
            same_site: own("cookie.same-site").or(v2.same_site),
            // `true`/`false` as Traefik spells it, or auto/always/never.
            secure: self
                .own("cookie.secure")
                .map(|v| parse_bool(v).map_or_else(|| v.to_owned(), secure_mode))
                .or(v2.secure),
            max_age: self.own("cookie.max-age").and_then(|v| v.parse().ok()).or(v2.max_age),
        }
    }

    /// The weight of each task.
    pub(super) fn weight(&mut self) -> u32 {
        let weight_of = |v: Option<&str>| v.and_then(|v| v.trim().parse::<u32>().ok());
        let candidates = [
            ("swarm-sticky.weight", weight_of(self.own("weight"))),
            ("traefik.backend.weight", weight_of(self.v1("traefik.backend.weight"))),
        ];
        pick("weight", &candidates, &mut self.warnings).unwrap_or(1)
    }

    /// Where a pinned client goes when its task is replaced.
    pub(super) fn affinity(&mut self) -> Affinity {
        match self.own("affinity").map(str::trim) {
            None | Some("same-slot") => Affinity::SameSlot,
            Some("rebalance") => Affinity::Rebalance,
            Some(other) => {
                self.warnings.push(format!(
                    "swarm-sticky.affinity: {other:?} is neither same-slot nor rebalance; using same-slot"
                ));
                Affinity::SameSlot
            }
        }
    }

    fn duration(&mut self, key: &str) -> Option<Duration> {
        let v = self.own(key)?;
        let d = parse_duration(v).filter(|d| !d.is_zero());
        if d.is_none() {
            self.warnings.push(format!(
                "swarm-sticky.{key}: {v:?} is not a positive duration (e.g. 30s, 500ms, 2m); using the default"
            ));
        }
        d
    }

    /// The service's own deadlines.
    pub(super) fn timeouts(&mut self) -> ServiceTimeouts {
        ServiceTimeouts {
            request_body: self.duration("request-body-timeout"),
            response: self.duration("response-timeout"),
        }
    }

    /// The upgrade protocols forwarded.
    pub(super) fn upgrades(&mut self) -> Vec<String> {
        self.own("upgrades").map_or_else(
            || vec![DEFAULT_UPGRADE.to_owned()],
            |v| {
                v.split(',')
                    .map(|p| p.trim().to_ascii_lowercase())
                    .filter(|p| !p.is_empty())
                    .collect()
            },
        )
    }

    /// Set when a Traefik v1 spelling selects the service (`enable` and
    /// `docker.network` are shared with v2).
    pub(super) fn traefik_v1(&self) -> Option<TraefikV1> {
        self.traefik
            .keys()
            .any(|k| V1_KNOWN.contains(k) && !matches!(*k, "traefik.enable" | "traefik.docker.network"))
            .then(|| TraefikV1 {
                backend: self.v1("traefik.backend").map(|v| v.trim().to_owned()),
            })
    }
}

/// `Secure` as Traefik spells it: `true` is always, `false` never.
fn secure_mode(on: bool) -> String {
    if on { "always" } else { "never" }.to_owned()
}
