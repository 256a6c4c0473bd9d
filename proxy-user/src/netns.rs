//! Sockets created inside another network namespace.
//!
//! Overlay task addresses are reachable only from inside the overlay's
//! namespace on this node (`/var/run/docker/netns/lb_<id>` or a container's
//! sandbox); a connection from the host namespace would leave the machine.
//! A socket belongs to the namespace it was *created* in, whichever thread
//! uses it later, so one dedicated thread per namespace enters it once
//! (`setns` changes only the calling thread) and creates sockets on
//! request; the runtime then connects and uses them as usual.
//!
//! A namespace path can be re-bound to a new namespace: Docker recreates
//! `lb_<id>` after a daemon restart (or once a network gets a local
//! endpoint again). Threads are therefore keyed by the path *and* the
//! namespace's identity (device and inode of the nsfs file), checked with
//! one `stat` per socket; a thread left in a namespace that is no longer at
//! its path is replaced, never used (its sockets could reach nothing).
//!
//! Connections already open in such a namespace are as useless: Docker
//! removes a network's `lb_<id>` namespace from a node when the node's last
//! task on the network stops (a rolling update of a global service does
//! that on every node), and a socket left in it neither fails nor answers;
//! a request sent on it would wait for its response deadline. Each
//! connection therefore holds a [`Lease`] on its namespace, which ends when
//! the namespace's thread is replaced or [`SocketFactory::revalidate`]
//! finds its path re-bound or gone; the connection's owner closes it then.

use std::{
    collections::HashMap,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock, mpsc},
    thread,
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{oneshot, watch};

