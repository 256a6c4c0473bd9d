//! `cargo xtask bench steering`: new connections per second and their
//! spread over workers, for each way of reaching the workers, in one run.
//!
//! Each mode runs swarm-sticky with 2 workers in a fresh network namespace
//! (root required); a closed-loop client inside that namespace opens a
//! connection, sends one request, reads the answer and resets the
//! connection (SO_LINGER 0, so no TIME_WAIT piles up), as fast as it can
//! from 2 threads. Figures go to stdout as a Markdown table.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    os::fd::AsRawFd as _,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::cmd;

const PUBLISHED: &str = "127.0.0.1:18080";
/// The whoami backend inside the namespace, behind every mode.
const BACKEND: &str = "127.0.0.1:18000";
const ADMIN: &str = "127.0.0.1:19090";
const WORKERS: usize = 2;
const CLIENT_THREADS: usize = 2;

/// A network namespace removed on drop.
struct Netns(String);

impl Netns {
    fn new() -> anyhow::Result<Self> {
        let name = format!("ss-bench-{}", std::process::id());
        cmd::run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self(name);
        cmd::run(Command::new("ip").args(["-n", &ns.0, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }

    /// Moves the calling thread into the namespace.
    fn enter(&self) -> anyhow::Result<()> {
        let f = std::fs::File::open(self.path()).context("open netns")?;
        // SAFETY: setns on a valid namespace fd only changes this thread.
        #[expect(unsafe_code, reason = "setns has no safe wrapper in std")]
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The pins swarm-sticky leaves for the namespace on exit (kept for
        // a hand-over in production) would outlive it here.
        if let Ok(meta) = std::fs::metadata(self.path()) {
            use std::os::unix::fs::MetadataExt as _;
            let pins = std::path::PathBuf::from(format!("/sys/fs/bpf/swarm-sticky/net-{}", meta.ino()));
            if let Ok(entries) = std::fs::read_dir(&pins) {
                for e in entries.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            let _ = std::fs::remove_dir(&pins);
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// One request over a fresh connection; true when an answer came back.
fn one_connection(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 1024];
    let ok = matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1."));
    // Reset instead of FIN: no TIME_WAIT on the client's ports.
    let _ = socket_linger_zero(&s);
    ok
}

fn socket_linger_zero(s: &TcpStream) -> std::io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd, and a pointer to a linger struct of the right size.
    #[expect(unsafe_code, reason = "setsockopt has no safe wrapper in std")]
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const l).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn admin_status(addr: SocketAddr) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /api/status HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let body = out.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

struct Row {
    mode: &'static str,
    rate: f64,
    failed: u64,
    spread: Vec<u64>,
}

fn measure(ns: &Arc<Netns>, bin: &std::path::Path, mode: &'static str, seconds: u64) -> anyhow::Result<Row> {
    let state = std::env::temp_dir().join(format!("ss-bench-state-{}", std::process::id()));
    let mut child: Child = Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .arg(bin)
        .args([
            "run",
            "--listen",
            PUBLISHED,
            "--admin",
            ADMIN,
            "--steering",
            mode,
            "--workers",
            &WORKERS.to_string(),
        ])
        .args(["--backend", &format!("b=http://{BACKEND}")])
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start swarm-sticky")?;
    let published: SocketAddr = PUBLISHED.parse()?;
    let admin: SocketAddr = ADMIN.parse()?;

    let result = (|| {
        // Wait (bounded) until the admin API answers inside the namespace.
        let ns2 = ns.clone();
        let ready = std::thread::spawn(move || -> anyhow::Result<()> {
            ns2.enter()?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if admin_status(admin).is_some() && one_connection(published) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            bail!("swarm-sticky did not become ready within 10 s")
        });
        ready
            .join()
            .map_err(|_| anyhow::anyhow!("readiness thread panicked"))??;

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let before = spread_of(ns, admin)?;
        let start = Instant::now();
        let threads: Vec<_> = (0..CLIENT_THREADS)
            .map(|_| {
                let (ns, stop, done, failed) = (ns.clone(), stop.clone(), done.clone(), failed.clone());
                std::thread::spawn(move || {
                    if ns.enter().is_err() {
                        return;
                    }
                    while !stop.load(Ordering::Relaxed) {
                        if one_connection(published) {
                            done.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        let elapsed = start.elapsed().as_secs_f64();
        let after = spread_of(ns, admin)?;
        let spread = after
            .iter()
            .zip(before.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a - b)
            .collect();
        Ok(Row {
            mode,
            rate: done.load(Ordering::Relaxed) as f64 / elapsed,
            failed: failed.load(Ordering::Relaxed),
            spread,
        })
    })();
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&state);
    result
}

fn spread_of(ns: &Arc<Netns>, admin: SocketAddr) -> anyhow::Result<Vec<u64>> {
    let ns = ns.clone();
    std::thread::spawn(move || -> anyhow::Result<Vec<u64>> {
        ns.enter()?;
        let status = admin_status(admin).context("admin status")?;
        let workers = status["workers"].as_array().context("workers in status")?;
        Ok(workers.iter().map(|w| w["accepted"].as_u64().unwrap_or(0)).collect())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("status thread panicked"))?
}

/// Runs the benchmark and prints the table.
///
/// # Errors
/// Not root, or a run fails.
pub fn run(bin: &std::path::Path, seconds: u64) -> anyhow::Result<()> {
    if !cmd::is_root() {
        bail!("the steering benchmark creates a network namespace and loads eBPF: run it as root");
    }
    let ns = Arc::new(Netns::new()?);
    let _backend = super::process::Proc(
        Command::new("nsenter")
            .arg(format!("--net={}", ns.path()))
            .arg(bin)
            .args(["whoami", "--listen", BACKEND, "--name", "b"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start the whoami backend")?,
    );
    let mut rows = Vec::new();
    for mode in ["ebpf", "reuseport", "shared"] {
        eprintln!("measuring {mode} for {seconds} s");
        rows.push(measure(&ns, bin, mode, seconds)?);
    }
    let base = rows.iter().find(|r| r.mode == "shared").map_or(1.0, |r| r.rate);
    println!("| steering | connections/s | × shared socket | failed | per worker | max / fair share |");
    println!("|---|---:|---:|---:|---|---:|");
    for r in &rows {
        let total: u64 = r.spread.iter().sum();
        let fair = total as f64 / r.spread.len().max(1) as f64;
        let max = r.spread.iter().copied().max().unwrap_or(0) as f64;
        let spread: Vec<String> = r.spread.iter().map(ToString::to_string).collect();
        println!(
            "| {} | {:.0} | {:.2} | {} | {} | {:.3} |",
            r.mode,
            r.rate,
            r.rate / base,
            r.failed,
            spread.join(" / "),
            if fair > 0.0 { max / fair } else { 0.0 }
        );
    }
    Ok(())
}
