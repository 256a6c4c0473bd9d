//! Certificates replaced while serving: new handshakes get the new one,
//! open connections keep theirs, nothing fails; a broken file keeps the
//! previous certificate in service and is reported.

use std::{path::Path, time::Duration};

use rustls_pki_types::{CertificateDer, pem::PemObject as _};

use crate::harness::{
    backend::Whoami,
    https_load::{HttpsLoad, LoadSpec, open},
    instance::wait_until,
    proxy::WAIT,
    tls::{HttpsInstance, KeyKind, TestCa, s_client},
};

fn der(chain: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(chain).unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swapped_under_load_fails_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let certs = dir.path().join("certs");
    let (chain, key) = (certs.join("a/cert.pem"), certs.join("a/key.pem"));
    ca.issue(&chain, &key, &["a.test"], KeyKind::Ecdsa);
    let old = der(&chain);
    let w = Whoami::start("w1");
    let i = HttpsInstance::start(&dir.path().join("state"), &certs, &[&w], &[]);
    let (addr, ca_cert) = (i.https, ca.cert.clone());

    // Three tasks keep one connection, opened before the swap, for the
    // whole run (with idle gaps, so that they also hibernate); three open
    // a new one per request.
    let spec = LoadSpec {
        kept: 3,
        fresh: 3,
        pause: |task| {
            if task < 3 {
                Duration::from_millis(task * 700)
            } else {
                Duration::ZERO
            }
        },
        limit: Duration::from_secs(30),
    };
    let load = HttpsLoad::start(&[addr], &ca_cert, &spec).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let new_serial = ca.issue(&chain, &key, &["a.test"], KeyKind::Ecdsa);
    let new = der(&chain);
    assert_ne!(new, old);
    let swapped = tokio::task::spawn_blocking(move || {
        wait_until(
            "new handshakes to see the new certificate",
            Duration::from_secs(15),
            || s_client(addr, Some("a.test"), "", &[]).serial.as_deref() == Some(new_serial.as_str()),
        );
    });
    swapped.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failed, kept) = load.stop().await;
    for served in kept {
        assert_eq!(served, old, "a kept connection keeps the certificate it started with");
    }
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(ok > 50, "the load ran ({ok} requests)");
    // A new connection gets the new certificate.
    let (_, served) = open(addr, &ca_cert).await.unwrap();
    assert_eq!(served, new);
}

#[test]
fn a_broken_certificate_keeps_the_previous_one_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let certs = dir.path().join("certs");
    let (chain, key) = (certs.join("a/cert.pem"), certs.join("a/key.pem"));
    let serial = ca.issue(&chain, &key, &["a.test"], KeyKind::Ecdsa);
    let w = Whoami::start("w1");
    let mut i = HttpsInstance::start(&dir.path().join("state"), &certs, &[&w], &[]);
    // A key that is not the certificate's, read on SIGHUP.
    let stray = dir.path().join("stray");
    ca.issue(
        &stray.join("cert.pem"),
        &stray.join("key.pem"),
        &["b.test"],
        KeyKind::Ecdsa,
    );
    std::fs::copy(stray.join("key.pem"), &key).unwrap();
    i.instance.process.signal(libc::SIGHUP);
    i.instance.process.wait_for_line("is not the certificate's", WAIT);
    let status = i.instance.admin_json("/api/status");
    let cert = &status["tls"]["certificates"][0];
    assert!(
        cert["error"].as_str().unwrap().contains("is not the certificate's"),
        "{status}"
    );
    assert!(
        cert["serial"].as_str().unwrap().eq_ignore_ascii_case(&serial),
        "the old one is shown: {status}"
    );
    let source = crate::harness::tls::path(&chain);
    let series = format!("swarm_sticky_tls_certificate_load_error{{source=\"{source}\",names=\"a.test\"}}");
    assert_eq!(i.instance.metric(&series), Some(1.0));
    assert!(
        i.instance.metric(&format!(
            "swarm_sticky_tls_certificate_expiry_seconds{{source=\"{source}\",names=\"a.test\"}}"
        )) > Some(3600.0)
    );
    let h = s_client(i.https, Some("a.test"), "GET / HTTP/1.0\r\n\r\n", &[]);
    assert_eq!(
        h.serial.as_deref(),
        Some(serial.as_str()),
        "the old certificate is served:\n{}",
        h.text
    );
    assert!(h.text.contains("I'm w1"), "{}", h.text);
    // Garbage instead of the chain, found by the file watch: still served.
    std::fs::write(
        &chain,
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    i.instance.process.wait_for_line("not an X.509 certificate", WAIT);
    let h = s_client(i.https, Some("a.test"), "", &[]);
    assert_eq!(h.serial.as_deref(), Some(serial.as_str()), "{}", h.text);
    // Fixed: the error clears and the new certificate is served.
    let fixed = ca.issue(&chain, &key, &["a.test"], KeyKind::Ecdsa);
    wait_until("the fixed certificate in service", WAIT, || {
        s_client(i.https, Some("a.test"), "", &[]).serial.as_deref() == Some(fixed.as_str())
    });
    assert_eq!(i.instance.metric(&series), Some(0.0));
}
