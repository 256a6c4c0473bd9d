//! The server side of one TLS handshake, bounded: the whole handshake has
//! [`TlsSettings::handshake_timeout`](super::TlsSettings) and a ClientHello
//! may not announce more than `max_client_hello` bytes, so slow or bloated
//! handshakes cannot hold a worker's connections. A connection that starts
//! with anything but a TLS handshake record is handed back: a plain HTTP
//! request gets a short 400 from the proxy instead of a hang.
//!
//! Every outcome is counted in [`TlsStats`]: completed handshakes by
//! version and full-or-resumed, with their duration, and failures by
//! reason.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use rustls::{HandshakeKind, ProtocolVersion};
use tokio::net::TcpStream;
use tokio_rustls::{LazyConfigAcceptor, server::TlsStream};

use super::Tls;

/// TLS record type of a handshake.
const HANDSHAKE_RECORD: u8 = 0x16;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 0x01;
/// Record header (5) + handshake type (1) + handshake length (3).
const HELLO_PREFIX: usize = 9;

/// What became of a connection on a TLS listener.
pub enum Accepted {
    /// The handshake completed.
    Tls {
        /// The connection, decrypted.
        stream: Box<TlsStream<TcpStream>>,
        /// ALPN chose HTTP/2.
        h2: bool,
    },
    /// The client speaks plain HTTP (its first byte is a letter).
    PlainHttp(TcpStream),
    /// Closed, timed out, or not a valid handshake (counted and logged).
    Failed,
}

/// Why handshakes failed, in the metric's order.
pub const FAILURES: [&str; 5] = ["error", "timeout", "plain_http", "hello_too_large", "closed"];

/// Upper bounds of the handshake duration histogram, in seconds.
pub const DURATION_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0];

/// Handshake counters of the process (all workers).
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Completed: `[TLS 1.2, TLS 1.3][full, resumed]`.
    completed: [[AtomicU64; 2]; 2],
    /// Failed, by [`FAILURES`].
    failed: [AtomicU64; FAILURES.len()],
    /// Completed handshakes per duration bucket (the last: above all).
    duration: [AtomicU64; DURATION_BUCKETS.len() + 1],
    duration_sum_us: AtomicU64,
}

/// Completed handshakes of one kind.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Completed {
    /// `1.2` or `1.3`.
    pub version: &'static str,
    /// Abbreviated (a session ticket or ID was accepted).
    pub resumed: bool,
    /// How many.
    pub count: u64,
}

/// Failed handshakes of one reason.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failed {
    /// One of [`FAILURES`].
    pub reason: &'static str,
    /// How many.
    pub count: u64,
}

/// A copy of the counters, for the metrics and the status.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TlsCounts {
    /// Completed handshakes by version and kind.
    pub completed: Vec<Completed>,
    /// Failed ones by reason.
    pub failed: Vec<Failed>,
    /// Duration: sum in seconds, count, and the count of each bucket.
    #[serde(skip)]
    pub duration: (f64, u64, Vec<(f64, u64)>),
}

