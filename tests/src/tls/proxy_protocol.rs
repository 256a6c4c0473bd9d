//! PROXY protocol v1 and v2 on input: believed from the trusted networks
//! (the client it names is the one `X-Forwarded-For` and the access log
//! see), refused from others, and optional: a trusted source may connect
//! without a header.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use crate::harness::{
    backend::Whoami,
    instance::{Instance, free_port},
    tls::{KeyKind, TestCa, path, run},
};

fn v2_header(client: SocketAddr, to: SocketAddr) -> Vec<u8> {
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (client, to),
    )
    .build()
    .unwrap()
}

/// Sends `header` then a request on the plain +proxy listener; the answer
/// (empty when the connection was refused).
fn exchange(addr: SocketAddr, header: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n");
    // A refusal closes the connection with the request unread, so the
    // kernel may answer with a reset before or during this write: that is
    // a refusal too, and it leaves the answer empty.
    if let Err(e) = s.write_all(&bytes) {
        assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "{e}"
        );
        return String::new();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn start(dir: &std::path::Path, trusted: &str, w: &Whoami) -> (Instance, SocketAddr, SocketAddr) {
    let ca = TestCa::new(dir);
    let certs = dir.join("certs");
    ca.issue(&certs.join("a.pem"), &certs.join("a.key"), &["a.test"], KeyKind::Ecdsa);
    std::fs::copy(&ca.cert, dir.join("trust.pem")).unwrap();
    let (plain, tls) = (free_port(), free_port());
    let backend = format!("w1=http://{}", w.addr);
    let (plain_l, tls_l) = (format!("http+proxy://{plain}"), format!("https+proxy://{tls}"));
    let cert_dir = path(&certs);
    let i = Instance::start(
        &dir.join("state"),
        &[
            "--listen",
            &plain_l,
            "--listen",
            &tls_l,
            "--tls-cert-dir",
            &cert_dir,
            "--proxy-protocol-from",
            trusted,
            "--backend",
            &backend,
            "--access-log",
            "common",
        ],
    );
    (i, plain, tls)
}

#[test]
fn headers_from_a_trusted_source_name_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let w = Whoami::start("w1");
    let (i, plain, tls) = start(dir.path(), "127.0.0.0/8", &w);
    let v1 = exchange(
        plain,
        format!("PROXY TCP4 198.51.100.7 127.0.0.1 40000 {}\r\n", plain.port()).as_bytes(),
    );
    assert!(
        v1.contains("x-forwarded-for: 198.51.100.7\r\n") || v1.contains("x-forwarded-for: 198.51.100.7\n"),
        "{v1}"
    );
    let client: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
    let v2 = exchange(plain, &v2_header(client, "[2001:db8::1]:443".parse().unwrap()));
    assert!(v2.contains("x-forwarded-for: 2001:db8::7"), "{v2}");
    // Without a header, a trusted source is served as itself.
    let none = exchange(plain, b"");
    assert!(none.contains("x-forwarded-for: 127.0.0.1"), "{none}");
    // Over TLS, through curl's own PROXY v1 support.
    let resolve = format!("a.test:{}:127.0.0.1", tls.port());
    let out = run(std::process::Command::new("curl").args([
        "-s",
        "--max-time",
        "10",
        "--haproxy-protocol",
        "--cacert",
        &path(&dir.path().join("trust.pem")),
        "--resolve",
        &resolve,
        &format!("https://a.test:{}/", tls.port()),
    ]));
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("x-forwarded-proto: https") && body.contains("x-forwarded-for: 127.0.0.1"),
        "{body}"
    );
    drop(i);
}

#[test]
fn headers_from_an_untrusted_source_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let w = Whoami::start("w1");
    let (_i, plain, _tls) = start(dir.path(), "10.0.0.0/8", &w);
    let v1 = exchange(plain, b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 80\r\n");
    assert!(v1.is_empty(), "refused: {v1}");
    let v2 = exchange(plain, &v2_header("198.51.100.7:40000".parse().unwrap(), plain));
    assert!(v2.is_empty(), "refused: {v2}");
    let none = exchange(plain, b"");
    assert!(
        none.starts_with("HTTP/1.1 200") && none.contains("x-forwarded-for: 127.0.0.1"),
        "{none}"
    );
}
