//! Container images built from swarm-sticky's own binary without any
//! registry: `FROM scratch`, the running executable as `/swarm-sticky`, and
//! the shared objects it has loaded (from `/proc/self/maps`) at their
//! paths, with the ELF interpreter also at the path the binary names
//! (`PT_INTERP`). A static build has neither. The build context is a tar
//! written here (a handful of regular files, ustar).
//!
//! Two images are made this way: the anchor image (discovery builds it on
//! each node it needs one, see [`crate::discovery::anchor`]) and
//! swarm-sticky's own image for the stack (`swarm-sticky image`, which
//! `cargo xtask image` runs from the release build).

use std::path::{Path, PathBuf};

use bollard::{Docker, query_parameters::BuildImageOptions};
use futures_util::StreamExt as _;

/// Why the image context could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file could not be read.
    #[error("read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path too long for a plain ustar header.
    #[error("path too long for the image context: {0}")]
    LongPath(String),
    /// The Docker API failed.
    #[error("docker API")]
    Docker(#[from] bollard::errors::Error),
    /// The engine reported a failed build step.
    #[error("docker build: {0}")]
    Build(String),
}

/// The `Dockerfile` of the anchor image.
pub const ANCHOR_DOCKERFILE: &str = "FROM scratch\nCOPY . /\nENTRYPOINT [\"/swarm-sticky\", \"anchor\"]\n";

/// The `Dockerfile` of swarm-sticky's own image. The stack file gives the
/// command, the health check and the mounts; a plain `docker run` of the
/// image prints the help.
pub fn edge_dockerfile() -> String {
    format!(
        "FROM scratch\nCOPY . /\n\
         LABEL org.opencontainers.image.title=\"swarm-sticky\" org.opencontainers.image.version=\"{}\"\n\
         ENTRYPOINT [\"/swarm-sticky\"]\nCMD [\"--help\"]\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|source| ImageError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The program interpreter an ELF64 little-endian executable asks for.
pub fn interpreter(elf: &[u8]) -> Option<String> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| {
        let v = u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?);
        usize::try_from(v).ok()
    };
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    (0..phnum).find_map(|i| {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        // PT_INTERP = 3; p_offset at +8, p_filesz at +32.
        if u32_at(ph)? != 3 {
            return None;
        }
        let (off, len) = (u64_at(ph + 8)?, u64_at(ph + 32)?);
        let raw = elf.get(off..off.checked_add(len)?)?;
        let s = std::str::from_utf8(raw).ok()?.trim_end_matches('\0');
        Some(s.to_owned())
    })
}

/// The shared objects mapped into this process (`/proc/self/maps`).
fn mapped_libraries() -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut libs: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && p.contains(".so"))
        .map(PathBuf::from)
        .collect();
    libs.sort();
    libs.dedup();
    libs
}

/// One ustar entry (a regular file) appended to `out`.
fn append(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) -> Result<(), ImageError> {
    let name = name.trim_start_matches('/');
    if name.len() >= 100 {
        return Err(ImageError::LongPath(name.to_owned()));
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
        let s = format!("{v:0w$o}", w = width - 1);
        h[at..at + width - 1].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, u64::from(mode));
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, data.len() as u64);
    octal(&mut h, 136, 12, 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is taken with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    Ok(())
}

/// The build context (a tar) of an image of the running binary with
/// `dockerfile`.
///
/// # Errors
/// When the executable or a library cannot be read.
pub fn context(dockerfile: &str) -> Result<Vec<u8>, ImageError> {
    let exe = read(Path::new("/proc/self/exe"))?;
    let mut tar = Vec::with_capacity(exe.len() + (1 << 20));
    append(&mut tar, "Dockerfile", 0o644, dockerfile.as_bytes())?;
    let libs = mapped_libraries();
    if let Some(interp) = interpreter(&exe) {
        let name = Path::new(&interp).file_name();
        if let Some(found) = libs.iter().find(|l| l.file_name() == name) {
            append(&mut tar, &interp, 0o755, &read(found)?)?;
        }
    }
    for lib in &libs {
        append(&mut tar, &lib.display().to_string(), 0o755, &read(lib)?)?;
    }
    append(&mut tar, "swarm-sticky", 0o755, &exe)?;
    tar.resize(tar.len() + 1024, 0);
    Ok(tar)
}

