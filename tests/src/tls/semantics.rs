//! HTTP over TLS: stickiness with `Secure` cookies, the redirect of plain
//! HTTP to HTTPS (308, a host from the rule) with HSTS, the ACME challenge
//! path left alone, and WebSocket over TLS staying sticky.

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _};

use crate::harness::{
    backend::{Whoami, whoamis},
    client,
    tls::{HttpsInstance, KeyKind, TestCa, connect, path},
};

fn config(backends: &[Whoami]) -> String {
    let list: String = backends
        .iter()
        .map(|w| {
            format!(
                "[[services.backends]]\nname = \"{}\"\nurl = \"http://{}\"\n",
                w.name, w.addr
            )
        })
        .collect();
    format!(
        "[[services]]\nname = \"shop\"\nrule = {{ host = [\"shop.test\", \"www.shop.test\"] }}\n{list}\
         [services.tls]\nredirect = true\nhsts_max_age = 600\n\n\
         [[services]]\nname = \"any\"\nrule = {{ path_prefix = \"/any\" }}\n{list}\
         [services.tls]\nredirect = true\n\n\
         [[services]]\nname = \"plain\"\n{list}"
    )
}

struct Site {
    dir: tempfile::TempDir,
    ca: TestCa,
    _backends: Vec<Whoami>,
    i: HttpsInstance,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let certs = dir.path().join("certs");
    ca.issue(
        &certs.join("shop.pem"),
        &certs.join("shop.key"),
        &["shop.test", "www.shop.test"],
        KeyKind::Ecdsa,
    );
    let backends = whoamis(3);
    let file = dir.path().join("services.toml");
    std::fs::write(&file, config(&backends)).unwrap();
    let i = HttpsInstance::start(&dir.path().join("state"), &certs, &[], &["--config", &path(&file)]);
    Site {
        dir,
        ca,
        _backends: backends,
        i,
    }
}

#[test]
fn plain_http_is_redirected_to_the_https_port_with_hsts() {
    let s = site();
    let plain = s.i.instance.listen;
    let https_port = s.i.https.port();
    for (host, method, target, location) in [
        (
            "shop.test",
            "GET",
            "/cart?x=1",
            format!("https://shop.test:{https_port}/cart?x=1"),
        ),
        (
            "WWW.shop.test.",
            "POST",
            "/pay",
            format!("https://www.shop.test:{https_port}/pay"),
        ),
        (
            "other.test",
            "GET",
            "/any/x",
            format!("https://other.test:{https_port}/any/x"),
        ),
    ] {
        let r = client::request(plain, method, target, &[("host", host)]).unwrap();
        assert_eq!(r.status, 308, "{host} {target}: {}", r.body);
        assert_eq!(r.header("location").as_deref(), Some(location.as_str()));
        assert!(r.set_cookie().is_none(), "no session starts on the redirect");
    }
    let r = client::request(plain, "GET", "/", &[("host", "shop.test")]).unwrap();
    assert_eq!(
        r.header("strict-transport-security").as_deref(),
        Some("max-age=600"),
        "HSTS on the redirect too"
    );
    // ACME HTTP-01 challenges are answered over plain HTTP, never redirected.
    let r = client::request(
        plain,
        "GET",
        "/.well-known/acme-challenge/token",
        &[("host", "shop.test")],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // A trusted-less client cannot claim TLS with X-Forwarded-Proto.
    let r = client::request(
        plain,
        "GET",
        "/",
        &[("host", "shop.test"), ("x-forwarded-proto", "https")],
    )
    .unwrap();
    assert_eq!(r.status, 308);
}

#[test]
fn https_is_sticky_with_secure_cookies_and_hsts() {
    let s = site();
    let jar = s.dir.path().join("jar");
    let jar_s = path(&jar);
    let first = s.i.curl(&s.ca.cert, "shop.test", "/", &["-i", "-c", &jar_s]);
    let head = String::from_utf8_lossy(&first.stdout).into_owned();
    let cookie_line = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("a cookie is set:\n{head}"));
    assert!(cookie_line.contains("Secure"), "{cookie_line}");
    assert!(
        head.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=600"),
        "{head}"
    );
    let backend = head.lines().find_map(|l| l.strip_prefix("I'm ")).unwrap().to_owned();
    for n in 0..100 {
        let out = s.i.curl(&s.ca.cert, "shop.test", "/", &["-b", &jar_s, "-c", &jar_s]);
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(body.starts_with(&format!("I'm {backend}\n")), "request {n}: {body}");
    }
    // The same service over plain HTTP (no redirect there): no `Secure`.
    let r = client::get(s.i.instance.listen, "/").unwrap();
    let cookie = r.set_cookie().expect("a cookie over plain HTTP");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_tls_is_sticky() {
    let s = site();
    let (addr, ca) = (s.i.https, s.ca.cert.clone());
    let open = |cookie: Option<String>| {
        let ca = ca.clone();
        async move {
            let tls = connect(addr, "shop.test", &ca, &[b"http/1.1"]).await.unwrap();
            let mut req = format!("wss://shop.test:{}/ws", addr.port())
                .into_client_request()
                .unwrap();
            if let Some(c) = cookie {
                req.headers_mut().insert("cookie", c.parse().unwrap());
            }
            tokio_tungstenite::client_async(req, tls).await.unwrap()
        }
    };
    let (mut ws, resp) = open(None).await;
    let set = resp
        .headers()
        .get("set-cookie")
        .expect("the upgrade starts a session")
        .to_str()
        .unwrap();
    assert!(set.contains("Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    // Which backend the cookie names, asked over HTTPS.
    let out = s.i.curl(&ca, "shop.test", "/", &["-H", &format!("cookie: {cookie}")]);
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let backend = body.lines().find_map(|l| l.strip_prefix("I'm ")).unwrap().to_owned();
    for _ in 0..5 {
        let (mut ws, resp) = open(Some(cookie.clone())).await;
        assert!(resp.headers().get("set-cookie").is_none(), "the cookie was honoured");
        ws.send(Message::text("again")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("again"));
    }
    let upgrades = s.i.instance.metric(&format!(
        "swarm_sticky_requests_total{{service=\"shop\",backend=\"{backend}\",code=\"101\"}}"
    ));
    assert_eq!(upgrades, Some(6.0), "every upgrade went to {backend}");
}
