//! Automatic certificates against Let's Encrypt's test CA (Pebble) on
//! loopback: each challenge type, the served chain checked against the
//! CA's root, a restart that reuses the account and certificates, a
//! renewal under load, and a CA that fails and is retried.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use crate::harness::{
    acme::{CaToCome, Pebble, PebbleSpec, services_file, start_acme},
    backend::Whoami,
    https_load::{HttpsLoad, LoadSpec},
    instance::{Instance, free_port, wait_until},
    tls::{TestCa, path, run, s_client, same_serial},
};

/// How long an order may take here (Pebble answers in about a second).
const ORDERED: Duration = Duration::from_secs(60);

/// Pebble validating HTTP-01 at `http` and TLS-ALPN-01 at `https`.
fn pebble_for(dir: &Path, http: SocketAddr, https: SocketAddr, validity_secs: Option<u64>) -> Pebble {
    Pebble::start(
        dir,
        &PebbleSpec {
            http_port: http.port(),
            tls_port: https.port(),
            validity_secs,
            listen: None,
        },
    )
}

/// swarm-sticky with ACME against `pebble`, plain HTTP on `http` and HTTPS
/// on `https` (the ports Pebble validates), plus `args`.
fn start(state: &Path, pebble: &Pebble, http: SocketAddr, https: SocketAddr, args: &[&str]) -> Instance {
    let mut all = vec!["--acme-email", "ops@example.com"];
    all.extend(args);
    start_acme(state, &pebble.directory, &pebble.server_root, http, https, &all)
}

