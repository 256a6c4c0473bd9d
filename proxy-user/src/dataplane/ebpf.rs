//! eBPF steering: load or join the pinned state, register this process's
//! worker sockets, point the published listeners at them, and leave again.
//!
//! # Pinned state and hand-over
//!
//! Every map and the `sk_lookup` link are pinned in the network namespace's
//! pin directory ([`super::pins`]). The first process creates them; a
//! later one (an upgrade, a restart) *joins*: it reuses the maps and
//! inserts its own worker sockets under its owner id ([`super::owners`]).
//! When it is ready to serve (with `--docker`, once it has its first
//! table) it [takes over](EbpfSteering::take_over): it re-points each
//! listener at its own group with one map update. From that moment new
//! connections go to the new process while the old one drains; the kernel
//! never sees a published port without an owner, so no connection attempt
//! is refused. The last process to leave removes the pins, which detaches
//! the program.
//!
//! A process that crashed leaves its pins behind, but not its sockets (the
//! kernel removes a closed socket from the map); the next start sees no
//! running owner and replaces the whole state.

use std::{
    net::{SocketAddr, TcpListener},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, SockHash},
    programs::{
        SkLookup,
        links::{FdLink, PinnedLink},
    },
};
use proxy_common::{
    ABI_VERSION, META_ABI_SLOT,
    names::{MAP_LISTENERS, MAP_META, MAP_OWNERS, MAP_STEER_STATS, MAP_WORKER_SOCKETS, PROG_STEER},
    steer::{ListenKey, ListenTarget, Owner, SteerStats, WorkerKey},
};
use tracing::{info, warn};

use super::{
    DataplaneError, owners,
    pins::{self, PinLock},
};

/// The eBPF object built by `proxy-user/build.rs` (empty in a stub build).
pub(super) static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/proxy"));

/// File name of the pinned `sk_lookup` link.
const STEER_LINK_PIN: &str = "steer_link";

/// A map, a program or a link could not be set up.
pub(super) fn map_err(name: &'static str) -> impl FnOnce(MapError) -> DataplaneError {
    move |source| DataplaneError::Map { name, source }
}

/// The map `name` of `ebpf` as the typed map `T` (mutable access).
pub(super) fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, DataplaneError>
where
    T: TryFrom<&'a mut Map, Error = MapError>,
{
    T::try_from(ebpf.map_mut(name).ok_or(DataplaneError::MissingMap(name))?).map_err(map_err(name))
}

/// The map `name` of `ebpf` as the typed map `T` (read access).
pub(super) fn map_ref<'a, T>(ebpf: &'a Ebpf, name: &'static str) -> Result<T, DataplaneError>
where
    T: TryFrom<&'a Map, Error = MapError>,
{
    T::try_from(ebpf.map(name).ok_or(DataplaneError::MissingMap(name))?).map_err(map_err(name))
}

/// This process's registration in the pinned steering state.
pub struct EbpfSteering {
    pub(super) ebpf: Ebpf,
    pub(super) dir: PathBuf,
    /// This process's owner id.
    id: u32,
    /// The published addresses, in group order.
    listen: Vec<SocketAddr>,
    /// Worker sockets per listener.
    workers: u16,
    /// (listener key, group, workers) this process took over.
    groups: Vec<(ListenKey, u16, u16)>,
    /// Whether this process created the pinned state (else it joined).
    pub(super) created: bool,
}

/// Reads the ABI version of an existing pinned state, if there is one.
fn pinned_abi(dir: &Path) -> Result<Option<u32>, DataplaneError> {
    let path = dir.join(MAP_META);
    if !path.exists() {
        return Ok(None);
    }
    let data = MapData::from_pin(&path).map_err(map_err(MAP_META))?;
    let meta: Array<_, u32> = Array::try_from(Map::Array(data)).map_err(map_err(MAP_META))?;
    Ok(Some(meta.get(&META_ABI_SLOT, 0).map_err(map_err(MAP_META))?))
}

