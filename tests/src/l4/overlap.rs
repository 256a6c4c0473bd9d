//! Two processes on one host during an upgrade: they share the admin
//! address, and an old process told to stop before its successor is ready
//! keeps the published port until the successor takes it.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::{ClientLoop, PORT, admin, backend, get_ok, run_args};
use crate::harness::{
    client::get,
    netns::TestNet,
    process::{Proxy, Spawn},
};

/// `swarm-sticky run` in the server namespace with the admin listener on
/// `admin_at` and `args` added.
fn start_at(net: &TestNet, admin_at: SocketAddr, args: &[&str]) -> Proxy {
    let mut all = run_args(0);
    let at = all.iter().position(|a| a == "--admin").expect("--admin in run_args") + 1;
    all[at] = admin_at.to_string();
    all.extend(args.iter().map(ToString::to_string));
    Proxy::spawn(Spawn {
        netns: &net.server,
        args: all,
        setpriv: None,
    })
}

/// The `instance` of `/api/status` and the status of `/readyz`, each on a
/// connection of its own, `n` times.
fn admin_answers(net: &TestNet, n: usize) -> Vec<(String, u16)> {
    net.server.run(move || {
        (0..n)
            .map(|_| {
                let status = get(admin(0), "/api/status").expect("/api/status");
                let v: serde_json::Value = serde_json::from_str(&status.body).expect("status JSON");
                let ready = get(admin(0), "/readyz").expect("/readyz");
                assert!(
                    ready.header("swarm-sticky-instance").is_some(),
                    "/readyz does not name its process: {ready:?}"
                );
                (v["instance"].as_str().unwrap_or_default().to_owned(), ready.status)
            })
            .collect()
    })
}

/// A second process with the same `--admin` starts (it used to exit: the
/// address was taken) and serves; admin connections reach both, each
/// answer naming its process, both ready. Once the first has drained and
/// exited, every admin answer comes from the second.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn two_processes_share_the_admin_address_and_each_answer_names_its_process() {
    let net = TestNet::new();
    let _backend = backend(&net);
    let args = ["--listen", "0.0.0.0:8080", "--workers", "2", "--steering", "ebpf"];
    let mut first = start_at(&net, admin(0), &args);
    first.wait_ready();
    let mut second = start_at(&net, admin(0), &args);
    second.wait_ready();

    let answers = admin_answers(&net, 40);
    let instances: BTreeSet<&str> = answers.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(instances.len(), 2, "40 admin connections reached {instances:?}");
    assert!(answers.iter().all(|(_, ready)| *ready == 200), "{answers:?}");

    first.signal(libc::SIGTERM);
    assert!(first.wait_exit(Duration::from_secs(40)).success(), "{}", first.stderr());
    let after = admin_answers(&net, 20);
    let left: BTreeSet<&str> = after.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(
        left.len(),
        1,
        "after the first exited, admin answers came from {left:?}"
    );
    assert!(after.iter().all(|(_, ready)| *ready == 200), "{after:?}");
}

/// The second process follows a Docker API that does not answer, so it
/// registers its workers but waits (10 s) for a first table before it
/// takes the published port. The first process is told to stop in that
/// window: it keeps serving until the second takes over, and a client
/// loop running throughout sees no refused or failed connection.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn a_process_stopped_before_its_successor_is_ready_keeps_the_port_until_it_is() {
    let net = TestNet::new();
    let _backend = backend(&net);
    let args = ["--listen", "0.0.0.0:8080", "--workers", "2", "--steering", "ebpf"];
    let mut first = start_at(&net, admin(0), &args);
    first.wait_ready();

    let target = SocketAddr::new(net.server_ip(false), PORT);
    let client = ClientLoop::start(&net, target, get_ok);

    let nowhere = format!("unix://{}/no-docker.sock", std::env::temp_dir().display());
    let mut args2: Vec<&str> = args.to_vec();
    args2.extend(["--docker", "--docker-host", &nowhere]);
    let mut second = start_at(&net, admin(1), &args2);
    second.wait_for_line("joining the running swarm-sticky", Duration::from_secs(20));
    let stopped = Instant::now();
    first.signal(libc::SIGTERM);
    first.wait_for_line("a successor is starting", Duration::from_secs(5));
    second.wait_ready();
    let took_over = stopped.elapsed();
    assert!(first.wait_exit(Duration::from_secs(40)).success(), "{}", first.stderr());
    let at_exit = client.done();
    client.wait_count(at_exit + 200, Duration::from_secs(10));
    let total = client.finish();
    eprintln!("the successor took over {took_over:?} after the old process was told to stop; {total} connections");
    assert!(
        total >= at_exit + 200,
        "the successor served too little: {total} (at exit {at_exit})"
    );
    assert!(second.stderr().contains("taking over the published address"));
}
