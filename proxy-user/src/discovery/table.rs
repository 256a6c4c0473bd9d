//! A discovered table → the proxy's service configuration.
//!
//! Each Swarm service becomes one proxied service: its rule and cookie
//! settings from the labels, its tasks as backends named by their identity
//! (`<task id>.<slot>`), reached from the overlay network's namespace on
//! this node. A task that is being shut down gets weight 0: no new
//! sessions, while the sessions pinned to it are still served. A task whose
//! container fails its Docker HEALTHCHECK is left out (with a warning): its
//! clients fail over as if it were down.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::{labels::Affinity, tasks::TaskState, traefik_v1, watch::Snapshot};
use crate::services::{BackendConfig, CookieConfig, PassiveHealthConfig, Rule, SameSite, SecureMode, ServiceConfig};

/// Where Docker keeps network namespaces (`<exec-root>/netns`).
pub const DOCKER_NETNS: &str = "/var/run/docker/netns";

/// The namespace of overlay network `network_id` on this node, in Docker's
/// namespace directory `dir`: its load-balancer namespace `lb_<id[:9]>`,
/// which has an address of its own on the overlay (so replies from tasks
/// on other nodes come back). It exists while this node has an endpoint
/// on the network.
pub fn overlay_netns(dir: &Path, network_id: &str) -> Option<PathBuf> {
    let short = network_id.get(..9)?;
    let path = dir.join(format!("lb_{short}"));
    path.exists().then_some(path)
}

fn same_site(v: &str) -> Option<SameSite> {
    match v.to_ascii_lowercase().as_str() {
        "strict" => Some(SameSite::Strict),
        "lax" => Some(SameSite::Lax),
        "none" => Some(SameSite::None),
        _ => None,
    }
}

