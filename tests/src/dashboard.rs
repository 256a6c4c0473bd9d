//! The admin dashboard in a real headless Chromium: the page loads from
//! the binary's embedded files only, shows the backends of a running
//! instance with their share of sessions and the request rate, and
//! changes in place (no reload) when a backend is drained.

use std::time::Duration;

use crate::harness::{
    backend::Whoami,
    browser::Browser,
    client,
    instance::{Instance, wait_until},
};

const TOKEN: &str = "dashboard-test-token-0123456789";

/// `[[backend, state, share%], …]` as the page shows them.
const ROWS: &str = r#"JSON.stringify([...document.querySelectorAll("[data-backend]")].map(r =>
  [r.dataset.backend, r.dataset.state, r.querySelector(".bar > div").style.width]))"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_backends_and_follows_a_drain() {
    let dir = tempfile::tempdir().unwrap();
    let (w1, w2) = (Whoami::start("w1"), Whoami::start("w2"));
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let (b1, b2, tok) = (
        format!("w1=http://{}", w1.addr),
        format!("w2=http://{}", w2.addr),
        token.display().to_string(),
    );
    let i = Instance::start(
        dir.path(),
        &["--backend", &b1, "--backend", &b2, "--admin-token-file", &tok],
    );
    let listen = i.listen;
    // Sessions on both backends, so both bars have a width.
    tokio::task::spawn_blocking(move || {
        for _ in 0..20 {
            assert_eq!(client::get(listen, "/").unwrap().status, 200);
        }
    })
    .await
    .unwrap();

    let browser = Browser::start();
    let origin = format!("http://{}", i.admin);
    let mut page = browser.open(&format!("{origin}/")).await;
    let parse = |v: &serde_json::Value| -> Vec<(String, String, String)> {
        serde_json::from_str(v.as_str().unwrap_or("[]")).unwrap_or_default()
    };
    let rows = page
        .wait_for("both backends on the page", ROWS, Duration::from_secs(15), |v| {
            parse(v).len() == 2
        })
        .await;
    let rows = parse(&rows);
    assert_eq!(rows[0].0, "default/w1");
    assert_eq!(rows[1].0, "default/w2");
    assert!(rows.iter().all(|r| r.1 == "healthy"), "{rows:?}");
    let share = |w: &str| w.trim_end_matches('%').parse::<f64>().unwrap_or(-1.0);
    assert!(
        rows.iter().all(|r| (share(&r.2) - 50.0).abs() < 0.1),
        "sessions split evenly: {rows:?}"
    );
    let title = page.eval("document.title").await;
    assert_eq!(title, "swarm-sticky");

    // The chart fills from the once-a-second samples while traffic flows.
    tokio::task::spawn_blocking(move || {
        for _ in 0..50 {
            client::get(listen, "/").unwrap();
        }
    })
    .await
    .unwrap();
    page.wait_for(
        "points on the request-rate chart",
        r#"document.getElementById("rate-line").getAttribute("points").split(" ").filter(Boolean).length"#,
        Duration::from_secs(10),
        |v| v.as_u64().is_some_and(|n| n >= 2),
    )
    .await;

    // A marker survives only if the page is not reloaded.
    page.eval("window.__noReload = 42").await;
    let r = client::request(
        i.admin,
        "POST",
        "/api/services/default/backends/w1/drain",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = page
        .wait_for("w1 shown draining", ROWS, Duration::from_secs(10), |v| {
            parse(v).iter().any(|r| r.0 == "default/w1" && r.1 == "draining")
        })
        .await;
    assert_eq!(parse(&rows)[1].1, "healthy", "w2 unchanged");
    assert_eq!(page.eval("window.__noReload").await, 42, "updated in place");
    let pill = page
        .eval(r#"document.querySelector('[data-backend="default/w1"] .pill').textContent"#)
        .await;
    assert_eq!(pill, "draining");

    // Everything the page loaded came from the admin listener.
    let n = page.requests.len();
    assert!(n >= 3, "page, script, stylesheet and API calls: {:?}", page.requests);
    let foreign: Vec<&String> = page.requests.iter().filter(|u| !u.starts_with(&origin)).collect();
    assert!(foreign.is_empty(), "requests off the admin listener: {foreign:?}");
    wait_until("the instance still serves", Duration::from_secs(5), || {
        client::get(listen, "/").is_ok_and(|r| r.status == 200)
    });
}

/// The certificates card lists each certificate with its names and
/// expiry, and shows a broken one as an error (and a warning).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_lists_certificates_and_their_errors() {
    use crate::harness::tls::{HttpsInstance, KeyKind, TestCa};
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let certs = dir.path().join("certs");
    ca.issue(
        &certs.join("a/cert.pem"),
        &certs.join("a/key.pem"),
        &["a.test"],
        KeyKind::Ecdsa,
    );
    ca.issue(
        &certs.join("b/cert.pem"),
        &certs.join("b/key.pem"),
        &["b.test"],
        KeyKind::Rsa,
    );
    let w1 = Whoami::start("w1");
    let i = HttpsInstance::start(&dir.path().join("state"), &certs, &[&w1], &[]);
    // b's key replaced by a's: b stays in service, with an error.
    std::fs::copy(certs.join("a/key.pem"), certs.join("b/key.pem")).unwrap();
    i.instance.process.signal(libc::SIGHUP);

    let browser = Browser::start();
    let mut page = browser.open(&format!("http://{}/", i.instance.admin)).await;
    const CERT_ROWS: &str = r##"JSON.stringify([...document.querySelectorAll("#certificates tbody tr")].map(tr => [tr.cells[0].textContent, tr.cells[1].textContent, tr.dataset.state, tr.cells[3].textContent]))"##;
    let parse = |v: &serde_json::Value| -> Vec<(String, String, String, String)> {
        serde_json::from_str(v.as_str().unwrap_or("[]")).unwrap_or_default()
    };
    let rows = page
        .wait_for("b shown in error", CERT_ROWS, Duration::from_secs(15), |v| {
            parse(v).iter().any(|r| r.2 == "error")
        })
        .await;
    let rows = parse(&rows);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].0.starts_with("a.test") && rows[0].1 == "ecdsa" && rows[0].2 == "ok",
        "{rows:?}"
    );
    assert!(
        rows[1].0.starts_with("b.test") && rows[1].1 == "rsa" && rows[1].2 == "error",
        "{rows:?}"
    );
    assert!(
        rows[0].3.contains("(89 days)") || rows[0].3.contains("(90 days)"),
        "{rows:?}"
    );
    let warning = page
        .eval(r#"document.getElementById("warning-list").textContent"#)
        .await;
    assert!(
        warning
            .as_str()
            .unwrap_or_default()
            .contains("is not the certificate's"),
        "{warning}"
    );
}

