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