/// The managed certificates in `/api/status`.
fn managed(i: &Instance) -> Vec<serde_json::Value> {
    i.admin_json("/api/status")["tls"]["acme"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until `n` certificates are managed and all valid; their serials
/// by first name.
fn wait_valid(i: &Instance, pebble: &Pebble, n: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + ORDERED;
    loop {
        let m = managed(i);
        if m.len() == n && m.iter().all(|c| c["state"] == "valid") {
            return m
                .iter()
                .map(|c| {
                    (
                        c["names"][0].as_str().unwrap().to_owned(),
                        c["serial"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "certificates not valid within {ORDERED:?}: {m:#?}\n--- swarm-sticky:\n{}\n--- pebble:\n{}",
            i.process.stderr(),
            pebble.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `curl` to `https://NAME:PORT/` resolved to 127.0.0.1, trusting only
/// `root`: verifies the chain and the name.
fn curl_verified(https: SocketAddr, name: &str, root: &Path) -> String {
    let resolve = format!("{name}:{}:127.0.0.1", https.port());
    let url = format!("https://{name}:{}/", https.port());
    let out = run(std::process::Command::new("curl").args([
        "-sS",
        "--max-time",
        "10",
        "--cacert",
        &path(root),
        "--resolve",
        &resolve,
        &url,
    ]));
    assert!(out.status.success(), "{url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn http_01_and_a_dns_01_wildcard_chain_to_the_cas_root_and_a_restart_orders_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (http, https) = (free_port(), free_port());
    let pebble = pebble_for(dir.path(), http, https, None);
    let w = Whoami::start("w1");
    let config = services_file(
        dir.path(),
        &w,
        &[("a.test", "acme = true"), ("x.w.test", "acme_domains = ['*.w.test']")],
    );
    let hook = path(&pebble.dns_hook());
    let state = dir.path().join("state");
    let args = ["--config", config.as_str(), "--acme-dns-hook", hook.as_str()];
    let mut i = start(&state, &pebble, http, https, &args);
    let serials = wait_valid(&i, &pebble, 2);
    let stderr = i.process.stderr();
    assert!(
        stderr.contains("ACME HTTP-01 challenge answered"),
        "a.test by HTTP-01:\n{stderr}"
    );
    let root = pebble.issuing_root();
    for (name, sni) in [("a.test", "a.test"), ("*.w.test", "x.w.test")] {
        let body = curl_verified(https, sni, &root);
        assert!(body.contains("I'm w1"), "{body}");
        let served = s_client(https, Some(sni), "", &[]).serial.unwrap();
        let (_, serial) = serials.iter().find(|(n, _)| n == name).unwrap();
        assert!(
            same_serial(&served, serial),
            "{sni}: served {served}, status says {serial}"
        );
    }
    let issued = pebble.issued();
    assert_eq!(issued, 2, "one order per certificate:\n{}", pebble.log());
    let key_mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    let ca_dir = std::fs::read_dir(state.join("acme"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(key_mode(&ca_dir.join("account.json")), 0o600);
    for f in std::fs::read_dir(ca_dir.join("certs")).unwrap() {
        assert_eq!(key_mode(&f.unwrap().path()), 0o600);
    }

    // A restart serves what the state directory holds: no account, no order.
    i.process.signal(libc::SIGTERM);
    i.process.wait_exit(Duration::from_secs(20));
    let i = start(&state, &pebble, http, https, &args);
    let again = wait_valid(&i, &pebble, 2);
    assert_eq!(again, serials, "the stored certificates are served");
    assert_eq!(pebble.issued(), issued, "nothing ordered after the restart");
    let stderr = i.process.stderr();
    assert!(!stderr.contains("account created"), "the account is reused:\n{stderr}");
    assert!(curl_verified(https, "a.test", &root).contains("I'm w1"));
}

#[test]
fn tls_alpn_01_is_answered_on_the_https_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (http, https) = (free_port(), free_port());
    let pebble = pebble_for(dir.path(), http, https, None);
    let w = Whoami::start("w1");
    let config = services_file(dir.path(), &w, &[("b.test", "acme = true")]);
    let args = ["--config", config.as_str(), "--acme-challenge", "tls-alpn-01"];
    let i = start(&dir.path().join("state"), &pebble, http, https, &args);
    wait_valid(&i, &pebble, 1);
    let stderr = i.process.stderr();
    assert!(stderr.contains("ACME TLS-ALPN-01 challenge answered"), "{stderr}");
    assert!(!stderr.contains("HTTP-01 challenge answered"), "{stderr}");
    assert!(curl_verified(https, "b.test", &pebble.issuing_root()).contains("I'm w1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_under_load_fails_nothing_and_serves_the_new_serial() {
    let dir = tempfile::tempdir().unwrap();
    let (http, https) = (free_port(), free_port());
    // 45 s certificates: renewed after about 30 s.
    let pebble = pebble_for(dir.path(), http, https, Some(45));
    let w = Whoami::start("w1");
    let config = services_file(dir.path(), &w, &[("a.test", "acme = true")]);
    let args = ["--config", config.as_str()];
    let i = start(&dir.path().join("state"), &pebble, http, https, &args);
    let first = tokio::task::block_in_place(|| wait_valid(&i, &pebble, 1))[0].1.clone();
    let root = pebble.issuing_root();

    // Two tasks keep one connection for the whole run; two open a new one
    // (a full handshake) per request.
    let spec = LoadSpec {
        kept: 2,
        fresh: 2,
        pause: |task| Duration::from_millis(20 * (task + 1)),
        limit: Duration::from_secs(90),
    };
    let load = HttpsLoad::start(&[https], &root, &spec).await;
    let renewed = tokio::task::spawn_blocking(move || {
        wait_until(
            "the renewed certificate on new handshakes",
            Duration::from_secs(80),
            || {
                s_client(https, Some("a.test"), "", &[])
                    .serial
                    .is_some_and(|s| !same_serial(&s, &first))
            },
        );
        i
    });
    let i = renewed.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failed, _) = load.stop().await;
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(ok > 100, "the load ran ({ok} requests)");
    let m = managed(&i);
    assert_eq!(m[0]["state"], "valid", "{m:?}");
    assert!(pebble.issued() >= 2, "{}", pebble.log());
}

#[test]
fn a_ca_that_fails_is_retried_and_reported_then_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (http, https) = (free_port(), free_port());
    let w = Whoami::start("w1");
    let config = services_file(dir.path(), &w, &[("a.test", "acme = true")]);
    // The CA is down at first: its address answers nothing.
    let later = CaToCome::new(dir.path());
    let args = ["--config", config.as_str(), "--acme-retry", "1"];
    let i = start_acme(
        &dir.path().join("state"),
        &later.directory,
        &later.root,
        http,
        https,
        &args,
    );
    wait_until("two failures reported", Duration::from_secs(30), || {
        managed(&i)
            .first()
            .is_some_and(|c| c["state"] == "failed" && c["failures"].as_u64() >= Some(2))
    });
    let m = managed(&i);
    assert!(m[0]["error"].as_str().unwrap().contains("ACME account"), "{m:?}");
    assert!(m[0]["next_attempt"].as_i64() > m[0]["last_attempt"].as_i64(), "{m:?}");
    assert!(i.metric("swarm_sticky_acme_order_failures_total") >= Some(2.0));
    assert!(i.metric("swarm_sticky_acme_consecutive_failures{names=\"a.test\"}") >= Some(2.0));
    let out = run(std::process::Command::new(crate::harness::binary()).args([
        "acme",
        "status",
        "--admin",
        &i.admin.to_string(),
    ]));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        table.contains("state         failed") && table.contains("last error"),
        "{table}"
    );
    assert!(i.process.stderr().contains("ACME: order failed"));

    // The CA comes up (with its nonce rejection on): the next retry wins.
    let pebble = later.start(dir.path(), http, https);
    wait_valid(&i, &pebble, 1);
    assert_eq!(managed(&i)[0]["failures"], 0);
    assert!(curl_verified(https, "a.test", &pebble.issuing_root()).contains("I'm w1"));
}

#[test]
fn a_certificate_file_wins_over_acme_for_its_names() {
    let dir = tempfile::tempdir().unwrap();
    let (http, https) = (free_port(), free_port());
    let pebble = pebble_for(dir.path(), http, https, None);
    let ca = TestCa::new(dir.path());
    let certs = dir.path().join("certs");
    let file_serial = ca.issue(
        &certs.join("a/cert.pem"),
        &certs.join("a/key.pem"),
        &["a.test"],
        crate::harness::tls::KeyKind::Ecdsa,
    );
    let w = Whoami::start("w1");
    let config = services_file(dir.path(), &w, &[("a.test", "acme = true"), ("b.test", "acme = true")]);
    let cert_dir = path(&certs);
    let args = ["--config", config.as_str(), "--tls-cert-dir", cert_dir.as_str()];
    let i = start(&dir.path().join("state"), &pebble, http, https, &args);
    // b.test is ordered; a.test comes from its file and is not.
    wait_until("b.test obtained", ORDERED, || {
        managed(&i)
            .iter()
            .any(|c| c["names"][0] == "b.test" && c["state"] == "valid")
    });
    let a = managed(&i).into_iter().find(|c| c["names"][0] == "a.test").unwrap();
    assert_eq!(a["state"], "from_file", "{a}");
    assert_eq!(pebble.count("Added order"), 1, "only b.test ordered:\n{}", pebble.log());
    let served = s_client(https, Some("a.test"), "", &[]).serial.unwrap();
    assert!(same_serial(&served, &file_serial), "the file's certificate: {served}");
    assert!(curl_verified(https, "b.test", &pebble.issuing_root()).contains("I'm w1"));
}
