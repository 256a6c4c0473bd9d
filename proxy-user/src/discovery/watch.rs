//! Watching the engine: a debounced re-list on every event, short re-list
//! intervals while Swarm moves tasks, a periodic full resync as the safety
//! net, and reconnects with back-off.
//!
//! Swarm sends no task events, so any service, container, network or node
//! event triggers a re-list of services, tasks and nodes. A rolling update
//! moves tasks with no event at all (on other nodes not even a container
//! event), so while a served service is in transition (an update under
//! way, a slot waiting for its task, a task being stopped) and for a
//! moment after every event, the watcher lists again every
//! [`SETTLE_INTERVAL`]. Each new table ([`super::table::build`]) is
//! compared with the previous one and published (atomically, through a
//! `watch` channel) only when it differs. When the engine goes away the
//! last table stays in force; the state changes are logged once each, and
//! the table's age is exported in [`DiscoveryStatus`].

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use futures_util::StreamExt as _;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{
    engine::{Engine, EngineError},
    table::{Listing, Snapshot, build},
};

/// Events that arrive within this window are served by one re-list.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// While Swarm moves the tasks of a served service, the table is listed
/// again at this interval: a task marked for shutdown stops taking new
/// sessions within about this long.
const SETTLE_INTERVAL: Duration = Duration::from_millis(200);
/// After an event, list at that interval for at least this long: the
/// orchestrator acts on a service change a moment after the event.
const SETTLE_AFTER_EVENT: Duration = Duration::from_secs(3);
/// A transition that shows no change for this long (a task pending with no
/// node that can take it) goes back to the resync pace; an update under
/// way does not.
const SETTLE_GIVE_UP: Duration = Duration::from_secs(60);
/// Asks for a re-list before the next event or resync (see [`relist_soon`]).
static RELIST_SOON: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Asks the watcher to list the engine again now: a connection to a
/// discovered task failed. A container that dies on another node sends this
/// manager no event at all; the first failed connection to it is the
/// earliest sign. Requests coalesce (one stored permit), so a burst of
/// failures costs one re-list.
pub fn relist_soon() {
    RELIST_SOON.notify_one();
}

/// Reconnect back-off bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The watcher's state, for the admin API and metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DiscoveryStatus {
    /// Whether the engine answers.
    pub connected: bool,
    /// Negotiated API version.
    pub api_version: Option<String>,
    /// The last error, while disconnected.
    pub last_error: Option<String>,
    /// When the table in force was last confirmed (listed successfully).
    #[serde(skip)]
    pub confirmed_at: Option<Instant>,
    /// Wall-clock time of that confirmation.
    pub confirmed_at_unix: Option<u64>,
    /// Tables published since start.
    pub tables_published: u64,
}

impl DiscoveryStatus {
    /// Seconds since the table in force was last confirmed.
    pub fn table_age(&self) -> Option<Duration> {
        self.confirmed_at.map(|t| t.elapsed())
    }
}

/// What one re-list found.
#[derive(Debug, Clone, Copy)]
struct Refreshed {
    /// A new table was published.
    changed: bool,
    /// A served service is updating.
    updating: bool,
    /// A served service's tasks are moving.
    in_transition: bool,
}

async fn refresh(
    engine: &Engine,
    tx: &watch::Sender<Arc<Snapshot>>,
    status: &Mutex<DiscoveryStatus>,
) -> Result<Refreshed, EngineError> {
    let (services, tasks, nodes, unhealthy) = tokio::try_join!(
        engine.services(),
        engine.tasks(),
        engine.nodes(),
        engine.unhealthy_local_tasks()
    )?;
    let table = build(&Listing {
        services,
        tasks,
        nodes,
        unhealthy,
    });
    let found = Refreshed {
        changed: false,
        updating: table.services.iter().any(|s| s.updating),
        in_transition: table.in_transition(),
    };
    let changed = tx.send_if_modified(|current| {
        if **current == table {
            return false;
        }
        *current = Arc::new(table);
        true
    });
    let mut st = status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    st.confirmed_at = Some(Instant::now());
    st.confirmed_at_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs());
    if changed {
        st.tables_published += 1;
    }
    Ok(Refreshed { changed, ..found })
}

/// When to list again at the short interval, from the events and tables
/// seen so far.
#[derive(Debug, Default)]
struct Settling {
    /// The end of the window after the last event.
    after_event: Option<Instant>,
    /// When the table last changed.
    last_change: Option<Instant>,
    /// What the last re-list found.
    last: Option<Refreshed>,
}

impl Settling {
    fn event(&mut self, now: Instant) {
        self.after_event = Some(now + SETTLE_AFTER_EVENT);
    }