/// Builds `context` on the engine as `tag`.
///
/// # Errors
/// When the API fails or a build step does.
pub async fn build(docker: &Docker, context: Vec<u8>, tag: &str) -> Result<(), ImageError> {
    let opts = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(tag.to_owned()),
        rm: true,
        ..Default::default()
    };
    let mut steps = docker.build_image(opts, None, Some(bollard::body_full(context.into())));
    while let Some(step) = steps.next().await {
        if let Some(err) = step?.error_detail.and_then(|d| d.message) {
            return Err(ImageError::Build(err));
        }
    }
    Ok(())
}

/// `swarm-sticky image`: builds this binary's own image on the engine at
/// `host` (a `unix://` URL) and gives it every one of `tags` (default: the
/// version and `latest`). Returns the tags.
///
/// # Errors
/// When the engine cannot be reached, the binary read or the build fails.
pub async fn build_own(host: &str, tags: &[String]) -> Result<Vec<String>, ImageError> {
    let tags = if tags.is_empty() {
        vec![
            format!("swarm-sticky:{}", env!("CARGO_PKG_VERSION")),
            "swarm-sticky:latest".to_owned(),
        ]
    } else {
        tags.to_vec()
    };
    let socket = host.strip_prefix("unix://").unwrap_or(host);
    // A build sends the whole binary: more than an API call's usual time.
    let docker = Docker::connect_with_unix(socket, 300, bollard::API_DEFAULT_VERSION)?
        .negotiate_version()
        .await?;
    let context = tokio::task::spawn_blocking(|| context(&edge_dockerfile()))
        .await
        .map_err(|e| ImageError::Build(e.to_string()))??;
    build(&docker, context, &tags[0]).await?;
    for tag in &tags[1..] {
        // `host:5000/name` has a colon but no tag.
        let (repo, version) = tag
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .unwrap_or((tag, "latest"));
        let opts = bollard::query_parameters::TagImageOptions {
            repo: Some(repo.to_owned()),
            tag: Some(version.to_owned()),
        };
        docker.tag_image(&tags[0], Some(opts)).await?;
    }
    Ok(tags)
}

/// A tag naming the binary: the same build gives the same tag, so the
/// anchor image is built once per node and version. The binary is hashed
/// once per process (it is read whole: call this off the runtime's
/// threads).
pub fn anchor_tag() -> String {
    use sha2::{Digest as _, Sha256};
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let exe = std::fs::read("/proc/self/exe").unwrap_or_default();
        let digest = Sha256::digest(&exe);
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("swarm-sticky-anchor:{}-{hex}", env!("CARGO_PKG_VERSION"))
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running test binary names its interpreter, and the context
    /// holds it, the binary and the Dockerfile as ustar entries.
    #[test]
    fn context_of_this_binary() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        let interp = interpreter(&exe);
        let tar = context(ANCHOR_DOCKERFILE).unwrap();
        assert_eq!(tar.len() % 512, 0);
        assert_eq!(&tar[257..262], b"ustar");
        assert_eq!(&tar[..10], b"Dockerfile");
        let has = |name: &str| {
            tar.chunks(512).any(|h| {
                h.len() == 512 && &h[257..262] == b"ustar" && h.starts_with(name.as_bytes()) && h[name.len()] == 0
            })
        };
        assert!(has("swarm-sticky"));
        if let Some(i) = interp {
            assert!(i.starts_with('/'), "{i}");
            assert!(has(i.trim_start_matches('/')), "no {i} in the context");
        }
        assert!(anchor_tag().starts_with("swarm-sticky-anchor:"));
    }
}
