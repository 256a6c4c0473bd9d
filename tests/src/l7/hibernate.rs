//! Idle HTTP/1 keep-alive connections hibernate (hyper's buffers are
//! freed after `HIBERNATE_AFTER` without traffic at a message boundary):
//! the connection, its backend pin and slow or upgraded streams must not
//! notice. Each test idles for longer than the hibernation delay on
//! purpose; that wait is the condition under test.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{Request, header};
use http_body_util::{BodyExt as _, Full};
use proxy_user::{proxy::HIBERNATE_AFTER, services::ServicesConfig};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{
    backend::{pairs, streaming_backend, whoamis},
    proxy::{Client, TestProxy, WAIT, http1, websocket},
};

fn past_hibernation() -> Duration {
    HIBERNATE_AFTER + Duration::from_millis(500)
}

/// A keep-alive connection idle past the delay serves its next requests on
/// the same socket, and cookie-less requests keep the connection's pick
/// (three backends, so a fresh pick would move).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_and_pin_survive_hibernation() {
    let backends = whoamis(3);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let mut c = Client::connect(p.addr).await;
    let first = c.get("/", None).await;
    let picked = first.backend().to_owned();
    assert!(!picked.is_empty());
    for round in 0..2 {
        tokio::time::sleep(past_hibernation()).await;
        for _ in 0..3 {
            let r = c.get("/", None).await;
            assert_eq!(r.status, 200);
            assert_eq!(
                r.backend(),
                picked,
                "round {round}: the connection's pick after hibernation"
            );
        }
    }
}

/// A response body with a pause longer than the delay between its chunks
/// is delivered whole, and the connection serves the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_not_cut_by_hibernation() {
    let (addr, mut requests) = streaming_backend().await;
    let p = TestProxy::start(ServicesConfig::single("web", &[("stream".into(), addr)]));
    let mut send = http1(p.addr).await;
    let req = || {
        Request::get("/")
            .header(header::HOST, "x")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let first = req();
    let resp_fut = tokio::spawn(async move {
        let resp = send.send_request(first).await.unwrap();
        (send, resp)
    });
    let chunks = tokio::time::timeout(WAIT, requests.recv()).await.unwrap().unwrap();
    chunks.send(Bytes::from_static(b"first ")).await.unwrap();
    let (mut send, resp) = tokio::time::timeout(WAIT, resp_fut).await.unwrap().unwrap();
    let body = tokio::spawn(async move { resp.into_body().collect().await.map(|b| b.to_bytes()) });
    tokio::time::sleep(past_hibernation()).await;
    chunks.send(Bytes::from_static(b"last")).await.unwrap();
    drop(chunks);
    let whole = tokio::time::timeout(WAIT, body).await.unwrap().unwrap().unwrap();
    assert_eq!(whole, "first last");

    // The same connection takes another request.
    tokio::time::timeout(WAIT, send.ready()).await.unwrap().unwrap();
    let next = tokio::spawn(async move { send.send_request(req()).await.unwrap() });
    let chunks = tokio::time::timeout(WAIT, requests.recv()).await.unwrap().unwrap();
    chunks.send(Bytes::from_static(b"again")).await.unwrap();
    drop(chunks);
    let resp = tokio::time::timeout(WAIT, next).await.unwrap().unwrap();
    let body = tokio::time::timeout(WAIT, resp.into_body().collect())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body.to_bytes(), "again");
}

/// An upgraded connection idle past the delay still echoes: upgrades never
/// hibernate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_stays_open() {
    let backends = whoamis(1);
    let p = TestProxy::start(ServicesConfig::single("web", &pairs(&backends)));
    let (mut ws, _) = websocket(p.addr).await;
    ws.send(Message::text("before")).await.unwrap();
    let echo = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echo, Message::text("before"));
    tokio::time::sleep(past_hibernation()).await;
    ws.send(Message::text("after")).await.unwrap();
    let echo = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echo, Message::text("after"));
    ws.close(None).await.unwrap();
}
