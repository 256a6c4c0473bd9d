//! Who uses the pinned steering state: the id each process registers
//! under, and which of them still run.
//!
//! An owner is named by its pid where pids are unique on the host (the
//! initial PID namespace: systemd, a shell). In a container every
//! swarm-sticky is PID 1 of a namespace of its own, so the two containers
//! of a start-first update would take the same name; a process in a PID
//! namespace of its own registers under a random id above every possible
//! pid instead (`PID_MAX_LIMIT` is 2^22).
//!
//! Whether an owner still runs cannot be asked of the kernel by pid across
//! PID namespaces, so it is read from the state itself: an owner runs while
//! its worker sockets are in `WORKER_SOCKETS`. The kernel takes a socket
//! out of every sockhash when it closes, which happens when its process
//! exits or is killed, and a process that leaves removes its own.

use std::{collections::BTreeSet, path::Path};

use aya::maps::{Map, MapData, MapError, SockHash};
use proxy_common::{names::MAP_WORKER_SOCKETS, steer::WorkerKey};

use crate::instance::in_container;

/// Ids above this are never pids (`PID_MAX_LIMIT`, 4 Mi).
const ABOVE_PIDS: u32 = 1 << 22;

/// The id this process registers under: its pid in the initial PID
/// namespace, else a random id above every pid that `taken` does not
/// name.
pub fn own_id(taken: impl Fn(u32) -> bool) -> u32 {
    if !in_container() {
        return std::process::id();
    }
    loop {
        let id = rand::random_range(ABOVE_PIDS..=u32::MAX);
        if !taken(id) {
            return id;
        }
    }
}

/// The owners with at least one worker socket in `sockets`.
pub fn running<T: std::borrow::Borrow<MapData>>(sockets: &SockHash<T, WorkerKey>) -> BTreeSet<u32> {
    sockets.keys().filter_map(Result::ok).map(|k| k.owner).collect()
}

/// The running owners of the pinned state in `dir` (none when there is
/// no state).
///
/// # Errors
/// When the pinned map cannot be opened.
pub fn running_in(dir: &Path) -> Result<BTreeSet<u32>, MapError> {
    let path = dir.join(MAP_WORKER_SOCKETS);
    if !path.exists() {
        return Ok(BTreeSet::new());
    }
    let data = MapData::from_pin(&path)?;
    let sockets: SockHash<_, WorkerKey> = SockHash::try_from(Map::SockHash(data))?;
    Ok(running(&sockets))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside the initial PID namespace (or inside it) the id is never
    /// one that is taken, and a container's id is never a pid.
    #[test]
    fn ids_do_not_collide() {
        let id = own_id(|_| false);
        if !in_container() {
            assert_eq!(id, std::process::id());
        } else {
            assert!(id >= ABOVE_PIDS);
            let again = own_id(|i| i == id);
            assert_ne!(again, id);
        }
    }
}
