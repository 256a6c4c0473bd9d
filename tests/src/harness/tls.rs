//! HTTPS test tooling: certificates made with openssl (a test CA and
//! leaves it signs, ECDSA or RSA), a swarm-sticky instance with an HTTPS
//! listener, and the real clients the tests speak through: curl and
//! `openssl s_client`. Everything stays on loopback.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use super::{
    backend::Whoami,
    instance::{Instance, free_port},
};

/// Runs a command, panicking with its stderr if it fails to start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is it installed? `cargo xtask test` installs it)"))
}

/// Runs openssl, panicking unless it succeeds.
fn openssl(args: &[&str]) -> Output {
    let out = run(Command::new("openssl").args(args));
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The key type of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256.
    Ecdsa,
    /// RSA 2048.
    Rsa,
}

/// A test certificate authority in a directory of its own.
pub struct TestCa {
    dir: PathBuf,
    /// Its certificate, for `curl --cacert` and `s_client -CAfile`.
    pub cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    /// A new CA in `dir`.
    pub fn new(dir: &Path) -> Self {
        let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "90",
            "-subj",
            "/CN=swarm-sticky test CA",
            "-keyout",
            &path(&key),
            "-out",
            &path(&cert),
        ]);
        Self {
            dir: dir.to_owned(),
            cert,
            key,
        }
    }

    /// Issues a certificate for `names` into `chain` and `key`; returns its
    /// serial (upper-case hex, as openssl prints it).
    pub fn issue(&self, chain: &Path, key: &Path, names: &[&str], kind: KeyKind) -> String {
        if let Some(parent) = chain.parent() {
            std::fs::create_dir_all(parent).expect("certificate directory");
        }
        let csr = self.dir.join(format!("{}.csr", rand::random::<u64>()));
        // An address is an IP SAN (the test CA's servers on a LAN address).
        let san = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect::<Vec<_>>()
            .join(",");
        let subject = format!("/CN={}", names[0]);
        let newkey: &[&str] = match kind {
            KeyKind::Ecdsa => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyKind::Rsa => &["-newkey", "rsa:2048"],
        };
        let mut req = vec!["req", "-new", "-nodes", "-subj", &subject, "-keyout"];
        let (key_s, csr_s, chain_s) = (path(key), path(&csr), path(chain));
        req.extend([key_s.as_str(), "-out", csr_s.as_str(), "-addext"]);
        let san_ext = format!("subjectAltName={san}");
        req.push(&san_ext);
        // What a real certificate has (testssl.sh checks for it).
        req.extend(["-addext", "crlDistributionPoints=URI:http://127.0.0.1/test.crl"]);
        req.extend(newkey);
        openssl(&req);
        // A serial with a non-zero first digit: printed as generated.
        let serial = format!("{:X}", rand::random::<u64>() | (1 << 60));
        let (ca, ca_key, set_serial) = (path(&self.cert), path(&self.key), format!("0x{serial}"));
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr_s,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-set_serial",
            &set_serial,
            "-days",
            "90",
            "-copy_extensions",
            "copyall",
            "-out",
            &chain_s,
        ]);
        serial
    }
}

/// Whether two serials are the same, as openssl (leading zero kept to an
/// even length) and swarm-sticky (none) print them.
pub fn same_serial(a: &str, b: &str) -> bool {
    a.trim_start_matches('0')
        .eq_ignore_ascii_case(b.trim_start_matches('0'))
}

/// A path as an argument.
pub fn path(p: &Path) -> String {
    p.display().to_string()
}

/// An instance serving `backends` on a plain listener and on an HTTPS one
/// with the certificates of `cert_dir`, plus `args`.
pub struct HttpsInstance {
    /// The instance (its `listen` is the plain listener).
    pub instance: Instance,
    /// The HTTPS listener.
    pub https: SocketAddr,
}

impl HttpsInstance {
    /// Starts and waits until ready.
    pub fn start(state_dir: &Path, cert_dir: &Path, backends: &[&Whoami], args: &[&str]) -> Self {
        let https = free_port();
        let listen = format!("https://{https}");
        let dir = path(cert_dir);
        let specs: Vec<String> = backends
            .iter()
            .map(|w| format!("{}=http://{}", w.name, w.addr))
            .collect();
        let mut all = vec!["--listen", &listen, "--tls-cert-dir", &dir];
        for s in &specs {
            all.extend(["--backend", s.as_str()]);
        }
        all.extend(args);
        let instance = Instance::start(state_dir, &all);
        Self { instance, https }
    }

    /// `curl -s` against `https://NAME:PORT/PATH` resolved to this instance,
    /// trusting `ca`, with `args` before the URL.
    pub fn curl(&self, ca: &Path, name: &str, url_path: &str, args: &[&str]) -> Output {
        let port = self.https.port();
        let resolve = format!("{name}:{port}:127.0.0.1");
        let url = format!("https://{name}:{port}{url_path}");
        run(Command::new("curl")
            .args(["-s", "--max-time", "10", "--cacert", &path(ca), "--resolve", &resolve])
            .args(args)
            .arg(url))
    }
}

/// What `openssl s_client` saw of a handshake with `addr`.
pub struct Handshake {
    /// The served certificate's serial (upper-case hex), if any.
    pub serial: Option<String>,
    /// The whole output, for assertions and failure messages.
    pub text: String,
}

/// Connects with `openssl s_client` (SNI `sni`, or none), sends
/// `request` and reads until the server closes (with no request, it only
/// shakes hands); `args` are added.
pub fn s_client(addr: SocketAddr, sni: Option<&str>, request: &str, args: &[&str]) -> Handshake {
    let connect = addr.to_string();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &connect]);
    if !request.is_empty() {
        cmd.arg("-ign_eof");
    }
    match sni {
        Some(name) => cmd.args(["-servername", name]),
        None => cmd.arg("-noservername"),
    };
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("openssl s_client (is openssl installed?)");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(request.as_bytes());
    }
    let out = wait_output(child, std::time::Duration::from_secs(15));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let serial = certificate_serial(&out.stdout);
    Handshake { serial, text }
}

/// The serial of the first PEM certificate in `output`.
fn certificate_serial(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text[start..].find("-----END CERTIFICATE-----")? + start + 25;
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    {
        use std::io::Write as _;
        child.stdin.take()?.write_all(text[start..end].as_bytes()).ok()?;
    }
    let out = child.wait_with_output().ok()?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    line.strip_prefix("serial=").map(str::to_owned)
}

/// Waits for `child` for at most `limit`, killing it after.
fn wait_output(mut child: std::process::Child, limit: std::time::Duration) -> Output {
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().expect("child output")
}

/// A rustls client connection to `addr` for `name`, trusting `ca`, offering
/// `alpn`.
pub async fn connect(
    addr: SocketAddr,
    name: &str,
    ca: &Path,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(std::io::Error::other)? {
        roots
            .add(cert.map_err(std::io::Error::other)?)
            .map_err(std::io::Error::other)?;
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let server = ServerName::try_from(name.to_owned()).map_err(std::io::Error::other)?;
    connector.connect(server, tcp).await
}
