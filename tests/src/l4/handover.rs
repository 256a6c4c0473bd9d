//! Zero-downtime hand-over between processes, and recovery after a crash.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::{ClientLoop, PORT, admin, backend, get_ok, start};
use crate::harness::{client::get, netns::TestNet};

const ARGS: [&str; 6] = ["--listen", "0.0.0.0:8080", "--workers", "2", "--steering", "ebpf"];

/// A loop of at least 5,000 sequential connections runs while the process
/// is replaced twice (start the successor, SIGTERM the old one): not one
/// connection fails, and each process served some of them.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn process_is_replaced_twice_without_a_failed_connection() {
    replaced_twice(&ARGS, [500, 1500, 5000], get_ok);
}

/// The same on an HTTPS listener: each connection is a full TLS handshake
/// and a request; none is refused and no handshake fails.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn an_https_listener_is_handed_over_without_a_failed_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::harness::tls::TestCa::new(dir.path());
    let (chain, key) = (dir.path().join("a.pem"), dir.path().join("a.key"));
    ca.issue(&chain, &key, &["a.test"], crate::harness::tls::KeyKind::Ecdsa);
    let (chain, key) = (crate::harness::tls::path(&chain), crate::harness::tls::path(&key));
    let args = [
        "--listen",
        "https://0.0.0.0:8080",
        "--workers",
        "2",
        "--steering",
        "ebpf",
        "--tls-cert",
        &chain,
        "--tls-key",
        &key,
    ];
    let ca_cert = ca.cert.clone();
    replaced_twice(&args, [200, 600, 2000], move |target| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut tls = crate::harness::tls::connect(target, "a.test", &ca_cert, &[b"http/1.1"])
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tls.write_all(b"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n")
                .await
                .map_err(|e| e.to_string())?;
            let mut answer = Vec::new();
            // The server closes after an HTTP/1.0 answer; a missing
            // close_notify is not a failure of the answer.
            let _ = tls.read_to_end(&mut answer).await;
            if answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200") {
                Ok(())
            } else {
                Err(format!(
                    "answer: {:?}",
                    String::from_utf8_lossy(&answer[..answer.len().min(40)])
                ))
            }
        })
    });
}

/// Runs `request` in a loop from the client namespace while the process
/// started with `args` is replaced twice; `counts` are the connections
/// done before the first and the second replacement and in all.
fn replaced_twice(
    args: &[&str],
    counts: [u64; 3],
    request: impl Fn(SocketAddr) -> Result<(), String> + Send + 'static,
) {
    let net = TestNet::new();
    let _backend = backend(&net);
    let mut first = start(&net, 0, args);
    first.wait_ready();

    let target = SocketAddr::new(net.server_ip(false), PORT);
    let client = ClientLoop::start(&net, target, request);

    client.wait_count(counts[0], Duration::from_secs(30));
    let mut second = start(&net, 1, args);
    second.wait_ready();
    first.signal(libc::SIGTERM);
    assert!(
        first.wait_exit(Duration::from_secs(40)).success(),
        "first process: {}",
        first.stderr()
    );
    let after_first = client.done();

    client.wait_count(after_first + counts[1], Duration::from_secs(30));
    let second_served = net.server.run(|| crate::harness::client::accepted_per_worker(admin(1)));
    let mut third = start(&net, 2, args);
    third.wait_ready();
    second.signal(libc::SIGTERM);
    assert!(
        second.wait_exit(Duration::from_secs(40)).success(),
        "second process: {}",
        second.stderr()
    );

    client.wait_count(
        counts[2].max(client.done() + counts[1] * 2 / 3),
        Duration::from_secs(60),
    );
    let total = client.finish();
    let third_served = net.server.run(|| crate::harness::client::accepted_per_worker(admin(2)));

    assert!(total >= counts[2], "only {total} connections");
    assert!(
        second_served.iter().sum::<u64>() > 0,
        "the second process served nothing"
    );
    assert!(third_served.iter().sum::<u64>() > 0, "the third process served nothing");
    assert!(second.stderr().contains("taking over the published address"));
}

/// After SIGKILL the port is not served (no process, stale pins); a new
/// start detects the stale pins, replaces them and serves within 1 s.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn restart_after_sigkill_serves_within_a_second() {
    let net = TestNet::new();
    let _backend = backend(&net);
    let mut crashed = start(&net, 0, &ARGS);
    crashed.wait_ready();
    let target = SocketAddr::new(net.server_ip(false), PORT);
    assert_eq!(
        net.client.run(move || get(target, "/").map(|r| r.status).ok()),
        Some(200)
    );

    crashed.signal(libc::SIGKILL);
    crashed.wait_exit(Duration::from_secs(5));
    let refused = net.client.run(move || get(target, "/").is_err());
    assert!(refused, "the port was still served after SIGKILL");

    let started = Instant::now();
    let mut next = start(&net, 1, &ARGS);
    let served_after = net.client.run(move || {
        let deadline = started + Duration::from_secs(1);
        while Instant::now() < deadline {
            if matches!(get(target, "/"), Ok(r) if r.status == 200) {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    });
    let elapsed =
        served_after.unwrap_or_else(|| panic!("not served within 1 s of the new start; stderr:\n{}", next.stderr()));
    next.wait_for_line(
        "replacing eBPF pins left by a swarm-sticky that is gone",
        Duration::from_secs(2),
    );
    eprintln!("served again {elapsed:?} after the new start");
}

/// Pins written by a swarm-sticky of another ABI version are refused with
/// a message saying what to do, and left as they are.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn pins_of_another_abi_version_are_refused() {
    use aya::maps::{Array, Map, MapData};
    use proxy_common::{META_ABI_SLOT, names::MAP_META};

    let net = TestNet::new();
    let _backend = backend(&net);
    let mut old = start(&net, 0, &ARGS);
    old.wait_ready();
    old.signal(libc::SIGKILL);
    old.wait_exit(Duration::from_secs(5));

    let meta = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/swarm-sticky/net-{}/{MAP_META}",
        net.server.inode()
    ));
    let data = MapData::from_pin(&meta).expect("the killed process left its META pin");
    let mut array: Array<_, u32> = Array::try_from(Map::Array(data)).expect("META is an array");
    array.set(META_ABI_SLOT, 999, 0).expect("write a foreign ABI version");

    let mut next = start(&net, 1, &ARGS);
    let status = next.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    let err = next.stderr();
    assert!(err.contains("ABI v999") && err.contains("rm -r"), "{err}");
    assert!(meta.exists(), "the foreign pins must be left alone");
}
