//! `swarm-sticky probe URL`: one HTTP GET, exit status 0 on a 2xx answer
//! and 1 otherwise. Made for a Docker `HEALTHCHECK CMD` in images that have
//! no shell or curl (the `FROM scratch` test image, or swarm-sticky's own
//! image probing its admin listener).
//!
//! Plain `http://` only, to an IP address or `localhost`: a health check
//! probes its own container, so there is no DNS or TLS to do.
//!
//! With `--this-container`, an answer from a swarm-sticky in another PID
//! namespace does not count: during a start-first update two instances
//! share the admin port on the host network (see
//! [`crate::admin::listener`]), and each connection reaches one of them
//! ([`crate::instance`] names the process that answered).
//! The probe connects again, a bounded number of times, until its own
//! instance answers.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use http::Uri;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not `http://IP[:port]/path` (or `localhost`).
    #[error("{0}: need http://IP[:PORT]/PATH (or localhost)")]
    Url(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or the HTTP exchange failed.
    #[error("{0}")]
    Http(#[from] Box<dyn std::error::Error + Send + Sync>),
    /// An answer that is not 2xx.
    #[error("HTTP {0}")]
    Status(http::StatusCode),
    /// Only other containers' instances answered.
    #[error("{0} answers came from another container's swarm-sticky, none from this one")]
    OtherInstance(u32),
}

/// Connections a `--this-container` probe makes at most: with two
/// instances on the port, all of them reach the other one with a
/// probability of 2^-16.
const MAX_ATTEMPTS: u32 = 16;

/// Where `url` points: the socket address and the request path.
///
/// # Errors
/// [`ProbeError::Url`] for anything but `http://` to an IP or `localhost`.
pub fn target(url: &str) -> Result<(SocketAddr, String), ProbeError> {
    let bad = || ProbeError::Url(url.to_owned());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") {
        return Err(bad());
    }
    let host = uri.host().ok_or_else(bad)?;
    let ip: IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h.parse().map_err(|_| bad())?,
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok((SocketAddr::new(ip, uri.port_u16().unwrap_or(80)), path))
}

/// GETs `url`; `Ok` with the status when it is 2xx. With `this_container`,
/// answers of swarm-sticky instances in other PID namespaces are skipped.
///
/// # Errors
/// A bad URL, no answer within `timeout`, a status that is not 2xx, or
/// only other instances' answers.
pub async fn probe(url: &str, timeout: Duration, this_container: bool) -> Result<http::StatusCode, ProbeError> {
    let (addr, path) = target(url)?;
    let own = crate::instance::pid_namespace();
    let attempts = async {
        for _ in 0..MAX_ATTEMPTS {
            let (status, instance) = exchange(addr, &path).await?;
            let other = instance
                .as_deref()
                .and_then(crate::instance::namespace_of)
                .is_some_and(|ns| Some(ns) != own);
            if !(this_container && other) {
                return Ok(status);
            }
        }
        Err(ProbeError::OtherInstance(MAX_ATTEMPTS))
    };
    let status = tokio::time::timeout(timeout, attempts)
        .await
        .map_err(|_| ProbeError::Timeout(timeout))??;
    if status.is_success() {
        Ok(status)
    } else {
        Err(ProbeError::Status(status))
    }
}

/// One GET on a new connection: the status and the instance header.
async fn exchange(addr: SocketAddr, path: &str) -> Result<(http::StatusCode, Option<String>), ProbeError> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        crate::oneshot::get(stream, &addr.to_string(), path, Some("swarm-sticky-probe")).await
    };
    let resp = exchange.await?;
    let instance = resp
        .headers()
        .get(crate::instance::INSTANCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((resp.status(), instance))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPs, localhost and default ports are understood; anything needing
    /// DNS or TLS is refused up front.
    #[test]
    fn targets() {
        let t = |u: &str| target(u).ok().map(|(a, p)| (a.to_string(), p));
        assert_eq!(
            t("http://127.0.0.1:8000/healthz"),
            Some(("127.0.0.1:8000".into(), "/healthz".into()))
        );
        assert_eq!(t("http://localhost/"), Some(("127.0.0.1:80".into(), "/".into())));
        assert_eq!(t("http://[::1]:9/x?y=1"), Some(("[::1]:9".into(), "/x?y=1".into())));
        assert_eq!(t("https://127.0.0.1/"), None);
        assert_eq!(t("http://example.com/"), None);
        assert_eq!(t("not a url"), None);
    }

    /// A server that answers every connection with 200 and `instance`
    /// in the instance header; its URL.
    async fn answering_as(instance: String) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/readyz", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut head = [0u8; 1024];
                let _ = s.read(&mut head).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\n{}: {instance}\r\ncontent-length: 6\r\nconnection: close\r\n\r\nready\n",
                    crate::instance::INSTANCE_HEADER
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        url
    }

    /// `--this-container` counts an answer of this PID namespace and not
    /// one of another (after its bounded attempts); without it, both count.
    #[tokio::test]
    async fn this_container_counts_only_its_own_process() {
        let t = Duration::from_secs(5);
        let own = answering_as(crate::instance::instance().to_owned()).await;
        assert!(probe(&own, t, true).await.is_ok());
        let other = answering_as("1/1".to_owned()).await;
        assert!(matches!(
            probe(&other, t, true).await,
            Err(ProbeError::OtherInstance(MAX_ATTEMPTS))
        ));
        assert!(probe(&other, t, false).await.is_ok());
    }

    /// Against the whoami backend's health switch: 200 passes, 503 fails.
    #[tokio::test]
    async fn follows_the_whoami_health_switch() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(crate::demo::serve_whoami(listener, "w".into()));
        let t = Duration::from_secs(5);
        assert!(probe(&format!("{base}/healthz"), t, false).await.is_ok());
        probe(&format!("{base}/healthz/fail"), t, false).await.unwrap();
        assert!(matches!(
            probe(&format!("{base}/healthz"), t, false).await,
            Err(ProbeError::Status(s)) if s == 503
        ));
        probe(&format!("{base}/healthz/recover"), t, false).await.unwrap();
        assert!(probe(&format!("{base}/healthz"), t, false).await.is_ok());
    }
}
