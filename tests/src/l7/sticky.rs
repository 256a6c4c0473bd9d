//! Stickiness, cookie validation, migration, reload and drain.

use std::collections::HashMap;

use proxy_user::{cookie::Keyring, services::ServicesConfig};

use crate::harness::{
    backend::{Tripwire, pairs, whoamis},
    proxy::{Client, TestProxy, get},
};

/// A first request per backend gets a cookie; replaying it 200 times always
/// reaches the same backend (checked by body), with no new Set-Cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stickiness_200_per_backend() {
    let backends = whoamis(3);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let mut cookies: HashMap<String, String> = HashMap::new();
    for _ in 0..3 {
        let r = get(p.addr, "/", None).await;
        assert_eq!(r.status, 200);
        cookies.insert(
            r.backend().to_owned(),
            r.cookie.clone().expect("a new session gets a cookie"),
        );
    }
    assert_eq!(cookies.len(), 3, "SWRR spreads new sessions over all backends");
    for (name, cookie) in &cookies {
        // What the value carries: the backend's identity (its name here),
        // never where it is, in text or in binary.
        use base64::Engine as _;
        let value = cookie.split_once('=').unwrap().1;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value).unwrap();
        let addr = backends.iter().find(|b| &b.name == name).unwrap().addr;
        let holds = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
        assert!(holds(name.as_bytes()), "the cookie names {name}: {raw:?}");
        let std::net::IpAddr::V4(ip) = addr.ip() else {
            unreachable!()
        };
        let binary = [&ip.octets()[..], &addr.port().to_be_bytes()[..]].concat();
        assert!(
            !holds(addr.to_string().as_bytes()) && !holds(b"127.0.0.1") && !holds(&binary) && !holds(&ip.octets()),
            "the cookie holds {addr}: {raw:?}"
        );
        let mut c = Client::connect(p.addr).await;
        for _ in 0..200 {
            let r = c.get("/", Some(cookie)).await;
            assert_eq!(r.backend(), name);
            assert!(r.cookie.is_none());
        }
    }
}

/// Tampered, truncated, 8 KiB and random cookies are ignored and re-issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cookies_are_reissued() {
    let backends = whoamis(2);
    let cfg = ServicesConfig::single("web", &pairs(&backends));
    let name = cfg.services[0].cookie.name.clone();
    let p = TestProxy::start(cfg);
    let good = get(p.addr, "/", None).await.cookie.unwrap();
    let value = good.split_once('=').unwrap().1.to_owned();
    let mut tampered = value.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let bad = [
        String::from_utf8(tampered).unwrap(),
        value[..value.len() - 3].to_owned(),
        "A".repeat(8192),
        "not-a-cookie".to_owned(),
        rand::random::<u128>().to_string(),
    ];
    for v in bad {
        let r = get(p.addr, "/", Some(&format!("{name}={v}"))).await;
        assert_eq!(r.status, 200, "{v:.40}");
        assert!(r.cookie.is_some(), "re-issued for {v:.40}");
        assert!(backends.iter().any(|b| b.name == r.backend()));
    }
}

/// A Traefik v1 cookie with an address outside the backend set is never
/// dialled; one naming a current backend is honoured and replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_url_cookie_never_dials_outside() {
    let backends = whoamis(2);
    let trap = Tripwire::start().await;
    let cfg = ServicesConfig::single("web", &pairs(&backends));
    let name = cfg.services[0].cookie.name.clone();
    let p = TestProxy::start(cfg);
    for _ in 0..20 {
        let r = get(p.addr, "/", Some(&format!("{name}=http://{}", trap.addr))).await;
        assert_eq!(r.status, 200);
        assert!(r.cookie.is_some());
    }
    for b in &backends {
        let r = get(p.addr, "/", Some(&format!("{name}=http://{}", b.addr))).await;
        assert_eq!(r.backend(), b.name, "legacy cookie of a current backend is honoured");
        let signed = r.cookie.expect("and replaced by a signed one");
        assert!(!signed.contains("http"));
        assert_eq!(get(p.addr, "/", Some(&signed)).await.backend(), b.name);
    }
    assert_eq!(trap.hits(), 0, "the address in the cookie was dialled");
}

/// Cookie-less requests on one connection follow its first pick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_keeps_its_first_pick() {
    let backends = whoamis(3);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let mut c = Client::connect(p.addr).await;
    let first = c.get("/", None).await.backend().to_owned();
    for _ in 0..20 {
        assert_eq!(c.get("/", None).await.backend(), first);
    }
}

/// A backend removed by reload: its sessions move to a live backend with a
/// new cookie; other sessions survive the reload untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_sessions_and_moves_removed() {
    let backends = whoamis(3);
    let all = pairs(&backends);
    let p = TestProxy::start(ServicesConfig::single("web", &all));
    let mut by_backend = HashMap::new();
    for _ in 0..3 {
        let r = get(p.addr, "/", None).await;
        by_backend.insert(r.backend().to_owned(), r.cookie.unwrap());
    }
    let mut c = Client::connect(p.addr).await;
    p.proxy.balancer().replace(ServicesConfig::single("web", &all[..2]));
    for (name, cookie) in &by_backend {
        let r = c.get("/", Some(cookie)).await;
        if name == "whoami-3" {
            assert_ne!(r.backend(), "whoami-3");
            assert!(r.cookie.is_some(), "moved session gets a new cookie");
        } else {
            assert_eq!(r.backend(), name, "session kept across reload");
            assert!(r.cookie.is_none());
        }
    }
}

