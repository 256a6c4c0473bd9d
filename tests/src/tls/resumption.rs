//! Session tickets every manager can open: a ticket issued by one
//! instance resumes on another that shares the cookie key (as every
//! manager of a swarm does), and not on one with another key.

use crate::harness::{
    backend::Whoami,
    tls::{HttpsInstance, KeyKind, TestCa, path, s_client},
};

#[test]
fn a_ticket_from_one_instance_resumes_on_another_with_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let certs = dir.path().join("certs");
    ca.issue(&certs.join("a.pem"), &certs.join("a.key"), &["a.test"], KeyKind::Ecdsa);
    let key = dir.path().join("cookie.key");
    std::fs::write(&key, "a-secret-every-manager-shares-0123456789\n").unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, "a-secret-of-another-swarm-0123456789\n").unwrap();
    let w = Whoami::start("w1");
    let key_arg = ["--cookie-key-file", &path(&key)];
    let a = HttpsInstance::start(&dir.path().join("a"), &certs, &[&w], &key_arg);
    let b = HttpsInstance::start(&dir.path().join("b"), &certs, &[&w], &key_arg);
    let c = HttpsInstance::start(
        &dir.path().join("c"),
        &certs,
        &[&w],
        &["--cookie-key-file", &path(&other_key)],
    );
    // HTTP/1.0: the server closes after the answer, by which time the
    // TLS 1.3 tickets have arrived.
    let req = "GET / HTTP/1.0\r\nHost: a.test\r\n\r\n";
    for version in ["-tls1_3", "-tls1_2"] {
        let session = dir.path().join(format!("session{version}"));
        let first = s_client(a.https, Some("a.test"), req, &[version, "-sess_out", &path(&session)]);
        assert!(
            first.text.contains("New, TLS"),
            "{version}: a full handshake first:\n{}",
            first.text
        );
        assert!(
            session.is_file(),
            "{version}: s_client saved a session:\n{}",
            first.text
        );
        let again = s_client(b.https, Some("a.test"), req, &[version, "-sess_in", &path(&session)]);
        assert!(
            again.text.contains("Reused, TLS"),
            "{version}: resumed on the second instance:\n{}",
            again.text
        );
        assert!(again.text.contains("I'm w1"), "{}", again.text);
        let foreign = s_client(c.https, Some("a.test"), req, &[version, "-sess_in", &path(&session)]);
        assert!(
            foreign.text.contains("New, TLS"),
            "{version}: another key, a full handshake:\n{}",
            foreign.text
        );
    }
    assert_eq!(
        b.instance
            .metric("swarm_sticky_tls_handshakes_total{version=\"1.3\",handshake=\"resumed\"}"),
        Some(1.0)
    );
    assert_eq!(
        b.instance
            .metric("swarm_sticky_tls_handshakes_total{version=\"1.2\",handshake=\"resumed\"}"),
        Some(1.0)
    );
}