/// The owner ids in a pinned `OWNERS` map (empty when there is none).
fn pinned_owners(dir: &Path) -> Result<Vec<u32>, DataplaneError> {
    let path = dir.join(MAP_OWNERS);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let data = MapData::from_pin(&path).map_err(map_err(MAP_OWNERS))?;
    let owners: HashMap<_, u32, Owner> = HashMap::try_from(Map::HashMap(data)).map_err(map_err(MAP_OWNERS))?;
    Ok(owners.keys().filter_map(Result::ok).collect())
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl EbpfSteering {
    /// Creates or joins the pinned state under `bpffs` and registers
    /// `sockets[worker][listener]` for the published `listen` addresses.
    /// No connection comes to them before [`Self::take_over`].
    ///
    /// # Errors
    /// Privileges, bpffs, an ABI mismatch of existing pins, or a failure to
    /// load, attach or update; each names what to do.
    pub fn start(bpffs: &Path, listen: &[SocketAddr], sockets: &[Vec<TcpListener>]) -> Result<Self, DataplaneError> {
        if OBJECT.is_empty() {
            return Err(DataplaneError::NotBuilt);
        }
        pins::ensure_bpffs(bpffs)?;
        let dir = pins::netns_dir(bpffs)?;
        let _lock = PinLock::acquire(&dir)?;

        if let Some(found) = pinned_abi(&dir)?
            && found != ABI_VERSION
        {
            return Err(DataplaneError::AbiMismatch {
                dir,
                found,
                expected: ABI_VERSION,
            });
        }
        let owners = pinned_owners(&dir)?;
        let running = owners::running_in(&dir).map_err(map_err(MAP_WORKER_SOCKETS))?;
        let id = owners::own_id(|i| owners.contains(&i) || running.contains(&i));
        let live: Vec<u32> = running.into_iter().collect();
        if live.is_empty() && dir.join(MAP_META).exists() {
            warn!(dir = %dir.display(), gone = ?owners, "replacing eBPF pins left by a swarm-sticky that is gone");
            pins::remove_all(&dir)?;
        }

        let result = Self::load_and_register(&dir, id, listen, sockets, &live);
        if result.is_err() && live.is_empty() {
            // Nobody else uses the state: leave no half-made pins behind.
            if let Err(err) = pins::remove_all(&dir) {
                warn!(error = %err, "removing the pins of a failed start");
            }
        }
        result
    }

    fn load_and_register(
        dir: &Path,
        id: u32,
        listen: &[SocketAddr],
        sockets: &[Vec<TcpListener>],
        live: &[u32],
    ) -> Result<Self, DataplaneError> {
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(dir)
            .load(OBJECT)
            .map_err(|source| DataplaneError::Load {
                source: Box::new(source),
            })?;
        {
            let mut meta: Array<_, u32> = map_mut(&mut ebpf, MAP_META)?;
            meta.set(META_ABI_SLOT, ABI_VERSION, 0).map_err(map_err(MAP_META))?;
        }

        let link_pin = dir.join(STEER_LINK_PIN);
        let created = !link_pin.exists();
        if created {
            attach_steering(&mut ebpf, &link_pin)?;
        }

        let workers = u16::try_from(sockets.len()).map_err(|_| DataplaneError::TooManyWorkers(sockets.len()))?;
        let mut this = Self {
            ebpf,
            dir: dir.to_path_buf(),
            id,
            listen: listen.to_vec(),
            workers,
            groups: Vec::new(),
            created,
        };
        this.register(sockets, live)?;
        if !created {
            // Said once registered: from here the running process sees
            // this one as its successor.
            info!(owners = ?live, "joining the running swarm-sticky's eBPF steering (hand-over)");
        }
        Ok(this)
    }

    /// Registers this process in `OWNERS` and its worker sockets in
    /// `WORKER_SOCKETS`; `live`: the other owners that run.
    fn register(&mut self, sockets: &[Vec<TcpListener>], live: &[u32]) -> Result<(), DataplaneError> {
        let id = self.id;
        {
            let mut owners: HashMap<_, u32, Owner> = map_mut(&mut self.ebpf, MAP_OWNERS)?;
            // Forget owners that are gone (crashed while others ran).
            let stale: Vec<u32> = owners
                .keys()
                .filter_map(Result::ok)
                .filter(|p| *p != id && !live.contains(p))
                .collect();
            for p in stale {
                owners.remove(&p).map_err(map_err(MAP_OWNERS))?;
            }
            owners
                .insert(
                    id,
                    Owner {
                        registered_at: now_secs(),
                    },
                    0,
                )
                .map_err(map_err(MAP_OWNERS))?;
        }
        let mut socks: SockHash<_, WorkerKey> = map_mut(&mut self.ebpf, MAP_WORKER_SOCKETS)?;
        for (w, per_listener) in sockets.iter().enumerate() {
            for (g, sock) in per_listener.iter().enumerate() {
                let key = WorkerKey {
                    owner: id,
                    group: g as u16,
                    worker: w as u16,
                };
                socks
                    .insert(key, sock.as_raw_fd(), 0)
                    .map_err(map_err(MAP_WORKER_SOCKETS))?;
            }
        }
        Ok(())
    }

    /// Points every published address at this process's workers, one
    /// atomic map update per address: from here on, new connections come
    /// here and a predecessor only drains. Entries of owners that are gone
    /// are removed too.
    ///
    /// # Errors
    /// When the maps cannot be read or updated.
    pub fn take_over(&mut self) -> Result<(), DataplaneError> {
        let _lock = PinLock::acquire(&self.dir)?;
        let id = self.id;
        let live = owners::running(&map_ref::<SockHash<_, WorkerKey>>(&self.ebpf, MAP_WORKER_SOCKETS)?);
        let mut listeners: HashMap<_, ListenKey, ListenTarget> = map_mut(&mut self.ebpf, MAP_LISTENERS)?;
        self.groups.clear();
        for (g, addr) in self.listen.iter().enumerate() {
            let key = ListenKey::from_socket_addr(*addr);
            if let Ok(prev) = listeners.get(&key, 0)
                && prev.owner != id
                && live.contains(&prev.owner)
            {
                info!(listen = %addr, from = prev.owner, "taking over the published address");
            }
            let target = ListenTarget {
                owner: id,
                group: g as u16,
                workers: self.workers,
            };
            // One atomic update per listener: the switch-over point.
            listeners.insert(key, target, 0).map_err(map_err(MAP_LISTENERS))?;
            self.groups.push((key, g as u16, self.workers));
        }
        // Entries of owners that are gone would only ever fall through.
        let dead: Vec<ListenKey> = listeners
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, t)| !live.contains(&t.owner))
            .map(|(k, _)| k)
            .collect();
        for k in dead {
            listeners.remove(&k).map_err(map_err(MAP_LISTENERS))?;
        }
        Ok(())
    }

    /// Whether another running process registered its workers but has not
    /// taken over a published address that this one still owns: a
    /// successor that is still starting (reading Docker).
    pub fn successor_starting(&self) -> bool {
        let Ok(sockets) = map_ref::<SockHash<_, WorkerKey>>(&self.ebpf, MAP_WORKER_SOCKETS) else {
            return false;
        };
        let Ok(listeners) = map_ref::<HashMap<_, ListenKey, ListenTarget>>(&self.ebpf, MAP_LISTENERS) else {
            return false;
        };
        let others = owners::running(&sockets).into_iter().any(|o| o != self.id);
        others
            && self
                .groups
                .iter()
                .any(|(key, _, _)| listeners.get(key, 0).is_ok_and(|t| t.owner == self.id))
    }

    /// Leaves the pinned state: releases this process's listeners unless a
    /// successor took them over, removes its worker sockets and, when no
    /// other swarm-sticky uses the state, removes the pins (detaching the
    /// programs). Returns whether a successor owns at least one listener.
    ///
    /// # Errors
    /// When the maps cannot be updated.
    pub fn leave(&mut self) -> Result<bool, DataplaneError> {
        let _lock = PinLock::acquire(&self.dir)?;
        let id = self.id;
        let mut succeeded = false;
        {
            let mut listeners: HashMap<_, ListenKey, ListenTarget> = map_mut(&mut self.ebpf, MAP_LISTENERS)?;
            for (key, _, _) in &self.groups {
                match listeners.get(key, 0) {
                    Ok(t) if t.owner == id => listeners.remove(key).map_err(map_err(MAP_LISTENERS))?,
                    Ok(_) => succeeded = true,
                    Err(_) => {}
                }
            }
        }
        let others = {
            let mut socks: SockHash<_, WorkerKey> = map_mut(&mut self.ebpf, MAP_WORKER_SOCKETS)?;
            for group in 0..self.listen.len() {
                for w in 0..self.workers {
                    // Already gone when the socket closed first: fine.
                    let _ = socks.remove(&WorkerKey {
                        owner: id,
                        group: group as u16,
                        worker: w,
                    });
                }
            }
            owners::running(&socks)
        };
        {
            let mut owners: HashMap<_, u32, Owner> = map_mut(&mut self.ebpf, MAP_OWNERS)?;
            let _ = owners.remove(&id);
        }
        if others.is_empty() {
            pins::remove_all(&self.dir)?;
            info!("eBPF steering detached; pins removed");
        }
        self.groups.clear();
        Ok(succeeded)
    }

    /// Steering counters, summed over CPUs.
    ///
    /// # Errors
    /// When the map cannot be read.
    pub fn steer_stats(&self) -> Result<SteerStats, DataplaneError> {
        let stats: PerCpuArray<_, SteerStats> = map_ref(&self.ebpf, MAP_STEER_STATS)?;
        let per_cpu = stats.get(&0, 0).map_err(map_err(MAP_STEER_STATS))?;
        Ok(per_cpu.iter().fold(SteerStats::default(), |a, s| SteerStats {
            steered: a.steered + s.steered,
            no_worker: a.no_worker + s.no_worker,
            passed: a.passed + s.passed,
        }))
    }

    /// The aya-log reader of the steering program, when this process loaded
    /// it (a process that joined reads nothing: the log belongs to the
    /// program's creator).
    pub fn take_logger(&mut self) -> Option<aya_log::EbpfLogger<&'static dyn log::Log>> {
        if !self.created {
            return None;
        }
        self.created = false;
        match aya_log::EbpfLogger::init(&mut self.ebpf) {
            Ok(l) => Some(l),
            Err(err) => {
                // Happens when the programs log nothing; not an error.
                tracing::debug!(error = %err, "no eBPF log reader");
                None
            }
        }
    }

    /// The pin directory.
    pub fn pin_dir(&self) -> &Path {
        &self.dir
    }
}

