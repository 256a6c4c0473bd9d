//! The HTTPS labels → a [`TlsPolicy`]: redirect to HTTPS and HSTS, from
//! `swarm-sticky.tls.*`, then Traefik v2/v3 middlewares attached to the
//! service's routers, then Traefik v1's `traefik.frontend.*` (picked in
//! that order, a disagreement is a warning).
//!
//! The labels that choose listeners (`swarm-sticky.tls`, Traefik's
//! `entryPoints` and `routers.<r>.tls`) are recognised and change nothing:
//! every service is served on every listener, plain and TLS.
//!
//! Automatic certificates (ACME), first spelling that says anything wins:
//! `swarm-sticky.tls.acme=true` (the rule's hosts) or `=NAME,NAME…` (one
//! certificate for those names); Traefik v2/v3 `routers.<r>.tls.domains[n]
//! .main/.sans` (one certificate each) or `routers.<r>.tls.certresolver`
//! (the rule's hosts); Traefik v1 `traefik.frontend.entryPoints` naming
//! `https` (the rule's hosts, as v1's `acme.onHostRule` did).

use std::collections::BTreeMap;

use super::{
    groups::Labels,
    pick::{parse_bool, pick},
};
use crate::services::{AcmeRequest, Hsts, TlsPolicy, acme_name};

/// The Traefik v1 keys read here (exact keys, as `traefik.frontend.rule`).
pub(super) const V1_TLS_KEYS: [&str; 6] = [
    "traefik.frontend.entryPoints",
    "traefik.frontend.redirect.entryPoint",
    "traefik.frontend.headers.SSLRedirect",
    "traefik.frontend.headers.STSSeconds",
    "traefik.frontend.headers.STSIncludeSubdomains",
    "traefik.frontend.headers.STSPreload",
];

/// A label as (key as written, value).
type Label = (String, String);

/// `(source, value)` pairs for [`pick`], the source naming its middleware.
type Candidates<T> = Vec<(String, Option<T>)>;

/// What the Traefik v2/v3 labels say about HTTPS, gathered while the
/// `traefik.http.*` keys are read one by one (a router may name a
/// middleware defined by a later key).
#[derive(Default)]
pub(super) struct V2Tls {
    /// Middlewares named by `routers.<r>.middlewares`, in order, without
    /// their `@provider` suffix.
    attached: Vec<String>,
    /// The options read here of each middleware, by name: lower-case
    /// `kind.option` → (key as written, value).
    middlewares: BTreeMap<String, BTreeMap<String, (String, String)>>,
    /// `routers.<r>.tls` keys and values.
    listeners: Vec<(String, String)>,
    /// `routers.<r>.tls.certresolver` keys.
    resolvers: Vec<String>,
    /// `routers.<r>.tls.domains[n]`: (router, n) → (main, sans), as
    /// (key, value).
    domains: BTreeMap<(String, String), [Option<Label>; 2]>,
    /// `routers.<r>.tls.options` keys: not supported.
    options: Vec<String>,
}

impl V2Tls {
    /// Takes one `traefik.*` key (split at dots) if it belongs here;
    /// `false` leaves it to the caller. Traefik reads these case-blind.
    pub(super) fn read(&mut self, key: &str, parts: &[&str], value: &str) -> bool {
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        match lower.as_slice() {
            ["traefik", "http", "routers", _, "entrypoints"] => {}
            ["traefik", "http", "routers", _, "tls"] => self.listeners.push((key.to_owned(), value.to_owned())),
            ["traefik", "http", "routers", _, "tls", "certresolver"] => self.resolvers.push(key.to_owned()),
            ["traefik", "http", "routers", _, "tls", "options"] => self.options.push(key.to_owned()),
            [
                "traefik",
                "http",
                "routers",
                router,
                "tls",
                domain,
                part @ ("main" | "sans"),
            ] if domain.starts_with("domains[") => {
                let slot = self
                    .domains
                    .entry(((*router).to_owned(), (*domain).to_owned()))
                    .or_default();
                slot[usize::from(*part == "sans")] = Some((key.to_owned(), value.to_owned()));
            }
            ["traefik", "http", "routers", _, "middlewares"] => self.attached.extend(
                value
                    .split(',')
                    .map(|m| m.trim().split_once('@').map_or(m.trim(), |(name, _provider)| name))
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned),
            ),
            ["traefik", "http", "middlewares", _, kind, option] if is_read_here(kind, option) => {
                self.middlewares
                    .entry(parts[3].to_owned())
                    .or_default()
                    .insert(format!("{kind}.{option}"), (key.to_owned(), value.to_owned()));
            }
            _ => return false,
        }
        true
    }

    /// Redirect and HSTS candidates of the attached middlewares, in the
    /// order they are attached; middlewares no router names do nothing.
    fn candidates(&self, warnings: &mut Vec<String>) -> (Candidates<bool>, Candidates<Hsts>) {
        let mut redirects = Vec::new();
        let mut hsts = Vec::new();
        let mut seen = Vec::new();
        for name in &self.attached {
            if seen.contains(&name) {
                continue;
            }
            seen.push(name);
            let Some(options) = self.middlewares.get(name) else {
                continue;
            };
            let get = |option: &str| options.get(option).map(|(k, v)| (k.as_str(), v.as_str()));
            if let Some((key, value)) = get("redirectscheme.scheme") {
                redirects.push((key.to_owned(), https_only(key, value, warnings)));
            }
            // Recognised; which redirect status is sent is not configurable.
            flag(get("redirectscheme.permanent"), warnings);
            let max_age_name = format!("traefik.http.middlewares.{name}.headers.stsSeconds");
            let labels = HstsLabels {
                max_age_name: &max_age_name,
                max_age: get("headers.stsseconds"),
                include_subdomains: get("headers.stsincludesubdomains"),
                preload: get("headers.stspreload"),
                zero_is_off: true,
            };
            hsts.push((
                format!("traefik.http.middlewares.{name}.headers.sts*"),
                labels.hsts(warnings),
            ));
        }
        (redirects, hsts)
    }
}