    fn refreshed(&mut self, r: Refreshed, now: Instant) {
        if r.changed {
            self.last_change = Some(now);
        }
        self.last = Some(r);
    }

    /// Whether the next re-list comes after [`SETTLE_INTERVAL`] rather than
    /// the resync period.
    fn fast(&self, now: Instant) -> bool {
        let Some(last) = self.last else { return false };
        self.after_event.is_some_and(|end| now < end)
            || last.updating
            || (last.in_transition && self.last_change.is_some_and(|t| now - t < SETTLE_GIVE_UP))
    }
}

fn set_disconnected(status: &Mutex<DiscoveryStatus>, err: &EngineError) -> bool {
    let mut st = status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let was = st.connected || st.last_error.is_none();
    st.connected = false;
    st.last_error = Some(crate::error::chain(err).to_string());
    was
}

/// Watches the engine at `host` until the task is dropped, publishing
/// tables on `tx` and its state in `status`.
pub async fn run(
    host: String,
    resync: Duration,
    tx: watch::Sender<Arc<Snapshot>>,
    status: Arc<Mutex<DiscoveryStatus>>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let engine = match Engine::connect(&host).await {
            Ok(e) => e,
            Err(err) => {
                if set_disconnected(&status, &err) {
                    warn!(host = %host, error = %crate::error::chain(&err), "docker API unreachable; keeping the last backend table");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let mut events = Box::pin(engine.changes());
        let mut settling = Settling::default();
        match refresh(&engine, &tx, &status).await {
            Ok(r) => settling.refreshed(r, Instant::now()),
            Err(err) => {
                if set_disconnected(&status, &err) {
                    warn!(error = %crate::error::chain(&err), "docker API listing failed; keeping the last backend table");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        }
        {
            let mut st = status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            st.connected = true;
            st.last_error = None;
            st.api_version = Some(engine.api_version());
        }
        info!(host = %host, api = %engine.api_version(), "watching the docker API");
        backoff = BACKOFF_MIN;
        let mut resync_timer = tokio::time::interval(resync);
        resync_timer.tick().await;
        let failure = loop {
            let fast = settling.fast(Instant::now());
            tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(())) => {
                        // Let a burst of events (a rolling update emits
                        // several per task) settle into one re-list.
                        tokio::time::sleep(DEBOUNCE).await;
                        while let Some(Some(Ok(()))) = futures_util::FutureExt::now_or_never(events.next()) {}
                        settling.event(Instant::now());
                    }
                    Some(Err(err)) => break err,
                    None => break EngineError::Host(format!("{host}: event stream ended")),
                },
                () = tokio::time::sleep(SETTLE_INTERVAL), if fast => {}
                () = RELIST_SOON.notified() => {
                    // What failed may be Swarm moving tasks: follow closely.
                    tokio::time::sleep(DEBOUNCE).await;
                    settling.event(Instant::now());
                }
                _ = resync_timer.tick() => {}
            }
            match refresh(&engine, &tx, &status).await {
                Ok(r) => {
                    tracing::debug!(
                        changed = r.changed,
                        updating = r.updating,
                        in_transition = r.in_transition,
                        "re-listed"
                    );
                    settling.refreshed(r, Instant::now());
                }
                Err(err) => break err,
            }
        };
        if set_disconnected(&status, &failure) {
            warn!(error = %crate::error::chain(&failure), "lost the docker API; keeping the last backend table and reconnecting");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(changed: bool, updating: bool, in_transition: bool) -> Refreshed {
        Refreshed {
            changed,
            updating,
            in_transition,
        }
    }

    /// Short intervals after an event, while an update runs, and while a
    /// transition keeps changing the table; the resync pace otherwise.
    #[test]
    fn when_the_watcher_lists_at_short_intervals() {
        let t0 = Instant::now();
        let mut s = Settling::default();
        assert!(!s.fast(t0), "nothing listed yet");
        s.refreshed(found(true, false, false), t0);
        assert!(!s.fast(t0), "a settled table");
        s.event(t0);
        assert!(s.fast(t0 + Duration::from_secs(1)));
        assert!(!s.fast(t0 + SETTLE_AFTER_EVENT), "the window after an event ends");
        s.refreshed(found(false, true, true), t0);
        assert!(s.fast(t0 + Duration::from_secs(3600)), "an update under way");
        s.refreshed(found(true, false, true), t0);
        assert!(
            s.fast(t0 + Duration::from_secs(30)),
            "a transition that changed the table"
        );
        assert!(
            !s.fast(t0 + SETTLE_GIVE_UP),
            "a transition that stopped changing (a task that cannot be placed)"
        );
    }
}
