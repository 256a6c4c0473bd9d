//! Without privileges: `auto` falls back to SO_REUSEPORT with one warning
//! naming what is missing, `ebpf` exits non-zero with that message.

use std::{net::SocketAddr, time::Duration};

use super::{PORT, admin, backend, run_args};
use crate::harness::{
    client::{admin_status, get},
    netns::TestNet,
    process::{Proxy, Spawn},
};

/// `setpriv` arguments: user nobody, no groups, no capabilities at all.
fn unprivileged() -> Option<Vec<String>> {
    Some(
        [
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]
        .iter()
        .map(ToString::to_string)
        .collect(),
    )
}

fn spawn(net: &TestNet, steering: &str) -> Proxy {
    let mut args = run_args(0);
    args.extend(
        ["--listen", "0.0.0.0:8080", "--workers", "2", "--steering", steering]
            .iter()
            .map(ToString::to_string),
    );
    Proxy::spawn(Spawn {
        netns: &net.server,
        args,
        setpriv: unprivileged(),
    })
}

/// `--steering auto` without capabilities: one warning line naming the
/// missing capabilities, then it serves through SO_REUSEPORT.
#[test]
#[ignore = "privileged: needs root (to drop privileges) and network namespaces; run `cargo xtask test`"]
fn auto_falls_back_with_a_warning_and_serves() {
    let net = TestNet::new();
    let _backend = backend(&net);
    let mut proxy = spawn(&net, "auto");
    let warning = proxy.wait_for_line("falling back to SO_REUSEPORT", Duration::from_secs(20));
    assert!(warning.contains("CAP_BPF") && warning.contains("root"), "{warning}");
    proxy.wait_ready();
    assert_eq!(
        proxy.stderr().matches("falling back").count(),
        1,
        "one warning line only"
    );

    let target = SocketAddr::new(net.server_ip(false), PORT);
    let r = net.client.run(move || get(target, "/")).expect("served");
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("I'm w1"), "{}", r.body);
    let status = net.server.run(|| admin_status(admin(0))).expect("admin status");
    assert_eq!(status["dataplane"]["steering"], "reuseport");
}

/// `--steering ebpf` without capabilities exits non-zero and says why.
#[test]
#[ignore = "privileged: needs root (to drop privileges) and network namespaces; run `cargo xtask test`"]
fn ebpf_without_privileges_exits_with_the_reason() {
    let net = TestNet::new();
    let mut proxy = spawn(&net, "ebpf");
    let status = proxy.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "it should fail");
    let err = proxy.stderr();
    assert!(
        err.contains("CAP_BPF") && err.contains("CAP_NET_ADMIN") && err.contains("CAP_PERFMON"),
        "{err}"
    );
    assert!(!err.contains("ready"), "it must not serve: {err}");
}
