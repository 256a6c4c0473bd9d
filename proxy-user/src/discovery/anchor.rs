//! Anchors: making an overlay network's namespace exist on this node.
//!
//! Upstream sockets are opened in the network's `lb_<id>` namespace, which
//! Docker creates on a node only while the node has an endpoint on the
//! network, and removes when the last one goes. A manager that runs no
//! task of a served service (its tasks all run on workers) would have
//! nothing to connect from; one whose only local task is being replaced
//! (every rolling update of a global service, such as the tutorial's)
//! would lose the namespace, and every connection through it to the other
//! nodes' tasks, until the replacement runs. For each network with served
//! tasks on other nodes, swarm-sticky therefore keeps an *anchor* on this
//! node: a one-replica Swarm service, constrained to this node,
//! attached to the network, running `swarm-sticky anchor` (it only waits
//! for SIGTERM) from an image built here from swarm-sticky's own binary
//! ([`image`]; no registry). A service rather than a plain container,
//! because a plain container can only join `--attachable` overlays and the
//! tutorial's network is not one. Anchors carry the labels
//! `com.swarm-sticky.anchor.node` and `.network` (outside the label
//! namespaces discovery reads, so they are never served). An anchor is
//! made for a network once a served task on it runs on another node (on a
//! single node the namespace goes only with the last local task, when
//! there is nothing left to reach), and removed once no served service
//! uses the network. Only anchors for this node are touched.
//!
//! Anchors outlive the process on purpose: a successor on the node (an
//! upgrade) keeps using them, so a draining process neither makes nor
//! removes any ([`stop_maintaining`]). Run as a stack (`--stack`), the
//! anchors carry the stack's label, so `docker stack rm` removes them with
//! it; once the stack's own services are gone, none is made.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bollard::{
    models::{
        NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec,
        TaskSpecContainerSpec, TaskSpecPlacement,
    },
    query_parameters::ListServicesOptions,
};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{DockerConfig, engine::Engine, table::Snapshot, to_services};
use crate::image;

/// Label with the node an anchor is for.
pub const LABEL_NODE: &str = "com.swarm-sticky.anchor.node";
/// Label with the network an anchor attaches to.
pub const LABEL_NETWORK: &str = "com.swarm-sticky.anchor.network";
/// The label `docker stack` puts on everything a stack owns.
pub const LABEL_STACK: &str = "com.docker.stack.namespace";

/// Set when the process starts draining.
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Makes [`maintain`] stop before its next pass: a draining process
/// leaves the anchors as they are.
pub fn stop_maintaining() {
    STOPPED.store(true, Ordering::Release);
}

/// Why an anchor could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The Docker API failed.
    #[error("docker API")]
    Docker(#[from] bollard::errors::Error),
    /// The image context could not be made.
    #[error("anchor image")]
    Image(#[from] image::ImageError),
    /// The image build reported an error.
    #[error("building the anchor image: {0}")]
    Build(String),
    /// This node has no swarm node ID.
    #[error("this node is not in a swarm")]
    NoNode,
    /// Connecting to the engine failed.
    #[error(transparent)]
    Engine(#[from] super::engine::EngineError),
}

/// The networks the served services of `snapshot` attach to: where an
/// anchor may stay.
pub fn used(snapshot: &Snapshot) -> BTreeSet<String> {
    snapshot
        .services
        .iter()
        .flat_map(|s| s.networks.iter().cloned())
        .collect()
}

/// The networks with served tasks on nodes other than `node`: where this
/// node needs an anchor.
pub fn with_remote_tasks(snapshot: &Snapshot, node: &str) -> BTreeSet<String> {
    snapshot
        .services
        .iter()
        .flat_map(|s| s.backends.iter())
        .filter(|b| b.node_id.as_deref().is_some_and(|n| n != node))
        .map(|b| b.network_id.clone())
        .collect()
}

/// The anchors of `node`: network ID → service ID.
async fn anchors(engine: &Engine, node: &str) -> Result<BTreeMap<String, String>, AnchorError> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_NODE}={node}")])]);
    let opts = ListServicesOptions {
        filters: Some(filters),
        ..Default::default()
    };
    let list = engine.docker().list_services(Some(opts)).await?;
    Ok(list
        .into_iter()
        .filter_map(|s| {
            let net = s.spec?.labels?.get(LABEL_NETWORK)?.clone();
            Some((net, s.id?))
        })
        .collect())
}

