//! The process's allocator, and handing freed memory back to the system.
//!
//! Idle keep-alive connections are most of a proxy's resident set. A
//! hibernating connection (see `proxy/io.rs`) keeps under 2 KiB of small
//! objects: its task, socket and context. hyper's buffers, freed when it
//! hibernated, were ten times that. glibc's malloc puts both in one heap in
//! allocation order, so every connection's survivors pin the pages around
//! them (about 6 KiB resident per idle connection, measured). mimalloc keeps
//! each size class on pages of its own: the freed buffers leave whole pages
//! empty, and [`release_freed_memory`] returns them.
//!
//! glibc targets only: the static musl build keeps musl's allocator, and
//! fuzzing builds keep the sanitizer's.

#[cfg(all(target_env = "gnu", not(fuzzing)))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often a worker at most returns freed memory.
#[cfg(all(target_env = "gnu", not(fuzzing)))]
const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Returns the free pages of this worker's heap to the system soon: now,
/// then once a second while calls keep coming, and once more a second
/// after the last pass. Connections go idle in bursts, and mimalloc
/// otherwise returns free pages lazily, during later allocations, which an
/// idle worker does not make. The extra pass is needed because mimalloc
/// only schedules the pages a pass frees, to be returned by a later pass
/// once a short delay has expired: without it, the pages freed by the last
/// pass of a burst stayed resident (74–86 MiB instead of 28 MiB with 10,000
/// idle connections, in 2 of 8 runs). Called by a worker when
/// one of its connections hibernates; runs on the worker's `LocalSet`.
pub fn release_freed_memory() {
    #[cfg(all(target_env = "gnu", not(fuzzing)))]
    {
        use std::cell::Cell;

        thread_local! {
            /// Something was freed since the last pass.
            static PENDING: Cell<bool> = const { Cell::new(false) };
            /// This worker's releasing task is running.
            static RUNNING: Cell<bool> = const { Cell::new(false) };
        }
        PENDING.set(true);
        if RUNNING.replace(true) {
            return;
        }
        tokio::task::spawn_local(async {
            loop {
                let more = PENDING.replace(false);
                collect();
                if !more {
                    break;
                }
                tokio::time::sleep(RELEASE_EVERY).await;
            }
            RUNNING.set(false);
        });
    }
}

/// One pass over this thread's heap. Not forced: a forced pass visits every
/// page (5 ms with 10,000 idle connections, a stall for every request of
/// the worker); the normal one takes microseconds and frees as much here.
#[cfg(all(target_env = "gnu", not(fuzzing)))]
fn collect() {
    // SAFETY: mi_collect only frees and decommits memory that no live
    // allocation uses; it may be called at any point on any thread.
    #[expect(unsafe_code, reason = "mimalloc's collect has no safe wrapper")]
    unsafe {
        libmimalloc_sys::mi_collect(false);
    }
}
