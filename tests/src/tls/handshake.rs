//! The handshake itself: ALPN (HTTP/2 over TLS), the minimum version, a
//! plain HTTP request on the TLS port, and handshakes that stall or
//! announce an oversized ClientHello, which must not hold the listener.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::harness::{
    backend::Whoami,
    tls::{HttpsInstance, KeyKind, TestCa, s_client},
};

fn setup(args: &[&str]) -> (tempfile::TempDir, TestCa, Whoami, HttpsInstance) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let certs = dir.path().join("certs");
    ca.issue(
        &certs.join("a.test/cert.pem"),
        &certs.join("a.test/key.pem"),
        &["a.test"],
        KeyKind::Ecdsa,
    );
    let w = Whoami::start("w1");
    let i = HttpsInstance::start(&dir.path().join("state"), &certs, &[&w], args);
    (dir, ca, w, i)
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn alpn_gives_http2_to_clients_that_offer_it() {
    let (_dir, ca, _w, i) = setup(&[]);
    let fmt = ["-o", "/dev/null", "-w", "%{http_version} %{http_code}"];
    let h2 = i.curl(&ca.cert, "a.test", "/", &[&["--http2"][..], &fmt].concat());
    assert_eq!(text(&h2), "2 200");
    let h1 = i.curl(&ca.cert, "a.test", "/", &[&["--http1.1"][..], &fmt].concat());
    assert_eq!(text(&h1), "1.1 200");
    let body = text(&i.curl(&ca.cert, "a.test", "/", &["--http2"]));
    assert!(body.starts_with("I'm w1"), "{body}");
    assert!(body.contains("x-forwarded-proto: https"), "{body}");
    assert!(body.contains("proto=https"), "Forwarded names https: {body}");
}

#[test]
fn tls_1_2_is_refused_when_the_minimum_is_1_3() {
    let (_dir, _ca, _w, i) = setup(&["--tls-min-version", "1.3"]);
    let req = "GET / HTTP/1.0\r\n\r\n";
    let old = s_client(i.https, Some("a.test"), req, &["-tls1_2"]);
    assert!(old.serial.is_none(), "TLS 1.2 got a certificate:\n{}", old.text);
    assert!(
        old.text.contains("alert protocol version") || old.text.contains("handshake failure"),
        "{}",
        old.text
    );
    let new = s_client(i.https, Some("a.test"), req, &["-tls1_3"]);
    assert!(new.text.contains("I'm w1"), "TLS 1.3 is served:\n{}", new.text);
    assert_eq!(
        i.instance
            .metric("swarm_sticky_tls_handshakes_total{version=\"1.2\",handshake=\"full\"}"),
        Some(0.0)
    );
    assert!(
        i.instance
            .metric("swarm_sticky_tls_handshake_failures_total{reason=\"error\"}")
            >= Some(1.0)
    );
}

#[test]
fn plain_http_on_the_tls_port_gets_a_short_400() {
    let (_dir, _ca, _w, i) = setup(&[]);
    let out = crate::harness::tls::run(std::process::Command::new("curl").args([
        "-si",
        "--max-time",
        "5",
        &format!("http://{}/", i.https),
    ]));
    let answer = text(&out);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("This port speaks HTTPS"), "{answer}");
}

#[test]
fn stalled_and_oversized_handshakes_are_closed_while_others_are_served() {
    let (_dir, ca, _w, i) = setup(&["--tls-handshake-timeout", "2"]);
    // A ClientHello that never completes: the record header and a few bytes.
    let mut stalled = TcpStream::connect(i.https).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03])
        .unwrap();
    // One announcing a 64 KiB ClientHello: refused at once.
    let mut bloated = TcpStream::connect(i.https).unwrap();
    bloated
        .write_all(&[0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x01, 0x00, 0x00])
        .unwrap();
    bloated.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(bloated.read(&mut buf), Ok(0) | Err(_)),
        "an oversized ClientHello is closed"
    );
    // Meanwhile others are served.
    for _ in 0..5 {
        let ok = i.curl(&ca.cert, "a.test", "/", &["-o", "/dev/null", "-w", "%{http_code}"]);
        assert_eq!(text(&ok), "200");
    }
    let started = Instant::now();
    stalled.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let closed = matches!(stalled.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "the stalled handshake is closed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed by the 2 s handshake timeout"
    );
    for reason in ["timeout", "hello_too_large"] {
        let series = format!("swarm_sticky_tls_handshake_failures_total{{reason=\"{reason}\"}}");
        crate::harness::instance::wait_until(&series, Duration::from_secs(5), || {
            i.instance.metric(&series) >= Some(1.0)
        });
    }
}

/// testssl.sh (Debian's package) finds nothing of severity HIGH or
/// CRITICAL on the listener.
#[test]
fn testssl_reports_no_high_or_critical_finding() {
    let (dir, ca, _w, i) = setup(&[]);
    let json = dir.path().join("testssl.json");
    let out = crate::harness::tls::run(std::process::Command::new("testssl").args([
        "--quiet",
        "--warnings",
        "off",
        "--color",
        "0",
        "--fast",
        "--ip",
        "127.0.0.1",
        "--add-ca",
        &crate::harness::tls::path(&ca.cert),
        "--jsonfile",
        &crate::harness::tls::path(&json),
        &format!("a.test:{}", i.https.port()),
    ]));
    let report = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "testssl wrote no report ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let findings: serde_json::Value = serde_json::from_str(&report).expect("testssl JSON");
    let bad: Vec<&serde_json::Value> = findings
        .as_array()
        .expect("a list of findings")
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("HIGH" | "CRITICAL")))
        .collect();
    assert!(bad.is_empty(), "testssl.sh findings: {bad:#?}");
    assert!(
        findings
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["id"] == "TLS1_3")),
        "testssl ran its protocol checks: {report}"
    );
}
