//! A real headless Chromium (Debian's `chromium` package) driven over the
//! Chrome DevTools Protocol: a fresh profile per test, the debugging port
//! on loopback, every network request the page makes recorded.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

/// Where Debian installs the browser.
const CANDIDATES: [&str; 3] = ["chromium", "chromium-browser", "google-chrome"];

/// The browser binary, or a panic that says how to get one.
pub fn chromium() -> PathBuf {
    for name in CANDIDATES {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = PathBuf::from(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "the dashboard test needs a headless Chromium and none is installed: `apt-get install chromium` (Debian), \
         or run `cargo xtask test`, which installs it"
    );
}

/// A running browser; killed (and its profile removed) on drop.
pub struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium headless with a fresh profile and nothing that
    /// phones home (no background networking, sync, updates or metrics).
    pub fn start() -> Self {
        let profile = tempfile::tempdir().expect("profile dir");
        let child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-domain-reliability",
                "--metrics-recording-only",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        // Chromium writes the port it chose into the profile.
        let active = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&active)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.parse().ok()))
            {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not open its debugging port within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self {
            child,
            port,
            _profile: profile,
        }
    }

    /// Opens `url` in a new tab and attaches to it.
    pub async fn open(&self, url: &str) -> Page {
        let target = http_json(self.port, "PUT", &format!("/json/new?{url}")).await;
        let ws = target["webSocketDebuggerUrl"]
            .as_str()
            .unwrap_or_else(|| panic!("no debugger URL in {target}"))
            .to_owned();
        let (socket, _) = tokio_tungstenite::connect_async(ws.as_str())
            .await
            .expect("attach to the tab");
        let mut page = Page {
            socket,
            next_id: 0,
            requests: Vec::new(),
        };
        page.call("Network.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on the DevTools HTTP endpoint (loopback). Chromium keeps
/// the connection open, so the body is read by its Content-Length.
async fn http_json(port: u16, method: &str, path: &str) -> Value {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("devtools port");
        let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        s.write_all(head.as_bytes()).await.expect("devtools request");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.expect("devtools answer");
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                });
                if n == 0 || length.is_some_and(|len| body.len() >= len) {
                    return body.to_owned();
                }
            }
            assert!(n > 0, "devtools closed the connection: {text}");
        }
    };
    let body = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("devtools {path}: no answer within 10 s"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("devtools {path}: {e}: {body}"))
}

/// An attached tab.
pub struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// URLs of every request the page made, in order.
    pub requests: Vec<String>,
}

impl Page {
    /// Sends a DevTools command and waits (at most 10 s) for its result,
    /// noting network events on the way.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket.send(Message::text(msg)).await.expect("send to devtools");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within 10 s"));
            let text = match next {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("devtools connection failed during {method}: {e}"),
                None => panic!("devtools connection closed during {method}"),
            };
            let v: Value = serde_json::from_str(&text).expect("devtools JSON");
            if v["method"] == "Network.requestWillBeSent"
                && let Some(url) = v["params"]["request"]["url"].as_str()
            {
                self.requests.push(url.to_owned());
            }
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Polls `expression` until `done` accepts its value; panics with the
    /// last value after `timeout`.
    pub async fn wait_for(
        &mut self,
        what: &str,
        expression: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(expression).await;
            if done(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; last value {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
