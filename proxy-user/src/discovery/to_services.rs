//! A discovered table → the proxy's service configuration.
//!
//! Each Swarm service becomes one proxied service: its rule and cookie
//! settings from the labels, its tasks as backends named by their identity
//! (`<task id>.<slot>`), reached from the overlay network's namespace on
//! this node. A task that is being shut down gets weight 0: no new
//! sessions, while the sessions pinned to it are still served. A task held
//! down (its node is not ready, or its container fails its Docker
//! HEALTHCHECK) stays in the table marked down with the reason, and a
//! warning: its clients fail over at once, and the admin API shows why.

use std::path::{Path, PathBuf};

use super::{Warning, labels::Affinity, table::Snapshot, tasks::TaskState, traefik_v1};
use crate::services::{
    BackendConfig, CookieConfig, PassiveHealthConfig, Rule, ServiceConfig, TaskInfo, validate_service,
};

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

/// The services of `snapshot`, each checked as a configured one is, with
/// the warnings found on the way (a service that fails a check is left
/// out with a [`Warning::NotServed`]). `netns_of` finds a network's
/// namespace.
pub fn services(snapshot: &Snapshot, netns_of: impl Fn(&str) -> Option<PathBuf>) -> (Vec<ServiceConfig>, Vec<Warning>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for svc in &snapshot.services {
        let l = &svc.labels;
        if !l.sticky {
            warnings.push(Warning::StickinessOff {
                service: svc.name.clone(),
            });
        }
        let mut cookie = CookieConfig::for_service(&svc.name);
        if l.cookie.name.is_none()
            && let Some(v1) = &l.traefik_v1
        {
            // Migration: the browser holds Traefik v1's cookie under this
            // name; reading it keeps the session.
            cookie.name = traefik_v1::cookie_name(&svc.name, v1.backend.as_deref());
        }
        for (field, problem) in l.cookie.clone().apply(&mut cookie) {
            warnings.push(Warning::Label {
                service: svc.name.clone(),
                message: format!("cookie {field}: {problem}; the default stays"),
            });
        }
        let config = ServiceConfig {
            name: svc.name.clone(),
            rule: rule(l),
            backends: backends(svc, l.weight, &netns_of, &mut warnings),
            cookie,
            health: None,
            passive: PassiveHealthConfig::default(),
            slot_affinity: l.affinity == Affinity::SameSlot,
            waiting_slots: svc.waiting_slots.clone(),
            timeouts: l.timeouts,
            upgrades: l.upgrades.clone(),
            tls: l.tls.clone(),
        };
        // The same checks as the config file's: a label value the proxy
        // could not use (a cookie name with `;`, say) must not reach it.
        match validate_service(|f| format!("labels: {f}"), &config) {
            Ok(()) => out.push(config),
            Err(err) => warnings.push(Warning::NotServed {
                service: svc.name.clone(),
                reason: err.to_string(),
            }),
        }
    }
    (out, warnings)
}

fn rule(l: &super::labels::ServiceLabels) -> Rule {
    Rule {
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
    }
}

