//! Rebuilds the eBPF object when the linker changes.
//!
//! The bpfel-unknown-none target links with `bpf-linker` from PATH; a new
//! linker (for example after a nightly update) must rebuild the object.
//! A missing linker is a warning here, not a panic: `cargo xtask setup`
//! installs it, and aya-build reports the actual build failure.

fn main() {
    // As a host build-dependency of proxy-user this crate is never linked
    // for BPF, so there is nothing to track.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("bpf") {
        return;
    }
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!("cargo:warning=bpf-linker not found on PATH ({err}); run `cargo xtask setup`"),
    }
}
