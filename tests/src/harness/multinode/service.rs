//! Overlay networks and services on a multi-node swarm, and where their
//! tasks run. The cluster is torn down as a whole, so nothing here is
//! removed on drop; the overlays' addresses are fenced off by the cluster
//! (its whole address pool).

use std::time::{Duration, Instant};

use super::Node;
use crate::harness::swarm::{IMAGE, service_create_args};

/// An overlay network.
pub struct Overlay {
    /// Its name.
    pub name: String,
    /// Its ID.
    pub id: String,
}

impl Overlay {
    /// `docker network create -d overlay <name>` on `manager`: not
    /// attachable, as in the tutorial.
    pub fn create(manager: &Node, name: &str) -> Self {
        let id = manager.docker(&["network", "create", "-d", "overlay", name]);
        Self {
            name: name.to_string(),
            id,
        }
    }
}

/// The tutorial's four Traefik v1 labels, with the routing rule
/// `PathPrefix:<prefix>`.
fn tutorial_labels(net: &Overlay, prefix: &str) -> Vec<String> {
    vec![
        format!("traefik.docker.network={}", net.name),
        "traefik.port=8000".into(),
        format!("traefik.frontend.rule=PathPrefix:{prefix}"),
        "traefik.backend.loadbalancer.stickiness=true".into(),
    ]
}

/// One task of a service, as a manager lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Task {
    /// The node's hostname (`node<N>`).
    pub node: String,
    /// The slot (0 for a global service's tasks).
    pub slot: u64,
    /// Its container's 12-character ID: the whoami's hostname, its answer.
    pub container: String,
    /// The task's ID.
    pub id: String,
}

/// A swarm service of the test image.
pub struct SwarmService {
    /// Its name.
    pub name: String,
}

impl SwarmService {
    /// `docker service create` of the test image on `manager` with `args`
    /// (see [`service_create_args`]; every node has the image).
    pub fn create(manager: &Node, name: &str, args: &[&str]) -> Self {
        manager.docker(&service_create_args(name, args, IMAGE));
        Self { name: name.to_string() }
    }

    /// A service on `net` with the tutorial's labels (rule
    /// `PathPrefix:<prefix>`) and `labels` besides, created with `args`
    /// (replicas, placement, …) as [`SwarmService::create`] does.
    pub fn tutorial(manager: &Node, name: &str, net: &Overlay, prefix: &str, labels: &[&str], args: &[&str]) -> Self {
        let mut all: Vec<String> = args.iter().map(ToString::to_string).collect();
        all.extend(["--network".to_string(), net.name.clone()]);
        let extra = labels.iter().map(ToString::to_string);
        for l in tutorial_labels(net, prefix).into_iter().chain(extra) {
            all.extend(["--label".to_string(), l]);
        }
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        Self::create(manager, name, &all)
    }

    /// The running tasks (desired and current state `running`, with a
    /// container), as `manager` lists them, sorted by node and slot.
    pub fn running(&self, manager: &Node) -> Vec<Task> {
        self.try_running(manager, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("list the tasks of {}: {e}", self.name))
    }

    /// [`SwarmService::running`], each CLI call given up after `timeout`
    /// (a manager without a leader hangs).
    ///
    /// # Errors
    /// What the failed call said.
    pub fn try_running(&self, manager: &Node, timeout: Duration) -> Result<Vec<Task>, String> {
        let ids = manager.try_docker(
            &[
                "service",
                "ps",
                "-q",
                "--no-trunc",
                "--filter",
                "desired-state=running",
                &self.name,
            ],
            timeout,
        )?;
        let ids: Vec<&str> = ids.lines().filter(|l| !l.is_empty()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let nodes = manager.try_docker(&["node", "ls", "--format", "{{.ID}} {{.Hostname}}"], timeout)?;
        let hostname = |id: &str| {
            nodes
                .lines()
                .find_map(|l| l.strip_prefix(id)?.strip_prefix(' '))
                .unwrap_or("?")
                .to_string()
        };
        let mut args = vec![
            "inspect",
            "--type",
            "task",
            "--format",
            "{{.ID}} {{.Slot}} {{.NodeID}} {{.Status.State}} {{with .Status.ContainerStatus}}{{.ContainerID}}{{end}}",
        ];
        args.extend(ids);
        let mut tasks: Vec<Task> = manager
            .try_docker(&args, timeout)?
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 5 && f[3] == "running").then(|| Task {
                    node: hostname(f[2]),
                    slot: f[1].parse().unwrap_or(0),
                    container: f[4].chars().take(12).collect(),
                    id: f[0].to_string(),
                })
            })
            .collect();
        tasks.sort();
        Ok(tasks)
    }

    /// Waits (bounded) until `n` tasks run; returns them.
    pub fn wait_running(&self, manager: &Node, n: usize, timeout: Duration) -> Vec<Task> {
        let deadline = Instant::now() + timeout;
        loop {
            let tasks = self.running(manager);
            if tasks.len() == n {
                return tasks;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {} of {n} tasks running after {timeout:?}: {tasks:?}",
                self.name,
                tasks.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
