//! Which certificate a client gets: by SNI (exact, wildcard, default, no
//! SNI) and by the key types it can verify (ECDSA and RSA for one name).

use crate::harness::{
    backend::Whoami,
    tls::{HttpsInstance, KeyKind, TestCa, s_client},
};

#[test]
fn sni_exact_then_wildcard_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let certs = dir.path().join("certs");
    let exact = ca.issue(
        &certs.join("a.test/cert.pem"),
        &certs.join("a.test/key.pem"),
        &["a.test"],
        KeyKind::Ecdsa,
    );
    let wild = ca.issue(
        &certs.join("w.pem"),
        &certs.join("w.key"),
        &["*.w.test"],
        KeyKind::Ecdsa,
    );
    let dflt = ca.issue(
        &certs.join("default.pem"),
        &certs.join("default.key"),
        &["default.test"],
        KeyKind::Ecdsa,
    );
    let w = Whoami::start("w1");
    let state = dir.path().join("state");
    let i = HttpsInstance::start(&state, &certs, &[&w], &[]);
    let req = "GET / HTTP/1.0\r\n\r\n";
    let cases = [
        (Some("a.test"), &exact),
        (Some("A.TEST"), &exact),
        (Some("x.w.test"), &wild),
        (Some("w.test"), &dflt),
        (Some("y.x.w.test"), &dflt),
        (Some("unknown.test"), &dflt),
        (None, &dflt),
    ];
    for (sni, want) in cases {
        let h = s_client(i.https, sni, req, &["-CAfile", &crate::harness::tls::path(&ca.cert)]);
        assert_eq!(h.serial.as_deref(), Some(want.as_str()), "SNI {sni:?}:\n{}", h.text);
        assert!(
            h.text.contains("Verify return code: 0 (ok)"),
            "SNI {sni:?}:\n{}",
            h.text
        );
        assert!(
            h.text.contains("I'm w1"),
            "SNI {sni:?}: the request was answered:\n{}",
            h.text
        );
    }
    let status = i.instance.admin_json("/api/status");
    let certs = status["tls"]["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 3, "{status}");
    let default: Vec<&serde_json::Value> = certs.iter().filter(|c| c["default"] == true).collect();
    assert_eq!(default.len(), 1);
    assert_eq!(default[0]["names"][0], "default.test");
    assert!(default[0]["serial"].as_str().unwrap().eq_ignore_ascii_case(&dflt));
}

#[test]
fn ecdsa_and_rsa_for_one_name_follow_what_the_client_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let certs = dir.path().join("certs");
    let ec = ca.issue(
        &certs.join("a-ec.pem"),
        &certs.join("a-ec.key"),
        &["a.test"],
        KeyKind::Ecdsa,
    );
    let rsa = ca.issue(
        &certs.join("a-rsa.pem"),
        &certs.join("a-rsa.key"),
        &["a.test"],
        KeyKind::Rsa,
    );
    let w = Whoami::start("w1");
    let i = HttpsInstance::start(&dir.path().join("state"), &certs, &[&w], &[]);
    let req = "GET / HTTP/1.0\r\n\r\n";
    let both = s_client(i.https, Some("a.test"), req, &[]);
    assert_eq!(
        both.serial.as_deref(),
        Some(ec.as_str()),
        "a client that knows ECDSA gets it:\n{}",
        both.text
    );
    for version in ["-tls1_3", "-tls1_2"] {
        let rsa_only = s_client(
            i.https,
            Some("a.test"),
            req,
            &[version, "-sigalgs", "rsa_pss_rsae_sha256:rsa_pkcs1_sha256"],
        );
        assert_eq!(
            rsa_only.serial.as_deref(),
            Some(rsa.as_str()),
            "{version}, RSA only:\n{}",
            rsa_only.text
        );
    }
}
