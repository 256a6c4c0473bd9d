//! Let's Encrypt's test CA on loopback: Pebble (`pebble`) with its DNS
//! and challenge test server (`pebble-challtestsrv`, which answers every
//! name with 127.0.0.1 and serves the TXT records a DNS-01 hook sets).
//! Pebble validates HTTP-01 and TLS-ALPN-01 on the ports the test names,
//! where the swarm-sticky under test listens. Its nonce rejection (5% of
//! good nonces) and authorization reuse stay on, as Pebble ships them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::{
    backend::Whoami,
    instance::{Instance, free_port, wait_until},
    tls::{KeyKind, TestCa, path, run},
};

/// A running Pebble and challenge test server.
pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// The root to trust for Pebble's own HTTPS (`--acme-ca-root`).
    pub server_root: PathBuf,
    /// Where Pebble listens (ACME).
    pub listen: SocketAddr,
    management: SocketAddr,
    challtestsrv: SocketAddr,
    dir: PathBuf,
    children: Vec<Child>,
}

/// What Pebble is told.
pub struct PebbleSpec {
    /// The port HTTP-01 validation connects to.
    pub http_port: u16,
    /// The port TLS-ALPN-01 validation connects to.
    pub tls_port: u16,
    /// Certificate lifetime in seconds (Pebble's default: five years).
    pub validity_secs: Option<u64>,
    /// Where Pebble listens for ACME (a free port when `None`).
    pub listen: Option<SocketAddr>,
}

