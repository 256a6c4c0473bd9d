//! Service labels → what swarm-sticky should do with a Swarm service.
//!
//! Three spellings are read, in this order of precedence when they
//! disagree (each disagreement is a warning):
//!
//! 1. swarm-sticky's own namespace, the preferred one:
//!    `swarm-sticky.enable`, `.network`, `.port`, `.rule.host`,
//!    `.rule.path-prefix`, `.rule.strip-prefix`, `.weight`, `.affinity`
//!    (`same-slot` | `rebalance`), `.sticky`,
//!    `.cookie.name|path|domain|secure|http-only|same-site|max-age`,
//!    `.request-body-timeout`, `.response-timeout` (e.g. `30s`, `500ms`),
//!    `.upgrades` (e.g. `websocket,h2c`), `.tls.redirect`, `.tls.hsts`
//!    (seconds), `.tls.hsts-include-subdomains`, `.tls.hsts-preload`, `.tls`,
//!    `.tls.acme` (`true` for the rule's hosts, or names);
//! 2. Traefik v2/v3: `traefik.http.routers.<r>.rule` (`Host(`…`)`,
//!    `PathPrefix(`…`)`, joined by `&&`), `traefik.http.services.<s>.loadbalancer.server.port`,
//!    `….loadbalancer.sticky.cookie[.name|.secure|.httponly|.samesite|.maxage|.path]`,
//!    `traefik.swarm.network`, `traefik.docker.network`, and for HTTPS the
//!    `redirectscheme` and `headers.sts*` middlewares a router names in
//!    `traefik.http.routers.<r>.middlewares`, and `….tls.certresolver`,
//!    `….tls.domains[n].main|sans` for ACME (see `labels/tls.rs`);
//! 3. Traefik v1 (the classic tutorial): `traefik.enable`, `traefik.port`,
//!    `traefik.docker.network`, `traefik.frontend.rule` (`PathPrefix:/x`,
//!    `Host:a.example`, several joined by `;`, alternatives by `,`),
//!    `traefik.backend.loadbalancer.stickiness[.cookieName]`, `traefik.backend.weight`,
//!    `traefik.backend` (it only names the cookie: a service with v1 labels
//!    keeps the cookie name Traefik v1 gave it, see [`super::traefik_v1`]),
//!    `traefik.frontend.redirect.entryPoint=https`,
//!    `traefik.frontend.headers.SSLRedirect|STSSeconds|STSIncludeSubdomains|STSPreload`.
//!
//! A label that is recognised but not supported (`swarm-sticky.health.*`
//! among them: health comes from the image's HEALTHCHECK), a misspelled
//! `swarm-sticky.*` key, and contradictory values each give one warning for
//! the service instead of being ignored silently. This module is pure: it
//! sees only the label map. [`parse`] reads one group of labels after the
//! other (`labels/groups.rs`).

mod groups;
mod pick;
mod rules;
mod tls;

use std::collections::BTreeMap;

use self::groups::Labels;
use crate::services::{CookieOverrides, ServiceTimeouts, TlsPolicy};

/// How a pinned client moves after a rolling update replaced its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Affinity {
    /// To the replacement task in the same slot (the default).
    #[default]
    SameSlot,
    /// Like a new session: a normal pick.
    Rebalance,
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
    pub cookie: CookieOverrides,
    /// Weight of each task (default 1).
    pub weight: u32,
    /// What a pinned session does after its task was replaced.
    pub affinity: Affinity,
    /// Deadlines of the service's own.
    pub timeouts: ServiceTimeouts,
    /// Upgrade protocols forwarded (default `websocket`).
    pub upgrades: Vec<String>,
    /// Redirect to HTTPS and HSTS (default: neither).
    pub tls: TlsPolicy,
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

const OWN_KEYS: [&str; 26] = [
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
    "request-body-timeout",
    "response-timeout",
    "upgrades",
    "backend",
    "tls",
    "tls.redirect",
    "tls.hsts",
    "tls.hsts-include-subdomains",
    "tls.hsts-preload",
    "tls.acme",
];

/// Reads the labels of one service.
///
/// # Errors
/// [`Skip`] when the service is not for us, disabled, or unusable.
pub fn parse(labels: &BTreeMap<String, String>) -> Result<ServiceLabels, Skip> {
    let mut l = Labels::new(labels).ok_or(Skip::NotLabelled)?;
    l.check_own_keys();
    let v2 = l.traefik_v2();
    if l.enabled() == Some(false) {
        return Err(Skip::Disabled);
    }
    let port = l.port(v2.port)?;
    let network = l.network();
    let rule = l.rule(v2.rule.clone())?;
    let sticky = l.sticky(v2.sticky);
    let cookie = l.cookie(v2.cookie.clone());
    let weight = l.weight();
    let affinity = l.affinity();
    let timeouts = l.timeouts();
    let upgrades = l.upgrades();
    let tls = l.tls(&v2.tls);
    let traefik_v1 = l.traefik_v1();
    Ok(ServiceLabels {
        network,
        port,
        rule,
        sticky,
        cookie,
        weight,
        affinity,
        timeouts,
        upgrades,
        tls,
        traefik_v1,
        warnings: l.warnings,
    })
}

#[cfg(test)]
mod tests;
