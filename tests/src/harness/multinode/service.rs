//! Overlay networks and services on a multi-node swarm, and where their
//! tasks run. The cluster is torn down as a whole, so nothing here is
//! removed on drop; the overlays' addresses are fenced off by the cluster
//! (its whole address pool).

use std::time::{Duration, Instant};

use super::Node;
use crate::harness::swarm::IMAGE;

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
pub fn tutorial_labels(net: &Overlay, prefix: &str) -> Vec<String> {
    vec![
        format!("traefik.docker.network={}", net.name),
        "traefik.port=8000".into(),
        format!("traefik.frontend.rule=PathPrefix:{prefix}"),
        "traefik.backend.loadbalancer.stickiness=true".into(),
    ]
}

/// `--network <net>` and a `--label` for each of `labels`, as arguments
/// of `docker service create`.
pub fn network_and_labels(net: &Overlay, labels: &[String]) -> Vec<String> {
    let mut args = vec!["--network".to_string(), net.name.clone()];
    for l in labels {
        args.extend(["--label".to_string(), l.clone()]);
    }
    args
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
    /// `docker service create --detach` on `manager` with `args` before
    /// the image. `--init` (the whoami is PID 1 otherwise and ignores
    /// SIGTERM) and `--no-resolve-image` (no registry: every node has the
    /// image already).
    pub fn create(manager: &Node, name: &str, args: &[String]) -> Self {
        let mut all = vec![
            "service",
            "create",
            "--detach",
            "--quiet",
            "--no-resolve-image",
            "--init",
            "--name",
            name,
        ];
        all.extend(args.iter().map(String::as_str));
        all.push(IMAGE);
        manager.docker(&all);
        Self { name: name.to_string() }
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
