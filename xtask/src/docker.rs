//! A Docker engine for the swarm test tier: use the one that runs, or
//! start Debian's `dockerd` and stop it again afterwards.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::cmd;

const SOCKET: &str = "/var/run/docker.sock";
/// Where dockerd writes its pid.
const PIDFILE: &str = "/var/run/docker.pid";

/// An engine we started, stopped on drop.
pub struct StartedEngine {
    child: Child,
}

fn answers() -> bool {
    Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "2",
            "--unix-socket",
            SOCKET,
            "http://localhost/_ping",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure an engine answers on the default socket. Returns the engine
/// when this call started it (so that the caller stops it), `None` when one
/// was running already.
///
/// # Errors
/// When dockerd is missing or does not come up within 30 s.
pub fn ensure() -> anyhow::Result<Option<StartedEngine>> {
    if answers() {
        println!("using the running Docker engine");
        return Ok(None);
    }
    if !cmd::on_path("dockerd") {
        bail!("no Docker engine answers on {SOCKET} and dockerd is not installed (Debian: apt-get install docker.io)");
    }
    let log: PathBuf = cmd::tools_dir().join("dockerd.log");
    let file = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
    let child = Command::new("dockerd")
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .context("start dockerd")?;
    let started = StartedEngine { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers() {
        if Instant::now() > deadline {
            bail!("dockerd did not answer within 30 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("started dockerd (log: {})", log.display());
    Ok(Some(started))
}

/// Whether `pid` runs (a zombie does not).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
}

impl Drop for StartedEngine {
    fn drop(&mut self) {
        // Leave the swarm the tests made, then stop the daemon we started.
        let _ = Command::new("docker")
            .args(["swarm", "leave", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg(&pid).status();
        // A test that restarts the daemon (swarm::daemon) leaves another
        // dockerd, started the same way; its pid file names it.
        let successor = std::fs::read_to_string(PIDFILE)
            .ok()
            .map(|p| p.trim().to_string())
            .filter(|p| *p != pid && alive(p));
        if let Some(p) = &successor {
            let _ = Command::new("kill").arg(p).status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let child_done = matches!(self.child.try_wait(), Ok(Some(_)));
            if child_done && successor.as_deref().is_none_or(|p| !alive(p)) {
                println!("stopped dockerd");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(p) = &successor {
            let _ = Command::new("kill").args(["-KILL", p]).status();
        }
    }
}