/// A namespace could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened (gone, or no permission).
    #[error("open network namespace {path}")]
    Open {
        /// Namespace path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `setns` failed (needs CAP_SYS_ADMIN).
    #[error("enter network namespace {path} (needs CAP_SYS_ADMIN)")]
    Enter {
        /// Namespace path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The socket could not be created inside it.
    #[error("create a socket in {path}")]
    Socket {
        /// Namespace path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The namespace's thread is gone.
    #[error("the thread for network namespace {0} stopped")]
    ThreadGone(PathBuf),
}

type Request = (Domain, oneshot::Sender<Result<Socket, NetnsError>>);

/// One thread living in one namespace.
struct NsThread {
    requests: mpsc::Sender<Request>,
    /// The namespace it entered (device, inode).
    identity: (u64, u64),
    /// Dropped with the thread's record: every [`Lease`] on the namespace
    /// ends then.
    alive: watch::Sender<()>,
}

/// A connection's hold on the namespace it was made in; see the module
/// documentation.
#[derive(Debug)]
pub struct Lease(Option<watch::Receiver<()>>);

impl Lease {
    /// A lease on this process's own namespace, which never goes.
    pub const fn own() -> Self {
        Self(None)
    }

    /// Completes when the namespace is no longer the one at its path.
    pub async fn gone(&mut self) {
        match &mut self.0 {
            // Nothing is ever sent: `changed` fails once the sender, the
            // namespace's record, is dropped.
            Some(rx) => while rx.changed().await.is_ok() {},
            None => std::future::pending().await,
        }
    }
}

/// The identity of the namespace bound at `path` now.
fn identity(path: &Path) -> Result<(u64, u64), NetnsError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).map_err(|source| NetnsError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((meta.dev(), meta.ino()))
}

/// Enters the namespace at `path`; returns its identity.
fn enter(path: &Path) -> Result<(u64, u64), NetnsError> {
    use std::os::unix::fs::MetadataExt as _;
    let open_error = |source| NetnsError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(open_error)?;
    // The identity of what was opened (not of a later re-bind of the path).
    let meta = file.metadata().map_err(open_error)?;
    // SAFETY: setns on a valid namespace fd only changes the calling
    // thread, which is dedicated to this namespace for its whole life.
    #[expect(unsafe_code, reason = "setns has no safe wrapper in std")]
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(NetnsError::Enter {
            path: path.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok((meta.dev(), meta.ino()))
}

impl NsThread {
    fn spawn(path: &Path) -> Result<Self, NetnsError> {
        let (requests, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let owned = path.to_path_buf();
        thread::Builder::new()
            .name("netns".into())
            .spawn(move || {
                match enter(&owned) {
                    Ok(identity) => {
                        let _ = ready_tx.send(Ok(identity));
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                }
                for (domain, reply) in rx {
                    let socket =
                        Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP)).map_err(|source| {
                            NetnsError::Socket {
                                path: owned.clone(),
                                source,
                            }
                        });
                    let _ = reply.send(socket);
                }
            })
            .map_err(|source| NetnsError::Socket {
                path: path.to_path_buf(),
                source,
            })?;
        let identity = ready_rx
            .recv()
            .map_err(|_| NetnsError::ThreadGone(path.to_path_buf()))??;
        Ok(Self {
            requests,
            identity,
            alive: watch::Sender::new(()),
        })
    }
}

/// Creates sockets inside network namespaces, one thread per namespace.
#[derive(Default)]
pub struct SocketFactory {
    threads: Mutex<HashMap<PathBuf, NsThread>>,
}

impl SocketFactory {
    /// A non-blocking TCP socket of `domain` created inside the namespace
    /// at `path`, ready for `connect`.
    ///
    /// # Errors
    /// When the namespace cannot be entered or the socket not created.
    pub async fn socket(&self, path: &Path, domain: Domain) -> Result<Socket, NetnsError> {
        Ok(self.leased_socket(path, domain).await?.0)
    }

    /// [`SocketFactory::socket`], with a lease on the namespace.
    async fn leased_socket(&self, path: &Path, domain: Domain) -> Result<(Socket, Lease), NetnsError> {
        let now = identity(path)?;
        let (rx, lease) = {
            let mut threads = self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if threads.get(path).is_none_or(|t| t.identity != now) {
                // New, or the path now holds another namespace: dropping
                // the old sender ends the old thread.
                threads.insert(path.to_path_buf(), NsThread::spawn(path)?);
            }
            let (tx, rx) = oneshot::channel();
            let Some(thread) = threads.get(path) else {
                return Err(NetnsError::ThreadGone(path.to_path_buf()));
            };
            let lease = Lease(Some(thread.alive.subscribe()));
            if thread.requests.send((domain, tx)).is_err() {
                // The thread died (its namespace went away): start afresh next time.
                threads.remove(path);
                return Err(NetnsError::ThreadGone(path.to_path_buf()));
            }
            (rx, lease)
        };
        let socket = rx.await.map_err(|_| NetnsError::ThreadGone(path.to_path_buf()))??;
        Ok((socket, lease))
    }

    /// Connects to `addr` from inside the namespace at `path`.
    ///
    /// # Errors
    /// Namespace trouble, or the connect itself failing.
    pub async fn connect(&self, path: &Path, addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
        Ok(self.connect_leased(path, addr).await?.0)
    }

    /// [`SocketFactory::connect`], with a lease on the namespace.
    ///
    /// # Errors
    /// Namespace trouble, or the connect itself failing.
    pub async fn connect_leased(
        &self,
        path: &Path,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<(tokio::net::TcpStream, Lease)> {
        let (socket, lease) = self
            .leased_socket(path, Domain::for_address(addr))
            .await
            .map_err(std::io::Error::other)?;
        let std_stream: std::net::TcpStream = socket.into();
        let socket = tokio::net::TcpSocket::from_std_stream(std_stream);
        Ok((socket.connect(addr).await?, lease))
    }

    /// Ends the leases of every namespace that is no longer at its path
    /// (re-bound to another namespace, or removed), and forgets its
    /// thread. One `stat` per namespace in use.
    pub fn revalidate(&self) {
        let mut threads = self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        threads.retain(|path, t| {
            let current = identity(path).is_ok_and(|now| now == t.identity);
            if !current {
                tracing::info!(netns = %path.display(), "network namespace replaced or removed; closing its connections");
            }
            current
        });
    }
}

/// The process-wide factory (one thread per namespace, shared by workers).
pub fn shared() -> &'static SocketFactory {
    static FACTORY: OnceLock<SocketFactory> = OnceLock::new();
    FACTORY.get_or_init(SocketFactory::default)
}

/// [`connect`], with a lease on the namespace `via`.
///
/// # Errors
/// Namespace trouble, or the connect failing.
pub async fn connect_leased(
    via: Option<&Path>,
    addr: std::net::SocketAddr,
) -> std::io::Result<(tokio::net::TcpStream, Lease)> {
    match via {
        None => Ok((tokio::net::TcpStream::connect(addr).await?, Lease::own())),
        Some(ns) => shared().connect_leased(ns, addr).await,
    }
}

/// Connects to `addr` from the namespace `via`, or from this process's own
/// namespace when `via` is `None`.
///
/// # Errors
/// Namespace trouble, or the connect failing.
pub async fn connect(via: Option<&Path>, addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    match via {
        None => tokio::net::TcpStream::connect(addr).await,
        Some(ns) => shared().connect(ns, addr).await,
    }
}