/// Builds the anchor image unless the engine has it.
async fn ensure_image(engine: &Engine) -> Result<String, AnchorError> {
    // Both read the whole binary (tens of MiB): not on a runtime thread,
    // which also serves the admin API.
    let blocking = |e: tokio::task::JoinError| AnchorError::Build(e.to_string());
    let tag = tokio::task::spawn_blocking(image::anchor_tag).await.map_err(blocking)?;
    if engine.docker().inspect_image(&tag).await.is_ok() {
        return Ok(tag);
    }
    let context = tokio::task::spawn_blocking(|| image::context(image::ANCHOR_DOCKERFILE))
        .await
        .map_err(blocking)??;
    image::build(engine.docker(), context, &tag).await?;
    info!(image = %tag, "built the anchor image from this binary");
    Ok(tag)
}

/// Whether `stack` still has a service other than anchors: `docker stack
/// rm` removes the stack's swarm-sticky service before its anchors, and
/// an anchor made after that would be left behind.
async fn stack_exists(engine: &Engine, stack: &str) -> Result<bool, AnchorError> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_STACK}={stack}")])]);
    let opts = ListServicesOptions {
        filters: Some(filters),
        ..Default::default()
    };
    let list = engine.docker().list_services(Some(opts)).await?;
    Ok(list.iter().any(|s| {
        s.spec
            .as_ref()
            .and_then(|spec| spec.labels.as_ref())
            .is_some_and(|l| !l.contains_key(LABEL_NODE))
    }))
}