/// Loads the `sk_lookup` program, attaches it to this thread's network
/// namespace and pins the link.
fn attach_steering(ebpf: &mut Ebpf, pin: &Path) -> Result<(), DataplaneError> {
    let prog: &mut SkLookup = ebpf
        .program_mut(PROG_STEER)
        .ok_or(DataplaneError::MissingProgram(PROG_STEER))?
        .try_into()
        .map_err(|source| DataplaneError::Program {
            name: PROG_STEER,
            source,
        })?;
    prog.load().map_err(|source| DataplaneError::Program {
        name: PROG_STEER,
        source,
    })?;
    let netns = std::fs::File::open("/proc/thread-self/ns/net").map_err(|source| DataplaneError::Io {
        what: "open the network namespace",
        source,
    })?;
    let id = prog.attach(netns).map_err(|source| DataplaneError::Program {
        name: PROG_STEER,
        source,
    })?;
    let link = prog.take_link(id).map_err(|source| DataplaneError::Program {
        name: PROG_STEER,
        source,
    })?;
    let _pinned: PinnedLink = FdLink::from(link).pin(pin).map_err(|source| DataplaneError::Pin {
        what: "the sk_lookup link",
        source,
    })?;
    Ok(())
}

#[cfg(all(test, not(ebpf_stub)))]
mod tests;