/// A draining backend keeps its pinned sessions but gets no new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_keeps_pinned_sessions() {
    let backends = whoamis(2);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let r = get(p.addr, "/", None).await;
    let (pinned, cookie) = (r.backend().to_owned(), r.cookie.unwrap());
    p.proxy.balancer().set_draining("web", &pinned, true).unwrap();
    for _ in 0..10 {
        assert_ne!(get(p.addr, "/", None).await.backend(), pinned, "no new sessions");
        assert_eq!(
            get(p.addr, "/", Some(&cookie)).await.backend(),
            pinned,
            "pinned session stays"
        );
    }
}

/// Restarting with the same key keeps sessions (the cookie is verifiable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_after_restart() {
    let backends = whoamis(2);
    let key = Keyring::from_secrets(&["restart-key-restart-key"]);
    let p = TestProxy::start_with(ServicesConfig::single("web", &pairs(&backends)), key.clone(), 1);
    let r = get(p.addr, "/", None).await;
    p.stop();
    let p2 = TestProxy::start_with(ServicesConfig::single("web", &pairs(&backends)), key, 1);
    let again = get(p2.addr, "/", Some(r.cookie.as_deref().unwrap())).await;
    assert_eq!(again.backend(), r.backend());
    assert!(again.cookie.is_none());
}

/// 1,000 concurrent clients, all connected at once, each get a session
/// and keep their backend over several keep-alive requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_clients_keep_their_backend() {
    const CLIENTS: usize = 1000;
    let backends = whoamis(3);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let addr = p.addr;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                let first = c.get("/", None).await;
                let cookie = first.cookie.clone().unwrap();
                // Every client holds its connection open from here on.
                barrier.wait().await;
                for _ in 0..3 {
                    assert_eq!(c.get("/", Some(&cookie)).await.backend(), first.backend());
                }
                first.backend().to_owned()
            })
        })
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let name = tokio::time::timeout(crate::harness::proxy::WAIT * 6, t)
            .await
            .unwrap()
            .unwrap();
        *seen.entry(name).or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen.values().sum::<usize>(), CLIENTS);
}

/// `run` flags build the proxy: `--backend` services, and without a key
/// file a key generated once in `--state-dir` (0600), so a restarted
/// process keeps the sessions of the first; `--cookie-name` names the cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_flags_and_state_dir_key_survive_restart() {
    use std::os::unix::fs::PermissionsExt as _;

    use clap::Parser as _;
    use proxy_user::{
        cli::{Cli, Command},
        config::{Config, KeyUse},
        proxy::Proxy,
    };
    // What `run` builds from its flags: the services and the keys.
    let from_flags = |args: &proxy_user::cli::RunArgs| {
        let config = Config::from_run_args(args).unwrap();
        let keys = config.keys.load(KeyUse::Serve).unwrap();
        Proxy::standalone(config.services, keys.keyring)
    };

    let backends = whoamis(2);
    let state = tempfile::tempdir().unwrap();
    let mut argv = vec![
        "swarm-sticky".to_owned(),
        "run".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:8080".to_owned(),
    ];
    for b in &backends {
        argv.extend(["--backend".to_owned(), format!("{}=http://{}", b.name, b.addr)]);
    }
    argv.extend(["--state-dir".to_owned(), state.path().display().to_string()]);
    argv.extend(["--cookie-name".to_owned(), "SID".to_owned()]);
    let Command::Run(args) = Cli::try_parse_from(&argv).unwrap().command else {
        panic!("run")
    };

    let first = TestProxy::serve(from_flags(&args), 1);
    let r = get(first.addr, "/", None).await;
    let cookie = r.cookie.clone().unwrap();
    assert!(cookie.starts_with("SID="), "{cookie}");
    first.stop();
    let mode = std::fs::metadata(state.path().join("cookie.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let second = TestProxy::serve(from_flags(&args), 1);
    let again = get(second.addr, "/", Some(&cookie)).await;
    assert_eq!(again.backend(), r.backend());
    assert!(again.cookie.is_none(), "the restarted proxy verifies the old cookie");
}

/// Rotating the cookie key while running keeps sessions: an old cookie
/// still verifies and is re-signed with the new key on its response, and
/// new sessions are signed with the new key at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_while_running_keeps_sessions() {
    let backends = whoamis(2);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let before = get(p.addr, "/", None).await;
    let old_cookie = before.cookie.clone().unwrap();
    let new_key = [7u8; 32];
    p.proxy.keyring().replace(p.proxy.keyring().load().rotated(&new_key));
    let only_new = Keyring::from_secrets(&[new_key]);
    let signed_by_new = |cookie: &str| {
        let value = cookie.split_once('=').unwrap().1;
        only_new
            .decode("web", value.as_bytes(), proxy_user::cookie::unix_now(), None)
            .is_ok()
    };
    let again = get(p.addr, "/", Some(&old_cookie)).await;
    assert_eq!(again.backend(), before.backend(), "the old cookie still verifies");
    let resigned = again.cookie.expect("the old cookie is re-signed");
    assert!(signed_by_new(&resigned), "re-signed with the new key");
    let third = get(p.addr, "/", Some(&resigned)).await;
    assert_eq!(third.backend(), before.backend());
    assert!(third.cookie.is_none(), "a cookie of the signing key is not re-issued");
    let fresh = get(p.addr, "/", None).await.cookie.unwrap();
    assert!(signed_by_new(&fresh), "a new session is signed with the new key");
}