/// Creates the anchor of `network` on `node` (in `stack`, when this
/// process runs in one); `present`: the namespace exists already (a local
/// task holds it), for the log.
async fn create(
    engine: &Engine,
    node: &str,
    network: &str,
    stack: Option<&str>,
    present: bool,
) -> Result<(), AnchorError> {
    let image = ensure_image(engine).await?;
    let short = |s: &str| s.get(..10).unwrap_or(s).to_owned();
    let mut labels = HashMap::from([
        (LABEL_NODE.to_string(), node.to_string()),
        (LABEL_NETWORK.to_string(), network.to_string()),
    ]);
    if let Some(stack) = stack {
        labels.insert(LABEL_STACK.to_string(), stack.to_string());
    }
    let spec = ServiceSpec {
        name: Some(format!("swarm-sticky-anchor-{}-{}", short(network), short(node))),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image),
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec![format!("node.id=={node}")]),
                ..Default::default()
            }),
            networks: Some(vec![NetworkAttachmentConfig {
                target: Some(network.to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        ..Default::default()
    };
    engine.docker().create_service(spec, None).await?;
    let why = if present {
        "the namespace on the network stays when local tasks are replaced"
    } else {
        "this node had no namespace on the network"
    };
    info!(network, node, "created an anchor: {why}");
    Ok(())
}

/// One pass: an anchor for each network with served tasks on other
/// nodes, none for networks no served service uses.
async fn reconcile(engine: &Engine, node: &str, cfg: &DockerConfig, snapshot: &Snapshot) -> Result<(), AnchorError> {
    let existing = anchors(engine, node).await?;
    let wanted = with_remote_tasks(snapshot, node);
    let missing: Vec<&String> = wanted.iter().filter(|net| !existing.contains_key(*net)).collect();
    let stack = cfg.stack.as_deref();
    if !missing.is_empty()
        && let Some(stack) = stack
        && !stack_exists(engine, stack).await?
    {
        return Ok(());
    }
    for net in missing {
        if STOPPED.load(Ordering::Acquire) {
            return Ok(());
        }
        let present = to_services::overlay_netns(&cfg.netns_dir, net).is_some();
        create(engine, node, net, stack, present).await?;
    }
    let used = used(snapshot);
    for (net, id) in &existing {
        if !used.contains(net) {
            engine.docker().delete_service(id).await?;
            info!(network = %net, "removed the anchor of a network no served service uses");
        }
    }
    Ok(())
}

/// What the anchor task runs (`swarm-sticky anchor`, PID 1 of its
/// container): nothing but waiting for SIGTERM or SIGINT.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub async fn wait_for_stop() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Keeps the anchors of this node in line with the tables on `rx`, also
/// every resync period; runs until dropped or [`stop_maintaining`].
/// Failures are logged once per kind and retried on the next pass.
pub async fn maintain(cfg: DockerConfig, mut rx: watch::Receiver<Arc<Snapshot>>) {
    let mut engine: Option<(Engine, String)> = None;
    let mut last_error: Option<String> = None;
    // Nothing is decided before the first table: an empty default would
    // remove every anchor.
    if rx.changed().await.is_err() {
        return;
    }
    while !STOPPED.load(Ordering::Acquire) {
        let snapshot = rx.borrow_and_update().clone();
        let result = async {
            if engine.is_none() {
                let e = Engine::connect(&cfg.host).await?;
                let node = e
                    .node_id()
                    .await?
                    .filter(|n| !n.is_empty())
                    .ok_or(AnchorError::NoNode)?;
                engine = Some((e, node));
            }
            let Some((e, node)) = &engine else { return Ok(()) };
            reconcile(e, node, &cfg, &snapshot).await
        }
        .await;
        match result {
            Ok(()) => last_error = None,
            Err(err) => {
                let text = crate::error::chain(&err).to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    warn!(error = %text, "anchors: retrying on the next pass");
                }
                last_error = Some(text);
                engine = None;
            }
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(cfg.resync) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::discovery::{
        labels,
        table::DiscoveredService,
        tasks::{TaskBackend, TaskState},
    };

    fn service(name: &str, networks: &[&str], tasks: &[(&str, &str)]) -> DiscoveredService {
        let l: BTreeMap<String, String> = [("swarm-sticky.port".to_string(), "80".to_string())].into();
        DiscoveredService {
            id: name.into(),
            name: name.into(),
            labels: labels::parse(&l).expect("labels"),
            backends: tasks
                .iter()
                .enumerate()
                .map(|(i, (net, node))| TaskBackend {
                    identity: format!("{name}{i}.1"),
                    task_id: format!("{name}{i}"),
                    slot: "1".into(),
                    addr: "192.0.2.1:80".parse().expect("addr"),
                    network_id: (*net).into(),
                    container_id: None,
                    node_id: Some((*node).into()),
                    state: TaskState::Serving,
                })
                .collect(),
            networks: networks.iter().map(ToString::to_string).collect(),
            waiting_slots: Vec::new(),
            updating: false,
            short: false,
        }
    }

    /// A network with served tasks on other nodes gets an anchor, whether
    /// or not some run here too; one with local tasks only, or none yet,
    /// does not. Any network in use keeps its anchor.
    #[test]
    fn which_networks_get_an_anchor() {
        let snap = Snapshot {
            services: vec![
                service("remote", &["n1"], &[("n1", "other"), ("n1", "third")]),
                service("mixed", &["n2"], &[("n2", "other"), ("n2", "me")]),
                service("starting", &["n3"], &[]),
            ],
            warnings: Vec::new(),
        };
        assert_eq!(
            with_remote_tasks(&snap, "me"),
            BTreeSet::from(["n1".to_string(), "n2".to_string()])
        );
        let local = Snapshot {
            services: vec![service("local", &["n4"], &[("n4", "me")])],
            warnings: Vec::new(),
        };
        assert!(with_remote_tasks(&local, "me").is_empty());
        assert_eq!(
            used(&snap),
            BTreeSet::from(["n1".to_string(), "n2".to_string(), "n3".to_string()])
        );
    }
}
