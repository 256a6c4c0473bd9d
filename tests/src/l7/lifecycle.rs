//! A running `swarm-sticky run` over its life: `/readyz` says 503 while
//! the process starts and while it drains, which is what DNS health checks
//! and keepalived act on (`docs/deploy.md`); SIGHUP re-reads the
//! configuration (and keeps the running one when the new one is invalid).

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::harness::{
    backend::Whoami,
    client,
    instance::{Instance, wait_until},
};

const WAIT: Duration = Duration::from_secs(10);

fn write_config(path: &std::path::Path, backends: &[&Whoami]) {
    let mut text = String::from("[[services]]\nname = \"web\"\n");
    for b in backends {
        text.push_str(&format!(
            "[[services.backends]]\nname = \"{}\"\nurl = \"http://{}\"\n",
            b.name, b.addr
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// SIGHUP re-reads `--config`: a backend added to the file gets traffic;
/// an invalid file is refused with the reason in the log, and the running
/// table (and its traffic) stays.
#[test]
fn sighup_reloads_the_configuration_and_refuses_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let (w1, w2) = (Whoami::start("w1"), Whoami::start("w2"));
    let config = dir.path().join("services.toml");
    write_config(&config, &[&w1]);
    let config_arg = config.display().to_string();
    let mut i = Instance::start(dir.path(), &["--config", &config_arg]);
    assert_eq!(i.backend_names(), ["w1"]);

    write_config(&config, &[&w1, &w2]);
    i.process.signal(libc::SIGHUP);
    wait_until("w2 in the table after SIGHUP", WAIT, || i.backend_names().len() == 2);
    let served: Vec<String> = (0..10)
        .filter_map(|_| client::get(i.listen, "/").ok()?.whoami())
        .collect();
    assert!(served.iter().any(|n| n == "w2"), "{served:?}");

    std::fs::write(&config, "[[services]]\nname = \"web\"\n").unwrap();
    i.process.signal(libc::SIGHUP);
    let line = i.process.wait_for_line("reload rejected", WAIT);
    assert!(line.contains("services[0]"), "the reason names the field: {line}");
    assert_eq!(i.backend_names(), ["w1", "w2"], "the running table stays");
    assert_eq!(client::get(i.listen, "/").unwrap().status, 200);
}

/// A backend that accepts requests and never answers, holding every
/// connection it accepted.
struct Silent {
    addr: std::net::SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Silent {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                keep.lock().unwrap().push(s);
            }
        });
        Self { addr, held }
    }

    fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// SIGTERM with a request in flight: the process keeps serving it within
/// the grace period and `/readyz` turns 503 (`/healthz` stays 200) until
/// it exits once the request is gone.
#[test]
fn readyz_is_503_while_draining() {
    let dir = tempfile::tempdir().unwrap();
    let silent = Silent::start();
    let backend = format!("slow=http://{}", silent.addr);
    let mut i = Instance::start(dir.path(), &["--backend", &backend, "--grace-period", "20"]);
    assert_eq!(i.admin_get("/readyz").status, 200);

    let mut inflight = TcpStream::connect(i.listen).unwrap();
    inflight
        .write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", i.listen).as_bytes())
        .unwrap();
    wait_until("the request at the backend", WAIT, || silent.connections() == 1);

    i.process.signal(libc::SIGTERM);
    i.process.wait_for_line("draining", WAIT);
    wait_until("/readyz to say 503", WAIT, || i.admin_get("/readyz").status == 503);
    assert_eq!(i.admin_get("/healthz").status, 200, "alive while draining");
    assert!(
        i.process.wait_exit_within(Duration::from_millis(500)).is_none(),
        "exited with a request in flight"
    );

    // The client gives up; nothing is left to drain.
    inflight.shutdown(std::net::Shutdown::Both).unwrap();
    let mut rest = Vec::new();
    let _ = inflight.read_to_end(&mut rest);
    let status = i.process.wait_exit(WAIT);
    assert!(status.success(), "{status}");
}

/// Start-up waits for the cookie key of the swarm, and here the Docker API
/// accepts connections but never answers: meanwhile `/healthz` answers,
/// `/readyz` and the API say 503, and once the API's timeout passed the
/// process falls back to the state directory's key and turns ready.
#[test]
fn readyz_is_503_while_starting() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let engine = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in engine.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let docker_host = format!("unix://{}", socket.display());
    let mut i = Instance::launch(dir.path(), &["--docker", "--docker-host", &docker_host]);
    let admin = i.admin;
    wait_until("/readyz to answer 503 while starting", WAIT, || {
        client::get(admin, "/readyz").is_ok_and(|r| r.status == 503)
    });
    assert!(
        !held.lock().unwrap().is_empty(),
        "start-up is waiting on the Docker API"
    );
    assert_eq!(client::get(admin, "/healthz").unwrap().status, 200);
    let status = client::get(admin, "/api/status").unwrap();
    assert_eq!((status.status, status.body.as_str()), (503, "starting\n"));

    i.process.wait_for_line(
        "cookies are signed with the state directory's key",
        Duration::from_secs(30),
    );
    wait_until("/readyz to turn 200", WAIT, || {
        client::get(admin, "/readyz").is_ok_and(|r| r.status == 200)
    });
}