/// The ACME card shows each managed certificate: a CA that does not answer
/// leaves it failed with the reason (also a warning), then, once the CA
/// (Pebble) is up, valid with its expiry and the instance that ordered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_acme_state_failed_then_valid() {
    use crate::harness::{
        acme::{CaToCome, services_file, start_acme},
        instance::free_port,
    };
    let dir = tempfile::tempdir().unwrap();
    let (http, https) = (free_port(), free_port());
    let w1 = Whoami::start("w1");
    let config = services_file(dir.path(), &w1, &[("a.test", "acme = true")]);
    // The CA is down at first.
    let later = CaToCome::new(dir.path());
    let args = ["--config", config.as_str(), "--acme-retry", "1"];
    let i = start_acme(
        &dir.path().join("state"),
        &later.directory,
        &later.root,
        http,
        https,
        &args,
    );
    let browser = Browser::start();
    let mut page = browser.open(&format!("http://{}/", i.admin)).await;
    const ACME_ROWS: &str = r##"JSON.stringify([...document.querySelectorAll("#acme tbody tr")].map(tr => [tr.dataset.names, tr.dataset.state, tr.cells[1].textContent, tr.cells[2].textContent, tr.cells[5].textContent]))"##;
    let parse = |v: &serde_json::Value| -> Vec<(String, String, String, String, String)> {
        serde_json::from_str(v.as_str().unwrap_or("[]")).unwrap_or_default()
    };
    let rows = page
        .wait_for("a.test shown failed", ACME_ROWS, Duration::from_secs(20), |v| {
            parse(v).iter().any(|r| r.1 == "failed")
        })
        .await;
    let rows = parse(&rows);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "a.test");
    assert!(rows[0].2.contains("ACME account"), "the reason is shown: {rows:?}");
    let warning = page
        .eval(r#"document.getElementById("warning-list").textContent"#)
        .await;
    assert!(
        warning.as_str().unwrap_or_default().contains("ACME a.test"),
        "{warning}"
    );

    let _pebble = later.start(dir.path(), http, https);
    let rows = page
        .wait_for("a.test shown valid", ACME_ROWS, Duration::from_secs(60), |v| {
            parse(v).iter().any(|r| r.1 == "valid")
        })
        .await;
    let rows = parse(&rows);
    assert!(rows[0].3.ends_with('Z'), "an expiry: {rows:?}");
    assert_eq!(
        rows[0].4,
        crate::harness::client::get(i.admin, "/api/status")
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                v["instance"].as_str().unwrap_or_default().to_owned()
            })
            .unwrap(),
        "ordered by this instance"
    );
}