/// Whether `kind.option` (lower case) of a middleware is read here.
fn is_read_here(kind: &str, option: &str) -> bool {
    matches!(
        (kind, option),
        ("redirectscheme", "scheme" | "permanent") | ("headers", "stsseconds" | "stsincludesubdomains" | "stspreload")
    )
}

impl<'a> Labels<'a> {
    /// The service's HTTPS policy, with a warning for each label ignored.
    pub(super) fn tls(&mut self, v2: &V2Tls) -> TlsPolicy {
        self.check_listeners(v2);
        if !v2.options.is_empty() {
            self.warnings.push(format!(
                "{} ignored: TLS options are set for every listener (--tls-min-version)",
                v2.options.join(", ")
            ));
        }
        let acme = self.acme(v2);
        let own_redirect = self.own_entry("swarm-sticky.tls.redirect");
        let v1_entry_point = self.v1_entry("traefik.frontend.redirect.entryPoint");
        let v1_ssl_redirect = self.v1_entry("traefik.frontend.headers.SSLRedirect");
        let own_hsts = HstsLabels {
            max_age_name: "swarm-sticky.tls.hsts",
            max_age: self.own_entry("swarm-sticky.tls.hsts"),
            include_subdomains: self.own_entry("swarm-sticky.tls.hsts-include-subdomains"),
            preload: self.own_entry("swarm-sticky.tls.hsts-preload"),
            zero_is_off: false,
        };
        let v1_hsts = HstsLabels {
            max_age_name: "traefik.frontend.headers.STSSeconds",
            max_age: self.v1_entry("traefik.frontend.headers.STSSeconds"),
            include_subdomains: self.v1_entry("traefik.frontend.headers.STSIncludeSubdomains"),
            preload: self.v1_entry("traefik.frontend.headers.STSPreload"),
            zero_is_off: true,
        };
        let w = &mut self.warnings;
        let (v2_redirects, v2_hsts) = v2.candidates(w);
        let mut redirects = vec![("swarm-sticky.tls.redirect".to_owned(), flag(own_redirect, w))];
        redirects.extend(v2_redirects);
        redirects.push((
            "traefik.frontend.redirect.entryPoint".to_owned(),
            v1_entry_point.and_then(|(key, value)| https_only(key, value, w)),
        ));
        redirects.push((
            "traefik.frontend.headers.SSLRedirect".to_owned(),
            flag(v1_ssl_redirect, w),
        ));
        let mut hsts = vec![("swarm-sticky.tls.hsts*".to_owned(), own_hsts.hsts(w))];
        hsts.extend(v2_hsts);
        hsts.push(("traefik.frontend.headers.STS*".to_owned(), v1_hsts.hsts(w)));
        TlsPolicy {
            redirect_https: pick("redirect", &redirects, w).unwrap_or(false),
            hsts: pick("hsts", &hsts, w),
            acme,
        }
    }