impl Pebble {
    /// Starts both servers with files under `dir` and waits until they
    /// answer.
    pub fn start(dir: &Path, spec: &PebbleSpec) -> Self {
        let dir = dir.join("pebble");
        std::fs::create_dir_all(&dir).expect("pebble directory");
        let ca = TestCa::new(&dir);
        let listen = spec.listen.unwrap_or_else(free_port);
        let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
        let ip = listen.ip().to_string();
        ca.issue(&cert, &key, &["localhost", &ip], KeyKind::Ecdsa);
        // Loopback by name; another address (a node LAN's) as it is.
        let host = if listen.ip().is_loopback() {
            "localhost".to_owned()
        } else {
            ip
        };
        let (management, dns, challtestsrv) = (free_port(), free_port(), free_port());
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": listen.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": path(&cert),
                "privateKey": path(&key),
                "httpPort": spec.http_port,
                "tlsPort": spec.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        if let Some(secs) = spec.validity_secs {
            config["pebble"]["certificateValidityPeriod"] = secs.into();
        }
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("pebble config");
        let log = |name: &str| std::fs::File::create(dir.join(name)).expect("log file");
        let challtest = Command::new("pebble-challtestsrv")
            .args(["-dns01", &dns.to_string(), "-management", &challtestsrv.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("pebble-challtestsrv (is Debian's pebble installed? `cargo xtask test` installs it)");
        let pebble_log = log("pebble.log");
        let pebble = Command::new("pebble")
            .args(["-config", &path(&config_path), "-dnsserver", &dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdin(Stdio::null())
            .stdout(pebble_log.try_clone().expect("log file"))
            .stderr(pebble_log)
            .spawn()
            .expect("pebble (is Debian's pebble installed? `cargo xtask test` installs it)");
        let this = Self {
            directory: format!("https://{host}:{}/dir", listen.port()),
            server_root: ca.cert.clone(),
            listen,
            management,
            challtestsrv,
            dir,
            children: vec![challtest, pebble],
        };
        wait_until(
            "Pebble and its challenge test server to listen",
            Duration::from_secs(20),
            || {
                [this.listen, this.management, this.challtestsrv]
                    .iter()
                    .all(|a| std::net::TcpStream::connect(a).is_ok())
            },
        );
        this
    }

    /// GETs `path` of Pebble's management API.
    fn management(&self, url_path: &str) -> String {
        let url = format!("https://localhost:{}{url_path}", self.management.port());
        let out =
            run(Command::new("curl").args(["-sf", "--max-time", "10", "--cacert", &path(&self.server_root), &url]));
        assert!(
            out.status.success(),
            "GET {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes the root Pebble issues under to a file; its path.
    pub fn issuing_root(&self) -> PathBuf {
        let file = self.dir.join("issuing-root.pem");
        std::fs::write(&file, self.management("/roots/0")).expect("issuing root");
        file
    }

    /// A DNS-01 hook in lego's exec form that sets and clears TXT records
    /// on the challenge test server.
    pub fn dns_hook(&self) -> PathBuf {
        let hook = self.dir.join("dns-hook.sh");
        let api = format!("http://{}", self.challtestsrv);
        let script = format!(
            "#!/bin/sh\n\
             # lego exec form: present|cleanup FQDN VALUE\n\
             case \"$1\" in\n\
             present) exec curl -sf --max-time 10 -d \"{{\\\"host\\\":\\\"$2\\\",\\\"value\\\":\\\"$3\\\"}}\" {api}/set-txt ;;\n\
             cleanup) exec curl -sf --max-time 10 -d \"{{\\\"host\\\":\\\"$2\\\"}}\" {api}/clear-txt ;;\n\
             *) echo \"unknown action $1\" >&2; exit 2 ;;\n\
             esac\n"
        );
        std::fs::write(&hook, script).expect("hook script");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod hook");
        hook
    }

    /// Makes the challenge test server answer `host` with `ip` (the CA
    /// validates there), instead of its default, 127.0.0.1.
    pub fn add_a(&self, host: &str, ip: &str) {
        let body = format!("{{\"host\":\"{host}\",\"addresses\":[\"{ip}\"]}}");
        let url = format!("http://{}/add-a", self.challtestsrv);
        let out = run(Command::new("curl").args(["-sf", "--max-time", "10", "-d", &body, &url]));
        assert!(
            out.status.success(),
            "POST {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What Pebble logged, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }

    /// How many certificates Pebble issued (from its log).
    pub fn issued(&self) -> usize {
        self.count("Issued certificate serial")
    }

    /// How many lines of Pebble's log contain `needle` (e.g. `Added
    /// order`, `accounts in memory`).
    pub fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A services file under `dir` with one service per `(host, tls)`: the
/// rule's host, `w` as its backend, and `tls` as its `[services.tls]`
/// fields (`acme = true`); the file's path.
pub fn services_file(dir: &Path, w: &Whoami, specs: &[(&str, &str)]) -> String {
    let mut toml = String::new();
    for (i, (host, tls)) in specs.iter().enumerate() {
        toml.push_str(&format!(
            "[[services]]\nname = 's{i}'\nrule = {{ host = '{host}' }}\nbackends = [{{ name = '{}', url = 'http://{}' }}]\ntls = {{ {tls} }}\n",
            w.name, w.addr
        ));
    }
    let file = dir.join("services.toml");
    std::fs::write(&file, toml).expect("services file");
    path(&file)
}

/// swarm-sticky with ACME against `directory` (its HTTPS trusted through
/// `root`), plain HTTP on `http` and HTTPS on `https` (the ports the CA
/// validates), plus `args`; ready.
pub fn start_acme(
    state: &Path,
    directory: &str,
    root: &Path,
    http: SocketAddr,
    https: SocketAddr,
    args: &[&str],
) -> Instance {
    let (http, https, root) = (format!("http://{http}"), format!("https://{https}"), path(root));
    let mut all = vec![
        "--listen",
        &http,
        "--listen",
        &https,
        "--acme-directory",
        directory,
        "--acme-ca-root",
        &root,
    ];
    all.extend(args);
    Instance::start(state, &all)
}

/// A CA that is not up yet: its directory URL answers nothing until
/// [`CaToCome::start`]. The root its HTTPS will use is read from where a
/// stand-in's is now, since Pebble writes its own there when it starts
/// (and swarm-sticky reads the file again at each attempt).
pub struct CaToCome {
    /// The directory URL.
    pub directory: String,
    /// The root file to trust (`--acme-ca-root`).
    pub root: PathBuf,
    listen: SocketAddr,
}

impl CaToCome {
    /// A CA to come, with its files under `dir`.
    pub fn new(dir: &Path) -> Self {
        let files = dir.join("pebble");
        std::fs::create_dir_all(&files).expect("pebble directory");
        let listen = free_port();
        Self {
            directory: format!("https://localhost:{}/dir", listen.port()),
            root: TestCa::new(&files).cert,
            listen,
        }
    }

    /// Starts Pebble there, validating at `http` and `https`.
    pub fn start(&self, dir: &Path, http: SocketAddr, https: SocketAddr) -> Pebble {
        Pebble::start(
            dir,
            &PebbleSpec {
                http_port: http.port(),
                tls_port: https.port(),
                validity_secs: None,
                listen: Some(self.listen),
            },
        )
    }
}
