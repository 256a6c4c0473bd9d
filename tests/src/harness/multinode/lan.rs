//! The node LAN: a bridge in the host namespace with one port per node,
//! and a link of its own from the host to each node for the test's
//! clients. Nothing routes off the machine: the nodes have no default
//! route, only the LAN.
//!
//! Why two links per node: a partition takes the node's bridge port down
//! (`ip link set <port> down`), which cuts it off from the other nodes.
//! The host's clients stand for clients on the node's own side of a
//! partition, so they reach every node over its client link (a /32 route
//! each way), which a partition leaves alone. Node-to-node traffic (Swarm's
//! control plane, gossip, VXLAN) only ever crosses the bridge.
//!
//! The overlay address pool of the swarm is fenced off in the host
//! namespace (an `unreachable` route): a host connection to an overlay
//! address would leave the machine; with the fence it fails at once.

use std::{os::unix::fs::MetadataExt as _, path::PathBuf, process::Command};

use super::{ADDR_POOL, run};

/// The node LAN's first three octets (node N is `.N`, the host `.254`).
pub const LAN: &str = "100.64.78";

/// The host's address on the LAN.
pub fn host_ip() -> String {
    format!("{LAN}.254")
}

/// The bridge, the nodes' namespaces and links, the FORWARD rule and the
/// fence; all removed on drop (after the daemons are gone), with the eBPF
/// pins swarm-sticky left for each namespace.
pub(super) struct Lan {
    /// Interface-name suffix unique to this test process.
    id: u32,
    bridge: String,
    /// Namespaces made so far (`ip netns del` also removes their links).
    namespaces: Vec<String>,
}

impl Lan {
    /// The bridge with the host's address, the FORWARD rule and the fence.
    pub(super) fn new(id: u32) -> Self {
        let bridge = format!("ssmnbr{id}");
        let lan = Self {
            id,
            bridge: bridge.clone(),
            namespaces: Vec::new(),
        };
        run("ip", &["link", "add", &bridge, "type", "bridge"]);
        run("ip", &["addr", "add", &format!("{}/24", host_ip()), "dev", &bridge]);
        run("ip", &["link", "set", &bridge, "up"]);
        // The host's FORWARD policy is DROP (its own dockerd set it), and
        // bridged frames pass through it (br_netfilter): node-to-node
        // traffic needs this rule.
        run(
            "iptables",
            &["-I", "FORWARD", "1", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT"],
        );
        run("ip", &["route", "replace", "unreachable", ADDR_POOL]);
        lan
    }

    /// The host side of node `n`'s bridge port (1-based `n`).
    fn port(&self, n: usize) -> String {
        format!("ssv{n}-{}", self.id)
    }

    /// The host side of node `n`'s client link (1-based `n`).
    fn client_link(&self, n: usize) -> String {
        format!("ssc{n}-{}", self.id)
    }

    /// Makes node `n`'s namespace (1-based `n`) with its bridge port
    /// (`eth0`, the LAN address) and its client link (`cl0`); returns the
    /// namespace's name and the node's address.
    pub(super) fn add_node(&mut self, n: usize) -> (String, String) {
        let netns = format!("ssmn{n}-{}", self.id);
        let ip = format!("{LAN}.{n}");
        run("ip", &["netns", "add", &netns]);
        self.namespaces.push(netns.clone());
        let ns = |args: &[&str]| {
            let mut all = vec!["-n", netns.as_str()];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        let port = self.port(n);
        run(
            "ip",
            &[
                "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ],
        );
        run("ip", &["link", "set", &port, "master", &self.bridge, "up"]);
        ns(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        ns(&["link", "set", "eth0", "up"]);
        ns(&["link", "set", "lo", "up"]);
        let client = self.client_link(n);
        run(
            "ip",
            &[
                "link", "add", &client, "type", "veth", "peer", "name", "cl0", "netns", &netns,
            ],
        );
        run("ip", &["link", "set", &client, "up"]);
        ns(&["link", "set", "cl0", "up"]);
        // More specific than the LAN's /24 on either side: host <-> node
        // always takes the client link, both ways (so reverse-path checks
        // pass too).
        let host = host_ip();
        run(
            "ip",
            &["route", "add", &format!("{ip}/32"), "dev", &client, "src", &host],
        );
        ns(&["route", "add", &format!("{host}/32"), "dev", "cl0", "src", &ip]);
        (netns, ip)
    }

    /// Takes node `n`'s bridge port down (`up == false`) or up again.
    pub(super) fn set_port(&self, n: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        run("ip", &["link", "set", &self.port(n), state]);
    }
}

/// Removes the bpffs pins swarm-sticky made for the namespace `netns`
/// (named after its inode) and left behind when it was killed: a pinned
/// sk_lookup link would keep the deleted namespace alive, and a later
/// namespace with the same inode number would find them.
fn remove_pins(netns: &str) {
    let Ok(meta) = std::fs::metadata(format!("/run/netns/{netns}")) else {
        return;
    };
    let pins = PathBuf::from(format!("/sys/fs/bpf/swarm-sticky/net-{}", meta.ino()));
    if let Ok(entries) = std::fs::read_dir(&pins) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let _ = std::fs::remove_dir(&pins);
}

impl Drop for Lan {
    fn drop(&mut self) {
        for (i, ns) in self.namespaces.iter().enumerate() {
            remove_pins(ns);
            // Deleting one end of a veth pair deletes both at once, while
            // a deleted namespace takes its devices along only when the
            // kernel gets round to freeing it: the next cluster must not
            // find these names taken.
            for link in [self.port(i + 1), self.client_link(i + 1)] {
                let _ = Command::new("ip").args(["link", "del", &link]).output();
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        let _ = Command::new("iptables")
            .args(["-D", "FORWARD", "-i", &self.bridge, "-o", &self.bridge, "-j", "ACCEPT"])
            .output();
        let _ = Command::new("ip")
            .args(["route", "del", "unreachable", ADDR_POOL])
            .output();
    }
}
