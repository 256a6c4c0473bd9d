//! The bench's own TLS client (tokio + rustls): one checked request, and
//! the 10,000 idle connections of the memory part, which each send one
//! request with the sticky cookie, read its answer and then stay open
//! until dropped. Processes per connection (openssl) would be far too slow
//! to open that many within swarm-sticky's 10 s keep-alive limit.
//!
//! The client offers X25519 only, TLS 1.3 and HTTP/1.1, with no session
//! resumption: every connection is the same full handshake on both proxies,
//! with the group `openssl s_time` gets as well.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use rustls::{ClientConfig, RootCertStore, client::Resumption, crypto::aws_lc_rs};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject as _};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
    runtime::Runtime,
    task::JoinSet,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

/// Connections being opened at once.
const IN_FLIGHT: usize = 64;
/// Time for one connection: connect, handshake, request and answer.
const PER_CONNECTION: Duration = Duration::from_secs(5);
/// Source addresses 127.0.0.2 … 127.0.0.9 in turn: the s_time runs before
/// leave thousands of 127.0.0.1 ports in TIME_WAIT, and 10,000 more from a
/// single source would crowd the ephemeral range.
const SOURCES: u8 = 8;

/// A client for the certificate in `cert` (PEM), named `localhost`.
pub(super) struct Client {
    connector: TlsConnector,
    rt: Runtime,
}

/// Open idle connections; dropping this closes them.
pub(super) struct Idle {
    // Before `_rt`: the streams go while their runtime still exists.
    _conns: Vec<TlsStream<TcpStream>>,
    _rt: Runtime,
}

impl Client {
    /// # Errors
    /// When the certificate cannot be read or rustls refuses the settings.
    pub(super) fn new(cert: &Path) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(cert).with_context(|| format!("read {}", cert.display()))?)?;
        let mut provider = aws_lc_rs::default_provider();
        provider.kx_groups = vec![aws_lc_rs::kx_group::X25519];
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = Resumption::disabled();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            rt,
        })
    }

    /// One request with `cookie` over a new connection from 127.0.0.1;
    /// returns the response head.
    ///
    /// # Errors
    /// When the connection or the request fails.
    pub(super) fn head(&self, addr: SocketAddr, cookie: &str) -> anyhow::Result<String> {
        let (_, head) = self.rt.block_on(open(
            self.connector.clone(),
            Ipv4Addr::LOCALHOST,
            addr,
            cookie.to_owned(),
        ))?;
        Ok(head)
    }

    /// Opens `n` connections to `addr`, each with one request that must
    /// be answered 200, and keeps them.
    ///
    /// # Errors
    /// When one fails.
    pub(super) fn idle(self, addr: SocketAddr, cookie: &str, n: usize) -> anyhow::Result<Idle> {
        let conns = self.rt.block_on(async {
            let mut conns = Vec::with_capacity(n);
            for start in (0..n).step_by(IN_FLIGHT) {
                let mut batch = JoinSet::new();
                for i in start..(start + IN_FLIGHT).min(n) {
                    let source = Ipv4Addr::new(127, 0, 0, 2 + (i % usize::from(SOURCES)) as u8);
                    batch.spawn(open(self.connector.clone(), source, addr, cookie.to_owned()));
                }
                while let Some(done) = batch.join_next().await {
                    let (stream, head) = done??;
                    if !head.starts_with("HTTP/1.1 200") {
                        bail!("{addr}: an idle connection's request got {head}");
                    }
                    conns.push(stream);
                }
            }
            Ok(conns)
        })?;
        Ok(Idle {
            _conns: conns,
            _rt: self.rt,
        })
    }
}

/// A TLS connection from `source` with one request; returns it and the
/// response head (the first read, which holds the whole small response).
async fn open(
    connector: TlsConnector,
    source: Ipv4Addr,
    addr: SocketAddr,
    cookie: String,
) -> anyhow::Result<(TlsStream<TcpStream>, String)> {
    let work = async {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((source, 0)))?;
        let tcp = socket.connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut tls = connector.connect(ServerName::try_from("localhost")?, tcp).await?;
        let req = format!("GET / HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n\r\n");
        tls.write_all(req.as_bytes()).await?;
        let mut buf = vec![0u8; 4096];
        let got = tls.read(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf[..got]);
        let head = text.split_once("\r\n\r\n").map_or(&*text, |(h, _)| h).to_owned();
        anyhow::Ok((tls, head))
    };
    tokio::time::timeout(PER_CONNECTION, work)
        .await
        .with_context(|| format!("{addr} from {source}: no answer within {PER_CONNECTION:?}"))?
}
