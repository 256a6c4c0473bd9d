//! Upstream sockets created inside another network namespace reach that
//! namespace's addresses, not the host's.

use std::time::Duration;

use proxy_user::netns::SocketFactory;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::netns::TestNet;

/// A connection to 127.0.0.1:P made through the factory for the server
/// namespace lands on the listener inside that namespace; the calling
/// thread stays in its own namespace.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn sockets_are_created_inside_the_namespace() {
    let net = TestNet::new();
    let listener = net
        .server
        .run(|| std::net::TcpListener::bind("127.0.0.1:0").expect("bind inside the namespace"));
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept inside the namespace");
        std::io::Write::write_all(&mut s, b"inside\n").expect("write");
    });
    let own_ns_before = std::fs::read_link("/proc/thread-self/ns/net").expect("own netns");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let text = rt.block_on(async {
        let factory = SocketFactory::default();
        let mut stream = tokio::time::timeout(Duration::from_secs(5), factory.connect(&net.server.path(), addr))
            .await
            .expect("connect in time")
            .expect("connect inside the namespace");
        let mut buf = String::new();
        stream.read_to_string(&mut buf).await.expect("read");
        stream.shutdown().await.ok();
        buf
    });
    server.join().expect("server thread");
    assert_eq!(text, "inside\n");
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").expect("own netns"),
        own_ns_before,
        "the caller's namespace changed"
    );
}

/// Answers one connection with `text` from a listener on 127.0.0.1 inside
/// `ns`; returns its address.
fn answer_once(ns: &crate::harness::netns::Netns, text: &'static str) -> std::net::SocketAddr {
    let listener = ns.run(|| std::net::TcpListener::bind("127.0.0.1:0").expect("bind inside the namespace"));
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = std::io::Write::write_all(&mut s, text.as_bytes());
        }
    });
    addr
}

fn mount(args: &[&str]) {
    let out = std::process::Command::new("mount").args(args).output().expect("mount");
    assert!(
        out.status.success(),
        "mount {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace path re-bound to another namespace (what Docker does with
/// `lb_<id>` when the daemon restarts): the factory's next socket is made
/// in the namespace now at the path, not in the one it entered before.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn a_rebound_namespace_path_gets_a_fresh_thread() {
    let net = TestNet::new();
    let path = std::path::PathBuf::from(format!("/run/ss-rebind-{}", std::process::id()));
    std::fs::write(&path, b"").expect("mount point");
    let p = path.display().to_string();
    mount(&["--bind", &net.server.path().display().to_string(), &p]);
    let (first, second) = (
        answer_once(&net.server, "first\n"),
        answer_once(&net.client, "second\n"),
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let read = |addr| {
        rt.block_on(async {
            let factory = proxy_user::netns::shared();
            let mut s = tokio::time::timeout(Duration::from_secs(5), factory.connect(&path, addr))
                .await
                .expect("connect in time")
                .expect("connect");
            let mut buf = String::new();
            s.read_to_string(&mut buf).await.expect("read");
            buf
        })
    };
    assert_eq!(read(first), "first\n");
    let out = std::process::Command::new("umount").arg(&p).output().expect("umount");
    assert!(out.status.success(), "umount: {}", String::from_utf8_lossy(&out.stderr));
    mount(&["--bind", &net.client.path().display().to_string(), &p]);
    assert_eq!(read(second), "second\n", "the socket was made in the old namespace");
    let _ = std::process::Command::new("umount").arg(&p).output();
    let _ = std::fs::remove_file(&path);
}

/// A connection's lease on its namespace: it holds while the namespace is
/// at its path, and ends when `revalidate` finds the path re-bound to
/// another namespace (Docker re-creating `lb_<id>`) or gone (Docker
/// removing it when the node's last task on the network stops). The
/// upstream pool closes the connection then, instead of leaving a request
/// on it to wait for its response deadline.
#[test]
#[ignore = "privileged: needs root and network namespaces; run `cargo xtask test`"]
fn a_connection_lease_ends_when_its_namespace_leaves_its_path() {
    let net = TestNet::new();
    let path = std::path::PathBuf::from(format!("/run/ss-lease-{}", std::process::id()));
    std::fs::write(&path, b"").expect("mount point");
    let p = path.display().to_string();
    let umount = || {
        let out = std::process::Command::new("umount").arg(&p).output().expect("umount");
        assert!(out.status.success(), "umount: {}", String::from_utf8_lossy(&out.stderr));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let factory = SocketFactory::default();
    for (what, change) in [("re-bound", true), ("removed", false)] {
        mount(&["--bind", &net.server.path().display().to_string(), &p]);
        let addr = answer_once(&net.server, "held\n");
        let (_stream, mut lease) = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), factory.connect_leased(&path, addr)).await })
            .expect("connect in time")
            .expect("connect");
        factory.revalidate();
        let held = rt.block_on(async { tokio::time::timeout(Duration::from_millis(200), lease.gone()).await });
        assert!(
            held.is_err(),
            "the lease ended while the namespace was still at its path"
        );
        umount();
        if change {
            mount(&["--bind", &net.client.path().display().to_string(), &p]);
        }
        factory.revalidate();
        let ended = rt.block_on(async { tokio::time::timeout(Duration::from_secs(1), lease.gone()).await });
        assert!(ended.is_ok(), "the lease held after its namespace was {what}");
        if change {
            umount();
        }
    }
    let _ = std::fs::remove_file(&path);
}
