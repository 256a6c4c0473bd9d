//! The key material of `bench tls`, made with openssl in the scratch
//! directory: one ECDSA P-256 certificate for `localhost` and 127.0.0.1
//! that both proxies serve, and HAProxy's session-ticket keys.

use std::{path::PathBuf, process::Command};

use anyhow::Context as _;

use crate::{bench::process::Scratch, cmd};

/// Paths of the files.
pub(super) struct Material {
    /// The certificate (PEM), for swarm-sticky and the bench's own client.
    pub(super) cert: PathBuf,
    /// Its key (PKCS#8 PEM), for swarm-sticky.
    pub(super) key: PathBuf,
    /// Certificate and key in one file, as HAProxy's `crt` reads them.
    pub(super) combined: PathBuf,
    /// HAProxy's `tls-ticket-keys`: three base64 keys, one per line.
    pub(super) ticket_keys: PathBuf,
}

/// Generates the files.
///
/// # Errors
/// When openssl fails.
pub(super) fn generate(scratch: &Scratch) -> anyhow::Result<Material> {
    let dir = scratch.path();
    let m = Material {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        combined: dir.join("combined.pem"),
        ticket_keys: dir.join("tickets.key"),
    };
    // CA:FALSE, since openssl's default for -x509 (CA:TRUE) makes rustls
    // refuse the certificate as a server's own; the client trusts it as
    // its one root.
    cmd::output(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(&m.key)
            .arg("-out")
            .arg(&m.cert),
    )?;
    let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()));
    std::fs::write(&m.combined, read(&m.cert)? + &read(&m.key)?).context("write the combined PEM")?;
    // 80 bytes each (AES-256 tickets); `openssl rand -base64` wraps lines.
    let mut keys = String::new();
    for _ in 0..3 {
        let key = cmd::output(Command::new("openssl").args(["rand", "-base64", "80"]))?;
        keys.extend(key.split_whitespace());
        keys.push('\n');
    }
    std::fs::write(&m.ticket_keys, keys).context("write the ticket keys")?;
    Ok(m)
}