impl TlsStats {
    fn fail(&self, reason: &str) {
        if let Some(i) = FAILURES.iter().position(|r| *r == reason) {
            self.failed[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn complete(&self, version: Option<ProtocolVersion>, resumed: bool, started: Instant) {
        let v = usize::from(version == Some(ProtocolVersion::TLSv1_3));
        self.completed[v][usize::from(resumed)].fetch_add(1, Ordering::Relaxed);
        let took = started.elapsed();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|b| took.as_secs_f64() <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.duration[bucket].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The counters now.
    #[expect(clippy::cast_precision_loss, reason = "a duration sum in seconds")]
    pub fn counts(&self) -> TlsCounts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut completed = Vec::new();
        for (v, name) in ["1.2", "1.3"].into_iter().enumerate() {
            for resumed in [false, true] {
                completed.push(Completed {
                    version: name,
                    resumed,
                    count: load(&self.completed[v][usize::from(resumed)]),
                });
            }
        }
        // Per bucket, the last one unbounded, as the encoder wants them
        // (it accumulates).
        let buckets: Vec<(f64, u64)> = self
            .duration
            .iter()
            .enumerate()
            .map(|(i, n)| (DURATION_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), load(n)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        TlsCounts {
            completed,
            failed: FAILURES
                .iter()
                .zip(&self.failed)
                .map(|(reason, c)| Failed { reason, count: load(c) })
                .collect(),
            duration: (load(&self.duration_sum_us) as f64 / 1e6, count, buckets),
        }
    }
}

impl Tls {
    /// The configuration answering a TLS-ALPN-01 challenge, when the
    /// client offers `acme-tls/1` and one is published for its name.
    fn challenge_config(&self, start: &tokio_rustls::StartHandshake<TcpStream>) -> Option<Arc<rustls::ServerConfig>> {
        let book = self.challenges.as_ref()?;
        let hello = start.client_hello();
        if !hello.alpn()?.any(|p| p == super::ACME_TLS_ALPN) {
            return None;
        }
        book.alpn_answer(hello.server_name()?)
    }

    /// Runs the server side of a handshake on `stream`.
    pub async fn accept(&self, stream: TcpStream) -> Accepted {
        let started = Instant::now();
        let limit = self.settings.handshake_timeout;
        match tokio::time::timeout(limit, self.handshake(stream, started)).await {
            Ok(accepted) => accepted,
            Err(_) => {
                self.stats.fail("timeout");
                tracing::debug!(?limit, "TLS handshake timed out");
                Accepted::Failed
            }
        }
    }

    async fn handshake(&self, stream: TcpStream, started: Instant) -> Accepted {
        let mut head = [0u8; HELLO_PREFIX];
        let seen = match crate::listener::peek_until(&stream, &mut head, |b| {
            b.len() >= HELLO_PREFIX || b[0] != HANDSHAKE_RECORD
        })
        .await
        {
            Ok(0) | Err(_) => {
                self.stats.fail("closed");
                return Accepted::Failed;
            }
            Ok(n) => n,
        };
        if head[0] != HANDSHAKE_RECORD {
            self.stats.fail("plain_http");
            return if head[0].is_ascii_alphabetic() {
                Accepted::PlainHttp(stream)
            } else {
                Accepted::Failed
            };
        }
        if seen < HELLO_PREFIX {
            self.stats.fail("closed");
            return Accepted::Failed;
        }
        let announced = u32::from_be_bytes([0, head[6], head[7], head[8]]);
        if head[5] != CLIENT_HELLO || announced as usize > self.settings.max_client_hello {
            self.stats.fail("hello_too_large");
            tracing::debug!(bytes = announced, "ClientHello refused: not one, or too large");
            return Accepted::Failed;
        }
        let start = match LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await {
            Ok(s) => s,
            Err(err) => {
                self.stats.fail("error");
                tracing::debug!(error = %err, "TLS ClientHello refused");
                return Accepted::Failed;
            }
        };
        if let Some(config) = self.challenge_config(&start) {
            // A CA validating TLS-ALPN-01: the handshake is the answer.
            let name = start.client_hello().server_name().unwrap_or_default().to_owned();
            match start.into_stream(config).await {
                Ok(_) => tracing::info!(name, "ACME TLS-ALPN-01 challenge answered"),
                Err(err) => tracing::warn!(name, error = %err, "ACME TLS-ALPN-01 handshake failed"),
            }
            return Accepted::Failed;
        }
        match start.into_stream(self.server_config.clone()).await {
            Ok(stream) => {
                let conn = stream.get_ref().1;
                let h2 = conn.alpn_protocol() == Some(b"h2");
                let resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
                self.stats.complete(conn.protocol_version(), resumed, started);
                Accepted::Tls {
                    stream: Box::new(stream),
                    h2,
                }
            }
            Err(err) => {
                self.stats.fail("error");
                tracing::debug!(error = %err, "TLS handshake failed");
                Accepted::Failed
            }
        }
    }
}
