//! Task mapping on `/tasks` responses recorded from Docker Engine 20.10
//! (API 1.41), trimmed.

use std::collections::BTreeMap;

use super::*;
use crate::discovery::labels;

const TASKS: &str = r#"[
  {"ID": "gs7tpt4jdz6cr4rgt1s7w43tt", "ServiceID": "84k5zlz82rib6cer2wst7kx59", "Slot": 2,
   "NodeID": "l8ioarrzw7afa4ku5wf9587dx",
   "Status": {"State": "running", "ContainerStatus": {"ContainerID": "a9af161bebea", "PID": 12065, "ExitCode": 0}},
   "DesiredState": "running",
   "NetworksAttachments": [
     {"Network": {"ID": "pcklmtjdma", "Spec": {"Name": "ingress", "Ingress": true}}, "Addresses": ["10.0.0.7/24"]},
     {"Network": {"ID": "s1osfdpjkht8uwwpttjoh5orx", "Spec": {"Name": "whoaminet"}}, "Addresses": ["10.0.1.4/24"]}
   ]},
  {"ID": "kidr5xvj1w5k5wjradm7k9pnp", "ServiceID": "84k5zlz82rib6cer2wst7kx59", "Slot": 1,
   "NodeID": "l8ioarrzw7afa4ku5wf9587dx",
   "Status": {"State": "running", "ContainerStatus": {"ContainerID": "d4801d7d7843"}},
   "DesiredState": "shutdown",
   "NetworksAttachments": [{"Network": {"ID": "s1osfdpjkht8uwwpttjoh5orx", "Spec": {"Name": "whoaminet"}}, "Addresses": ["10.0.1.3/24"]}]},
  {"ID": "newtask00000000000000000", "ServiceID": "84k5zlz82rib6cer2wst7kx59", "Slot": 1,
   "Status": {"State": "starting"}, "DesiredState": "running", "NetworksAttachments": []},
  {"ID": "globaltask0000000000000", "ServiceID": "globalsvc", "NodeID": "node-b",
   "Status": {"State": "running"}, "DesiredState": "running",
   "NetworksAttachments": [{"Network": {"ID": "netb", "Spec": {"Name": "b"}}, "Addresses": ["10.0.9.2/24"]}]}
]"#;

fn tasks() -> Vec<Task> {
    serde_json::from_str(TASKS).expect("recorded response parses")
}

fn tutorial_labels() -> labels::ServiceLabels {
    let l: BTreeMap<String, String> = [("traefik.port", "8000"), ("traefik.docker.network", "whoaminet")]
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    labels::parse(&l).expect("labels")
}

/// Running tasks serve, a running task with desired state shutdown drains,
/// a starting one is not a backend; addresses lose their prefix length.
#[test]
fn running_tasks_on_the_labelled_network() {
    let b = backends(&tasks(), "84k5zlz82rib6cer2wst7kx59", &tutorial_labels()).unwrap();
    assert_eq!(b.len(), 2, "{b:?}");
    let serving = b.iter().find(|t| t.task_id == "gs7tpt4jdz6cr4rgt1s7w43tt").unwrap();
    assert_eq!(serving.addr, "10.0.1.4:8000".parse().unwrap());
    assert_eq!(serving.identity, "gs7tpt4jdz6cr4rgt1s7w43tt.2");
    assert_eq!(serving.state, TaskState::Serving);
    assert_eq!(serving.network_id, "s1osfdpjkht8uwwpttjoh5orx");
    assert_eq!(serving.container_id.as_deref(), Some("a9af161bebea"));
    let draining = b.iter().find(|t| t.task_id == "kidr5xvj1w5k5wjradm7k9pnp").unwrap();
    assert_eq!(draining.state, TaskState::Draining);
    assert_eq!(draining.slot, "1");
}

/// A global service's tasks have no slot: the node stands in for it.
#[test]
fn global_tasks_use_the_node_as_slot() {
    let mut l = tutorial_labels();
    l.network = None;
    let b = backends(&tasks(), "globalsvc", &l).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].identity, "globaltask0000000000000.node-b");
}

#[test]
fn network_selection_errors() {
    let mut l = tutorial_labels();
    l.network = Some("othernet".into());
    assert!(matches!(
        backends(&tasks(), "84k5zlz82rib6cer2wst7kx59", &l),
        Err(MappingError::UnknownNetwork(..))
    ));
    let mut two = tasks();
    two[0].networks_attachments.push(Attachment {
        network: AttachedNetwork {
            id: "x".into(),
            spec: NetworkSpec {
                name: "second".into(),
                ingress: false,
            },
        },
        addresses: vec!["10.0.3.2/24".into()],
    });
    l.network = None;
    assert!(matches!(
        backends(&two, "84k5zlz82rib6cer2wst7kx59", &l),
        Err(MappingError::AmbiguousNetwork(_))
    ));
}
