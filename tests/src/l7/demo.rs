//! The demo helpers the `demo` subcommand is built from.

use proxy_user::demo::{demo_instructions, demo_services, spawn_demo_backends};

use crate::harness::proxy::{TestProxy, get};

/// Three demo backends answer `I'm whoami-N`; behind the proxy a fresh
/// client alternates and a client with the cookie sticks; the printed
/// instructions name the balancer and the cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_backends_and_instructions() {
    let backends = spawn_demo_backends(3).await.unwrap();
    for (name, addr) in &backends {
        assert_eq!(get(*addr, "/", None).await.backend(), name);
    }
    let services = demo_services(&backends);
    let cookie_name = services.services[0].cookie.name.clone();
    let p = TestProxy::start(services.clone());
    let a = get(p.addr, "/", None).await;
    let b = get(p.addr, "/", None).await;
    assert_ne!(a.backend(), b.backend(), "plain curl alternates");
    let cookie = a.cookie.clone().unwrap();
    for _ in 0..5 {
        assert_eq!(get(p.addr, "/", Some(&cookie)).await.backend(), a.backend());
    }
    let admin = proxy_user::cli::DEFAULT_ADMIN.parse().unwrap();
    let cert = proxy_user::tls::CertFiles {
        chain: "/demo/localhost.pem".into(),
        key: "/demo/localhost.key".into(),
    };
    let https = "127.0.0.1:8443".parse().unwrap();
    let text = demo_instructions(p.addr, Some((https, &cert)), admin, &services, &backends);
    assert!(text.contains(&format!("curl -s http://{}/", p.addr)), "{text}");
    assert!(
        text.contains("curl -si --cacert /demo/localhost.pem https://localhost:8443/"),
        "{text}"
    );
    assert!(text.contains(&cookie_name) && text.contains("whoami-3"), "{text}");
}
