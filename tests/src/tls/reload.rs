//! Certificates replaced while serving: new handshakes get the new one,
//! open connections keep theirs, nothing fails; a broken file keeps the
//! previous certificate in service and is reported.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, pem::PemObject as _};

use crate::harness::{
    backend::Whoami,
    instance::wait_until,
    proxy::WAIT,
    tls::{HttpsInstance, KeyKind, TestCa, connect, s_client},
};

pub(crate) type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// A keep-alive HTTPS connection and the certificate it was served.
pub(crate) async fn open(addr: std::net::SocketAddr, ca: &Path) -> std::io::Result<(Sender, Vec<u8>)> {
    let tls = connect(addr, "a.test", ca, &[b"http/1.1"]).await?;
    let served = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok((send, served.unwrap_or_default()))
}

pub(crate) async fn fetch(send: &mut Sender) -> Result<(), String> {
    let req = hyper::Request::get("/")
        .header("host", "a.test")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    resp.into_body().collect().await.map_err(|e| e.to_string())?;
    if status == 200 {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

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

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut load = Vec::new();
    for task in 0..6 {
        let (stop, ok, failed, ca) = (stop.clone(), ok.clone(), failed.clone(), ca_cert.clone());
        // Tasks 0..3 keep one connection, opened before the swap, for the
        // whole run; 3..6 open a new one per request.
        let mut kept = if task < 3 {
            Some(open(addr, &ca).await.unwrap())
        } else {
            None
        };
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let result = match kept.as_mut() {
                    Some((send, _)) => fetch(send).await,
                    None => match open(addr, &ca).await {
                        Ok((mut send, _)) => fetch(&mut send).await,
                        Err(e) => Err(e.to_string()),
                    },
                };
                match result {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("request failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                if kept.is_some() {
                    // Idle gaps, so that kept connections also hibernate.
                    tokio::time::sleep(Duration::from_millis(task * 700)).await;
                }
            }
            kept.map(|(_, served)| served)
        }));
    }
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
    stop.store(true, Ordering::Relaxed);
    for t in load {
        if let Some(served) = t.await.unwrap() {
            assert_eq!(served, old, "a kept connection keeps the certificate it started with");
        }
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
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