    /// The certificates the labels ask ACME for.
    fn acme(&mut self, v2: &V2Tls) -> AcmeRequest {
        if let Some((key, value)) = self.own_entry("swarm-sticky.tls.acme") {
            return match parse_bool(value) {
                Some(true) => AcmeRequest::RuleHosts,
                Some(false) => AcmeRequest::None,
                None => match self.names(key, value) {
                    Some(names) => AcmeRequest::Certificates(vec![names]),
                    None => AcmeRequest::None,
                },
            };
        }
        let mut certificates = Vec::new();
        for [main, sans] in v2.domains.values() {
            let Some((key, value)) = main else {
                if let Some((key, _)) = sans {
                    self.warnings
                        .push(format!("{key} ignored: it needs the .main beside it"));
                }
                continue;
            };
            let Some(mut names) = self.names(key, value) else {
                continue;
            };
            if let Some((key, value)) = sans
                && let Some(more) = self.names(key, value)
            {
                names.extend(more.into_iter().filter(|n| !names.contains(n)).collect::<Vec<_>>());
            }
            certificates.push(names);
        }
        if !certificates.is_empty() {
            return AcmeRequest::Certificates(certificates);
        }
        if !v2.resolvers.is_empty() {
            return AcmeRequest::RuleHosts;
        }
        let v1_https = self
            .v1("traefik.frontend.entryPoints")
            .is_some_and(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case("https")));
        if v1_https {
            AcmeRequest::RuleHosts
        } else {
            AcmeRequest::None
        }
    }

    /// A comma-separated list of names for one certificate; a bad one is
    /// warned about and the whole label ignored.
    fn names(&mut self, key: &str, value: &str) -> Option<Vec<String>> {
        let names: Result<Vec<String>, String> = value
            .split(',')
            .filter(|n| !n.trim().is_empty())
            .map(acme_name)
            .collect();
        match names {
            Ok(n) if !n.is_empty() => Some(n),
            Ok(_) => {
                self.warnings.push(format!("{key}: names no domain; ignored"));
                None
            }
            Err(e) => {
                self.warnings.push(format!("{key}: {e}; ignored"));
                None
            }
        }
    }

    /// `swarm-sticky.tls` and `routers.<r>.tls` change nothing; saying
    /// `false` there would suggest they do, so that is warned about.
    fn check_listeners(&mut self, v2: &V2Tls) {
        let listeners = self
            .own_entry("swarm-sticky.tls")
            .into_iter()
            .chain(v2.listeners.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for (key, value) in listeners {
            if flag(Some((key, value)), &mut self.warnings) == Some(false) {
                self.warnings.push(format!(
                    "{key}=false has no effect: every service is served on every listener, plain and TLS"
                ));
            }
        }
    }

    /// A `swarm-sticky.*` label, named by its whole key, as (key, value).
    fn own_entry(&self, key: &'static str) -> Option<(&'static str, &'a str)> {
        self.own(key.strip_prefix("swarm-sticky.")?).map(|v| (key, v))
    }

    /// A Traefik label as (key, value).
    fn v1_entry(&self, key: &'static str) -> Option<(&'static str, &'a str)> {
        self.v1(key).map(|v| (key, v))
    }
}

/// One spelling's HSTS labels, each as (key, value) when present.
struct HstsLabels<'a> {
    /// How the max-age label is spelled, for the warning when it is missing.
    max_age_name: &'a str,
    max_age: Option<(&'a str, &'a str)>,
    include_subdomains: Option<(&'a str, &'a str)>,
    preload: Option<(&'a str, &'a str)>,
    /// Traefik sends no header for 0 seconds; swarm-sticky sends
    /// `max-age=0`, which tells browsers to forget the host.
    zero_is_off: bool,
}

impl HstsLabels<'_> {
    /// The header these labels ask for; a bad value is warned about and
    /// ignored, and so are the directives without a max-age.
    fn hsts(&self, warnings: &mut Vec<String>) -> Option<Hsts> {
        let include_subdomains = flag(self.include_subdomains, warnings);
        let preload = flag(self.preload, warnings);
        let Some((key, value)) = self.max_age else {
            for (key, _) in [self.include_subdomains, self.preload].into_iter().flatten() {
                warnings.push(format!("{key} ignored: it has no effect without {}", self.max_age_name));
            }
            return None;
        };
        let Ok(max_age) = value.trim().parse::<u64>() else {
            warnings.push(format!("{key}: {value:?} is not a number of seconds; ignored"));
            return None;
        };
        (max_age > 0 || !self.zero_is_off).then(|| Hsts {
            max_age,
            include_subdomains: include_subdomains.unwrap_or(false),
            preload: preload.unwrap_or(false),
        })
    }
}

/// A boolean label's value; anything else is warned about and ignored.
fn flag(label: Option<(&str, &str)>, warnings: &mut Vec<String>) -> Option<bool> {
    let (key, value) = label?;
    let b = parse_bool(value);
    if b.is_none() {
        warnings.push(format!("{key}: {value:?} is not true or false; ignored"));
    }
    b
}

/// `Some(true)` for a redirect to `https`; another target is not one
/// swarm-sticky can send to, so it is warned about and ignored.
fn https_only(key: &str, value: &str, warnings: &mut Vec<String>) -> Option<bool> {
    if value.trim().eq_ignore_ascii_case("https") {
        Some(true)
    } else {
        warnings.push(format!(
            "{key}: {value:?} is not supported, only a redirect to https; ignored"
        ));
        None
    }
}