/// The services of `snapshot`, with one warning line per problem
/// (`(service, message)`). `netns_of` finds a network's namespace.
pub fn services(
    snapshot: &Snapshot,
    netns_of: impl Fn(&str) -> Option<PathBuf>,
) -> (Vec<ServiceConfig>, Vec<(String, String)>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for svc in &snapshot.services {
        let l = &svc.labels;
        let mut warn = |m: String| warnings.push((svc.name.clone(), m));
        if !l.sticky {
            warn("stickiness is off in the labels, but swarm-sticky always pins sessions".into());
        }
        let rule = Rule {
            hosts: l
                .rule
                .hosts
                .iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            path_prefixes: if l.rule.path_prefixes.is_empty() {
                vec!["/".into()]
            } else {
                l.rule.path_prefixes.clone()
            },
            strip_prefix: l.rule.strip_prefix,
        };
        let mut cookie = CookieConfig::for_service(&svc.name);
        if let Some(n) = &l.cookie.name {
            cookie.name.clone_from(n);
        } else if let Some(v1) = &l.traefik_v1 {
            // Migration: the browser holds Traefik v1's cookie under this
            // name; reading it keeps the session.
            cookie.name = traefik_v1::cookie_name(&svc.name, v1.backend.as_deref());
        }
        if let Some(p) = &l.cookie.path {
            cookie.path.clone_from(p);
        }
        if let Some(h) = l.cookie.http_only {
            cookie.http_only = h;
        }
        if let Some(s) = &l.cookie.same_site {
            match same_site(s) {
                Some(v) => cookie.same_site = v,
                None => warn(format!("cookie SameSite {s:?} is not strict, lax or none; using lax")),
            }
        }
        match l.cookie.secure {
            Some(true) => cookie.secure = SecureMode::Always,
            Some(false) => cookie.secure = SecureMode::Never,
            None => {}
        }
        cookie.max_age = l.cookie.max_age.map(Duration::from_secs);
        cookie.domain.clone_from(&l.cookie.domain);

        let mut backends = Vec::new();
        for b in &svc.backends {
            if b.state == TaskState::Unhealthy {
                // Left out: no new sessions, and a cookie naming it fails
                // over (to its slot's successor or a new pick), as if the
                // task were down. It returns when its container is healthy.
                warn(format!(
                    "task {} is not served: its container's HEALTHCHECK is not healthy",
                    b.task_id
                ));
                continue;
            }
            let Some(via) = netns_of(&b.network_id) else {
                warn(format!(
                    "task {} is not reachable yet: the overlay network {} has no namespace on this node",
                    b.task_id, b.network_id
                ));
                continue;
            };
            let weight = if b.state == TaskState::Draining { 0 } else { l.weight };
            backends.push(BackendConfig {
                name: b.identity.clone(),
                addr: b.addr,
                weight,
                via: Some(via),
                task: Some(crate::services::TaskInfo {
                    task: b.task_id.clone(),
                    container: b.container_id.clone(),
                    node: b.node_id.clone(),
                }),
            });
        }
        out.push(ServiceConfig {
            name: svc.name.clone(),
            rule,
            backends,
            cookie,
            health: None,
            passive: PassiveHealthConfig::default(),
            slot_affinity: l.affinity == Affinity::SameSlot,
            timeouts: crate::services::ServiceTimeouts::default(),
            upgrades: vec![crate::services::DEFAULT_UPGRADE.to_owned()],
        });
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::discovery::{
        labels,
        tasks::TaskBackend,
        watch::{DiscoveredService, Snapshot},
    };

    fn snapshot() -> Snapshot {
        let l: BTreeMap<String, String> = [
            ("traefik.port", "8000"),
            ("traefik.frontend.rule", "Host:App.Example;PathPrefix:/app"),
            ("swarm-sticky.cookie.name", "sess"),
            ("swarm-sticky.cookie.same-site", "strict"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
        let backend = |id: &str, ip: &str, state| TaskBackend {
            identity: format!("{id}.1"),
            task_id: id.into(),
            slot: "1".into(),
            addr: format!("{ip}:8000").parse().expect("addr"),
            network_id: "abcdefghijklmnop".into(),
            container_id: None,
            node_id: None,
            state,
        };
        Snapshot {
            services: vec![DiscoveredService {
                id: "s1".into(),
                name: "web".into(),
                labels: labels::parse(&l).expect("labels"),
                backends: vec![
                    backend("t1", "10.0.1.3", TaskState::Serving),
                    backend("t2", "10.0.1.4", TaskState::Draining),
                ],
                networks: vec!["abcdefghijklmnop".into()],
            }],
            warnings: BTreeMap::new(),
        }
    }

    /// Labels become the rule and cookie; tasks become backends reached
    /// from the overlay's namespace; a draining task takes no new sessions.
    #[test]
    fn discovered_services_become_proxied_services() {
        let ns = PathBuf::from("/var/run/docker/netns/lb_abcdefghi");
        let (services, warnings) = services(&snapshot(), |_| Some(ns.clone()));
        assert!(warnings.is_empty(), "{warnings:?}");
        let s = &services[0];
        assert_eq!(s.rule.hosts, ["app.example"]);
        assert_eq!(s.rule.path_prefixes, ["/app"]);
        assert_eq!(s.cookie.name, "sess");
        let task = s.backends[0]
            .task
            .as_ref()
            .expect("a discovered backend names its task");
        assert_eq!((task.task.as_str(), task.node.as_deref()), ("t1", None));
        assert_eq!(s.cookie.same_site, SameSite::Strict);
        assert_eq!(s.backends.len(), 2);
        assert_eq!(s.backends[0].name, "t1.1");
        assert_eq!(s.backends[0].weight, 1);
        assert_eq!(s.backends[0].via.as_deref(), Some(ns.as_path()));
        assert_eq!(s.backends[1].weight, 0, "draining: no new sessions");
    }

    /// The cookie name of a service without one in its labels: Traefik
    /// v1's when v1 labels select it (so a migrating client's cookie is
    /// read), swarm-sticky's default otherwise; a v1 `cookieName` is
    /// sanitized as Traefik v1 did.
    #[test]
    fn traefik_v1_services_keep_traefik_v1_cookie_names() {
        let name_of = |service: &str, pairs: &[(&str, &str)]| {
            let l: BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect();
            let snap = Snapshot {
                services: vec![DiscoveredService {
                    id: "s".into(),
                    name: service.into(),
                    labels: labels::parse(&l).expect("labels"),
                    backends: Vec::new(),
                    networks: Vec::new(),
                }],
                warnings: BTreeMap::new(),
            };
            services(&snap, |_| None).0[0].cookie.name.clone()
        };
        let tutorial = [
            ("traefik.docker.network", "whoaminet"),
            ("traefik.port", "8000"),
            ("traefik.frontend.rule", "PathPrefix:/"),
            ("traefik.backend.loadbalancer.stickiness", "true"),
        ];
        assert_eq!(name_of("whoami-service", &tutorial), "_a49bc");
        let mut named = tutorial.to_vec();
        named.push(("traefik.backend", "web"));
        assert_eq!(name_of("whoami-service", &named), "_40e28");
        named.push(("traefik.backend.loadbalancer.stickiness.cookieName", "my cookie"));
        assert_eq!(name_of("whoami-service", &named), "my_cookie");
        let v2 = [("traefik.http.services.w.loadbalancer.server.port", "8000")];
        assert_eq!(
            name_of("whoami-service", &v2),
            CookieConfig::for_service("whoami-service").name
        );
        let own = [("swarm-sticky.port", "8000"), ("traefik.enable", "true")];
        assert_eq!(
            name_of("whoami-service", &own),
            CookieConfig::for_service("whoami-service").name
        );
    }

    /// A task whose container fails its HEALTHCHECK is not a backend at
    /// all (a cookie naming it fails over), and the reason is shown.
    #[test]
    fn unhealthy_tasks_are_left_out() {
        let mut snap = snapshot();
        snap.services[0].backends[0].state = TaskState::Unhealthy;
        let (services, warnings) = services(&snap, |_| Some(PathBuf::from("/ns")));
        let names: Vec<&str> = services[0].backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, vec!["t2.1"]);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].1.contains("HEALTHCHECK"), "{warnings:?}");
    }

    /// Without the overlay's namespace on this node a task cannot be
    /// reached; it is left out with a warning instead of being dialled
    /// from the host.
    #[test]
    fn tasks_without_a_namespace_are_left_out() {
        let (services, warnings) = services(&snapshot(), |_| None);
        assert!(services[0].backends.is_empty());
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].1.contains("no namespace on this node"));
    }
}
