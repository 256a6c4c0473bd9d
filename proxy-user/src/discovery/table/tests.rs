//! The table built from listings shaped like a real engine's answers.

use super::*;

fn service(id: &str, name: &str, labels: &[(&str, &str)]) -> ServiceInfo {
    ServiceInfo {
        id: id.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        networks: vec!["net1".into()],
        updating: false,
        replicas: None,
    }
}

fn task(id: &str, service: &str, slot: u64, ip: &str) -> Task {
    task_on(id, service, slot, ip, "node-a", "running", "running")
}

fn task_on(id: &str, service: &str, slot: u64, ip: &str, node: &str, desired: &str, state: &str) -> Task {
    serde_json::from_value(serde_json::json!({
        "ID": id, "ServiceID": service, "Slot": slot, "NodeID": node, "DesiredState": desired,
        "Status": {"State": state},
        "NetworksAttachments": [{"Network": {"ID": "net1", "Spec": {"Name": "whoaminet"}}, "Addresses": [format!("{ip}/24")]}]
    }))
    .expect("task json")
}

fn node(id: &str, hostname: &str, state: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        hostname: hostname.into(),
        state: state.into(),
    }
}

fn whoami() -> ServiceInfo {
    service(
        "s1",
        "whoami",
        &[("traefik.port", "8000"), ("traefik.docker.network", "whoaminet")],
    )
}

fn states(snap: &Snapshot) -> Vec<TaskState> {
    snap.services[0].backends.iter().map(|b| b.state.clone()).collect()
}

/// Labelled services are served, unlabelled ones ignored, and a bad
/// label becomes a warning for that service only.
#[test]
fn build_serves_labelled_services_and_reports_bad_ones() {
    let listing = Listing {
        services: vec![
            whoami(),
            service("s2", "plain", &[]),
            service("s3", "broken", &[("traefik.enable", "true")]),
            service(
                "s4",
                "other",
                &[("swarm-sticky.port", "80"), ("swarm-sticky.colour", "blue")],
            ),
        ],
        tasks: vec![
            task("t1", "s1", 1, "10.0.1.3"),
            task("t2", "s1", 2, "10.0.1.4"),
            task("t3", "s4", 1, "10.0.1.9"),
        ],
        nodes: vec![node("node-a", "node1", "ready")],
        unhealthy: BTreeSet::new(),
    };
    let snap = build(&listing);
    let names: Vec<&str> = snap.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["other", "whoami"]);
    assert_eq!(snap.services[1].backends.len(), 2);
    let about = |svc: &str| -> Vec<String> {
        snap.warnings
            .iter()
            .filter(|w| w.service() == svc)
            .map(ToString::to_string)
            .collect()
    };
    assert!(about("broken")[0].contains("no backend port"), "{:?}", snap.warnings);
    assert!(about("other")[0].contains("swarm-sticky.colour"), "{:?}", snap.warnings);
    assert!(about("whoami").is_empty(), "{:?}", snap.warnings);
    // Same input, same table: nothing would be republished.
    assert_eq!(build(&listing), snap);
    assert!(!snap.in_transition());
}

/// A local container failing its HEALTHCHECK: that task only is down.
#[test]
fn an_unhealthy_local_container_holds_its_task_down() {
    let listing = Listing {
        services: vec![whoami()],
        tasks: vec![task("t1", "s1", 1, "10.0.1.3"), task("t2", "s1", 2, "10.0.1.4")],
        nodes: vec![node("node-a", "node1", "ready")],
        unhealthy: ["t2".to_string()].into(),
    };
    assert_eq!(
        states(&build(&listing)),
        vec![TaskState::Serving, TaskState::Down(DownCause::Unhealthy)]
    );
}

/// What a manager lists once a node is `down`: its task reads desired
/// state `shutdown` and status `running` (for a day). That is a task that
/// is gone, not one draining; the same listing on a live node drains.
#[test]
fn a_task_on_a_node_that_is_not_ready_is_down_not_draining() {
    let listing = |state: &str| Listing {
        services: vec![whoami()],
        tasks: vec![
            task("t1", "s1", 1, "10.0.1.3"),
            task_on("t2", "s1", 2, "10.0.1.4", "node-b", "shutdown", "running"),
            // The replacement Swarm schedules for slot 2, not running yet.
            task_on("t3", "s1", 2, "10.0.1.5", "node-a", "running", "preparing"),
        ],
        nodes: vec![node("node-a", "node1", "ready"), node("node-b", "node2", state)],
        unhealthy: BTreeSet::new(),
    };
    let lost = build(&listing("down"));
    let down = DownCause::Node {
        hostname: "node2".into(),
        state: "down".into(),
    };
    assert_eq!(down.to_string(), "its node node2 is down");
    assert_eq!(states(&lost), vec![TaskState::Serving, TaskState::Down(down)]);
    assert_eq!(lost.services[0].waiting_slots, ["2"]);
    let live = build(&listing("ready"));
    assert_eq!(states(&live), vec![TaskState::Serving, TaskState::Draining]);
    assert!(live.in_transition());
    // A node that left the swarm altogether is no better.
    let mut gone = listing("ready");
    gone.nodes.truncate(1);
    assert!(matches!(
        &states(&build(&gone))[1],
        TaskState::Down(DownCause::Node { state, .. }) if state == "gone"
    ));
}

/// A stop-first rolling update between its two steps: slot 1's old task
/// has stopped and its replacement is starting. The slot waits; slot 2,
/// whose task runs, does not. An update under way is a transition too.
#[test]
fn a_slot_whose_replacement_is_starting_waits() {
    let mut listing = Listing {
        services: vec![whoami()],
        tasks: vec![
            task_on("old1", "s1", 1, "10.0.1.3", "node-a", "shutdown", "shutdown"),
            task_on("new1", "s1", 1, "10.0.1.6", "node-a", "running", "starting"),
            task("t2", "s1", 2, "10.0.1.4"),
            task_on("new2", "s1", 2, "10.0.1.7", "node-a", "running", "pending"),
        ],
        nodes: vec![node("node-a", "node1", "ready")],
        unhealthy: BTreeSet::new(),
    };
    let snap = build(&listing);
    assert_eq!(snap.services[0].waiting_slots, ["1"]);
    assert!(snap.in_transition());
    listing.tasks.truncate(1);
    listing.tasks.push(task("new1", "s1", 1, "10.0.1.6"));
    assert!(!build(&listing).in_transition());
    listing.services[0].updating = true;
    assert!(build(&listing).in_transition());
}

/// A replicated service with fewer running tasks than its replicas is in
/// transition: Swarm replaces a failed task after its restart delay, and
/// nothing announces the replacement.
#[test]
fn a_service_short_of_its_replicas_is_in_transition() {
    let mut listing = Listing {
        services: vec![whoami()],
        tasks: vec![
            task("t1", "s1", 1, "10.0.1.3"),
            task_on("t2", "s1", 2, "10.0.1.4", "node-a", "shutdown", "failed"),
        ],
        nodes: vec![node("node-a", "node1", "ready")],
        unhealthy: BTreeSet::new(),
    };
    listing.services[0].replicas = Some(2);
    assert!(build(&listing).in_transition());
    listing.services[0].replicas = Some(1);
    assert!(!build(&listing).in_transition());
}
