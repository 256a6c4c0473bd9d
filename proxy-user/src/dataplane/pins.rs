//! bpffs: where the pinned maps and links live, and the lock around them.
//!
//! Pins go to `<bpffs>/swarm-sticky/net-<inode>/`, one directory per
//! network namespace (the inode of `/proc/thread-self/ns/net`), because the
//! `sk_lookup` link belongs to one namespace while bpffs is shared by every
//! namespace of the mount namespace. bpffs is mounted when it is not.
//! Processes that create, join or leave the pinned state hold an exclusive
//! `flock` on that directory, so a hand-over never races a shutdown.

use std::{
    ffi::CString,
    fs::File,
    os::{fd::AsRawFd as _, unix::ffi::OsStrExt as _},
    path::{Path, PathBuf},
};

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// A bpffs problem.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// bpffs is not mounted and could not be mounted.
    #[error("bpffs is not mounted at {path} and mounting it failed (needs CAP_SYS_ADMIN)")]
    Mount {
        /// Mount point.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// In a container, bpffs is not the host's.
    #[error(
        "bpffs is not mounted at {path}: in a container, mount the host's there (the stack file does); \
         a bpffs of the container's own would not be seen by the next version during an upgrade"
    )]
    NotShared {
        /// Mount point.
        path: PathBuf,
    },
    /// A file system call failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Path involved.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PinError + 'a {
    move |source| PinError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn c_path(path: &Path) -> Result<CString, PinError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| PinError::Io {
        what: "path with a NUL byte:",
        path: path.to_path_buf(),
        source: std::io::ErrorKind::InvalidInput.into(),
    })
}

/// Whether `path` is the root of a mounted bpffs.
#[expect(unsafe_code, reason = "statfs(2) has no safe wrapper in std")]
fn is_bpffs(path: &Path) -> Result<bool, PinError> {
    let c = c_path(path)?;
    // SAFETY: zeroed memory is a valid `statfs`; the kernel fills it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &raw mut st) };
    if rc != 0 {
        return Err(io_err("statfs", path)(std::io::Error::last_os_error()));
    }
    Ok(i64::from(st.f_type as u32) == BPF_FS_MAGIC)
}

/// Mounts bpffs at `root` unless it is mounted already. Not in a
/// container (a PID namespace of its own): a bpffs mounted there would be
/// the container's, and an upgrade's new container would not see the pins.
///
/// # Errors
/// When the directory cannot be created or the mount fails, and in a
/// container without the host's bpffs.
#[expect(unsafe_code, reason = "mount(2) has no safe wrapper in std")]
pub fn ensure_bpffs(root: &Path) -> Result<(), PinError> {
    std::fs::create_dir_all(root).map_err(io_err("create", root))?;
    if is_bpffs(root)? {
        return Ok(());
    }
    if crate::instance::in_container() {
        return Err(PinError::NotShared {
            path: root.to_path_buf(),
        });
    }
    let target = c_path(root)?;
    // SAFETY: all strings are valid and NUL-terminated; data may be NULL.
    let rc = unsafe { libc::mount(c"bpf".as_ptr(), target.as_ptr(), c"bpf".as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(PinError::Mount {
            path: root.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    tracing::info!(path = %root.display(), "mounted bpffs");
    Ok(())
}

/// The pin directory of the current thread's network namespace.
///
/// # Errors
/// When the namespace cannot be identified.
pub fn netns_dir(root: &Path) -> Result<PathBuf, PinError> {
    use std::os::unix::fs::MetadataExt as _;
    let ns = Path::new("/proc/thread-self/ns/net");
    let ino = std::fs::metadata(ns).map_err(io_err("stat", ns))?.ino();
    Ok(root.join("swarm-sticky").join(format!("net-{ino}")))
}

/// An exclusive lock on a pin directory, released on drop.
#[derive(Debug)]
pub struct PinLock {
    _dir: File,
}

impl PinLock {
    /// Creates `dir` if needed and locks it, waiting for other holders.
    ///
    /// # Errors
    /// When the directory cannot be created, opened or locked.
    #[expect(unsafe_code, reason = "flock(2) has no safe wrapper in std")]
    pub fn acquire(dir: &Path) -> Result<Self, PinError> {
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let file = File::open(dir).map_err(io_err("open", dir))?;
        // SAFETY: the fd is open for the whole call; flock has no memory effects.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(io_err("lock", dir)(std::io::Error::last_os_error()));
        }
        Ok(Self { _dir: file })
    }
}

/// Removes every pin in `dir` (maps and links), then the directory.
/// Programs and maps no other fd or pin holds are freed by the kernel.
///
/// # Errors
/// When a pin cannot be removed.
pub fn remove_all(dir: &Path) -> Result<(), PinError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(io_err("list", dir)(err)),
    };
    for entry in entries {
        let path = entry.map_err(io_err("list", dir))?.path();
        std::fs::remove_file(&path).map_err(io_err("unpin", &path))?;
    }
    // The directory itself stays: it is the lock, and another process may
    // be waiting on it right now.
    Ok(())
}