/// The tasks of `svc` that can be backends here.
fn backends(
    svc: &super::table::DiscoveredService,
    weight: u32,
    netns_of: &impl Fn(&str) -> Option<PathBuf>,
    warnings: &mut Vec<Warning>,
) -> Vec<BackendConfig> {
    let mut out = Vec::new();
    for b in &svc.backends {
        // Held down: no sessions, and a cookie naming it fails over at
        // once (to its slot's successor or a new pick). It comes back when
        // its node or container does.
        let down = match &b.state {
            TaskState::Down(cause) => {
                warnings.push(Warning::Down {
                    service: svc.name.clone(),
                    task: b.task_id.clone(),
                    cause: cause.clone(),
                });
                Some(cause.to_string())
            }
            TaskState::Serving | TaskState::Draining => None,
        };
        let Some(via) = netns_of(&b.network_id) else {
            warnings.push(Warning::NoNamespace {
                service: svc.name.clone(),
                task: b.task_id.clone(),
                network: b.network_id.clone(),
            });
            continue;
        };
        out.push(BackendConfig {
            name: b.identity.clone(),
            addr: b.addr,
            weight: if b.state == TaskState::Draining { 0 } else { weight },
            via: Some(via),
            down,
            task: Some(TaskInfo {
                task: b.task_id.clone(),
                container: b.container_id.clone(),
                node: b.node_id.clone(),
            }),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::discovery::{
        labels,
        table::{DiscoveredService, Snapshot},
        tasks::{DownCause, TaskBackend},
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
                waiting_slots: Vec::new(),
                updating: false,
                short: false,
            }],
            warnings: Vec::new(),
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
        assert_eq!(s.cookie.same_site, crate::services::SameSite::Strict);
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
                    waiting_slots: Vec::new(),
                    updating: false,
                    short: false,
                }],
                warnings: Vec::new(),
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

    /// A task held down (its container fails its HEALTHCHECK, its node is
    /// down) stays in the table marked down with the reason, which the
    /// warning repeats; the others are untouched.
    #[test]
    fn tasks_held_down_are_marked_with_the_reason() {
        let mut snap = snapshot();
        snap.services[0].backends[0].state = TaskState::Down(DownCause::Unhealthy);
        snap.services[0].backends[1].state = TaskState::Down(DownCause::Node {
            hostname: "node3".into(),
            state: "down".into(),
        });
        let (services, warnings) = services(&snap, |_| Some(PathBuf::from("/ns")));
        let down: Vec<Option<&str>> = services[0].backends.iter().map(|b| b.down.as_deref()).collect();
        assert_eq!(
            down,
            vec![
                Some("its container's HEALTHCHECK is not healthy"),
                Some("its node node3 is down")
            ]
        );
        let kinds: Vec<&str> = warnings.iter().map(Warning::kind).collect();
        assert_eq!(kinds, vec!["unhealthy", "node_down"]);
        assert!(
            warnings[1].to_string().contains("its node node3 is down"),
            "{warnings:?}"
        );
    }

    /// Without the overlay's namespace on this node a task cannot be
    /// reached; it is left out with a warning instead of being dialled
    /// from the host.
    #[test]
    fn tasks_without_a_namespace_are_left_out() {
        let (services, warnings) = services(&snapshot(), |_| None);
        assert!(services[0].backends.is_empty());
        assert_eq!(warnings.len(), 2);
        assert!(matches!(&warnings[0], Warning::NoNamespace { .. }), "{warnings:?}");
    }

    /// A label value the proxy could not use is caught by the same checks
    /// as the config file's: that service is left out with the reason, and
    /// the others are served.
    #[test]
    fn a_service_with_a_bad_cookie_label_is_skipped_and_the_others_serve() {
        let mut snap = snapshot();
        let mut bad = snap.services[0].clone();
        bad.name = "bad".into();
        bad.labels.cookie.name = Some("bad;name".into());
        bad.labels.rule.path_prefixes = vec!["/other".into()];
        let mut spaced = snap.services[0].clone();
        spaced.name = "spaced".into();
        spaced.labels.cookie.name = Some("spaced".into());
        spaced.labels.cookie.path = Some("/a b".into());
        spaced.labels.rule.path_prefixes = vec!["/third".into()];
        snap.services.push(bad);
        snap.services.push(spaced);
        let (services, warnings) = services(&snap, |_| Some(PathBuf::from("/ns")));
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web"]);
        let reasons: Vec<(&str, String)> = warnings.iter().map(|w| (w.service(), w.to_string())).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert_eq!(reasons[0].0, "bad");
        assert!(
            reasons[0].1.contains("not served") && reasons[0].1.contains("cookie.name"),
            "{reasons:?}"
        );
        assert_eq!(reasons[1].0, "spaced");
        assert!(reasons[1].1.contains("cookie.path"), "{reasons:?}");
    }

    /// The HTTPS policy of the labels reaches the service; one that asks
    /// for preloading without meeting its rules leaves the service out,
    /// as any invalid label value does.
    #[test]
    fn tls_labels_reach_the_service_and_are_validated() {
        let mut snap = snapshot();
        let hsts = crate::services::Hsts {
            max_age: 600,
            include_subdomains: true,
            preload: false,
        };
        snap.services[0].labels.tls = crate::services::TlsPolicy {
            redirect_https: true,
            hsts: Some(hsts.clone()),
            ..Default::default()
        };
        let mut preload = snap.services[0].clone();
        preload.name = "preload".into();
        preload.labels.cookie.name = Some("preload".into());
        preload.labels.rule.path_prefixes = vec!["/preload".into()];
        preload.labels.tls.hsts = Some(crate::services::Hsts {
            preload: true,
            ..hsts.clone()
        });
        snap.services.push(preload);
        let (services, warnings) = services(&snap, |_| Some(PathBuf::from("/ns")));
        assert_eq!(services.len(), 1);
        assert!(services[0].tls.redirect_https);
        assert_eq!(services[0].tls.hsts, Some(hsts));
        assert_eq!(
            warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "not served: labels: tls.hsts_preload: preload needs hsts_max_age of at least 31536000 (one year, hstspreload.org), not 600"
            ]
        );
    }

    /// A SameSite label the proxy does not know is warned about and the
    /// default stays.
    #[test]
    fn an_unknown_same_site_keeps_the_default() {
        let mut snap = snapshot();
        snap.services[0].labels.cookie.same_site = Some("lots".into());
        let (services, warnings) = services(&snap, |_| Some(PathBuf::from("/ns")));
        assert_eq!(services[0].cookie.same_site, crate::services::SameSite::Lax);
        assert!(
            matches!(&warnings[0], Warning::Label { message, .. } if message.contains("lots")),
            "{warnings:?}"
        );
    }
}
