//! In-process caches. Each cache states its TTL and why serving data that old is safe.
//!
//! This file holds the waiting room's views (admission state, ended sessions, sale windows);
//! [`sales`] holds the purchase path's read caches (dates, sections, seat maps).

mod sales;

pub use sales::{SalesCaches, View};

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, PoisonError, RwLock,
    },
    time::{Duration, Instant},
};

use boxoffice_domain::{
    ids::{ConcertId, UserId},
    queue::{
        pg as queue_pg,
        redis::{WatchFrom, Watched},
        AdmissionView, Room, SaleWindow,
    },
    telemetry::ConcertLabels,
    Config, Error, Result,
};
use futures::StreamExt;
use moka::sync::Cache;

use crate::telemetry::ConcertMetrics;

/// Every cache of one gateway replica.
#[derive(Clone)]
pub struct Caches {
    /// Waiting-room sessions that ended early (leave, payment), per (concert, user), with the
    /// epoch ms they ended.
    pub ended_sessions: EndedSessions,
    /// Each served concert's admission state and ended log, refreshed in the background.
    pub queue: QueueViews,
    /// Sale windows, for joins.
    pub concert_windows: ConcertWindows,
    /// Dates, sections and seat maps.
    pub sales: SalesCaches,
}

impl Caches {
    /// Builds the caches with their configured capacities and TTLs.
    pub fn new(config: &Config, room: Room) -> Self {
        let ended_sessions = EndedSessions::new();
        Self {
            queue: QueueViews::new(config, room, ended_sessions.clone()),
            ended_sessions,
            concert_windows: ConcertWindows::new(),
            sales: SalesCaches::new(),
        }
    }
}

/// Sessions and places that ended before their token expired (leave, payment, skipped as
/// abandoned), fed from each concert's ended log by [`QueueViews`]. A queue token is refused
/// when the user's last end is at or after the token's `since`.
///
/// TTL 2 h: no session lasts longer (policies are capped at the ended log's retention), so an
/// entry older than that can only refer to a token that has expired anyway.
#[derive(Clone)]
pub struct EndedSessions(Cache<(ConcertId, UserId), i64>);

impl EndedSessions {
    fn new() -> Self {
        Self(
            Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(2 * 3600))
                .build(),
        )
    }

    /// Records that `user`'s session in `concert` ended at `ended_at_ms`.
    pub fn record(&self, concert: ConcertId, user: UserId, ended_at_ms: i64) {
        let key = (concert, user);
        match self.0.get(&key) {
            Some(known) if known >= ended_at_ms => {}
            _ => self.0.insert(key, ended_at_ms),
        }
    }

    /// Whether a session admitted (or a place read) at `admitted_at_ms` has since ended.
    pub fn has_ended(&self, concert: ConcertId, user: UserId, admitted_at_ms: i64) -> bool {
        self.0
            .get(&(concert, user))
            .is_some_and(|ended| ended >= admitted_at_ms)
    }
}

/// Sale windows per concert, for joins: a join costs one Lua call and no SQL in the common
/// case.
///
/// TTL 1 s (misses included, so a flood of joins to an unknown id costs one query a second):
/// a window changes only by operator action and `sold_out` flips when the last ticket goes;
/// accepting a join up to a second after either is harmless, because the sale endpoints
/// enforce the window and the stock themselves.
#[derive(Clone)]
pub struct ConcertWindows(moka::future::Cache<ConcertId, Option<SaleWindow>>);

impl ConcertWindows {
    fn new() -> Self {
        Self(
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(1))
                .build(),
        )
    }

    /// The window of `concert`, `ConcertNotFound` if there is none. Concurrent misses share
    /// one query (moka's `try_get_with` coalesces them).
    pub async fn get(
        &self,
        pg: &deadpool_postgres::Pool,
        concert: ConcertId,
    ) -> Result<SaleWindow> {
        self.0
            .try_get_with(concert, queue_pg::sale_window(pg, concert))
            .await
            .map_err(|e: Arc<Error>| e.repeat())?
            .ok_or(Error::ConcertNotFound)
    }
}

/// A concert nobody polled, joined or used an ACTIVE endpoint of for this long stops being
/// refreshed; the next request loads it again (one round trip).
const IDLE_EVICTION: Duration = Duration::from_secs(60);
/// Ended entries read per round trip; a longer tail is paged.
const ENDED_PAGE: usize = 10_000;
/// Pages read in one refresh at most; the rest waits for the next refresh (a backlog that
/// large means tens of thousands of ends in a quarter second).
const MAX_PAGES: usize = 10;
/// Concerts refreshed concurrently by the background task.
const REFRESH_CONCURRENCY: usize = 8;

/// The per-concert admission state and ended log of every concert this replica serves.
///
/// A background task ([`QueueViews::refresh_all`]) re-reads each served concert every
/// `BOXOFFICE_QUEUE_STATE_TTL_MS` (one `queue_watch.lua` call per concert, never per request)
/// and feeds [`EndedSessions`]. Readers take a snapshot no older than [`QueueViews::max_age`];
/// when the background task has fallen behind (or this is the concert's first request on
/// this replica) the reader refreshes it itself, one request per concert at a time.
///
/// Why serving a snapshot that old is safe: a position or ETA a few hundred ms old is as good
/// as a fresh one; an admission learned that late costs the user that much; and the ended log
/// is at most `max_age` (750 ms) behind Redis, which is what makes "a session that ended is
/// refused on every replica within 1 s" hold.
///
/// A plain `RwLock<HashMap>` rather than moka: entries are refreshed in place by the task,
/// read on every poll (a read lock and an `Arc` clone), and evicted by idleness, which the
/// task decides.
#[derive(Clone)]
pub struct QueueViews(Arc<ViewsInner>);

struct ViewsInner {
    room: Room,
    ended: EndedSessions,
    entries: RwLock<HashMap<ConcertId, Arc<Watch>>>,
    /// Label slots of the watched concerts' metrics, freed as watches are dropped.
    labels: ConcertLabels,
    max_age: Duration,
    epoch: Instant,
}

/// One watched concert.
pub struct Watch {
    concert: ConcertId,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Held while refreshing, so concurrent readers of a stale entry wait for one read
    /// instead of each making their own; holds the ended-log cursor.
    refresh: tokio::sync::Mutex<Option<i64>>,
    /// Milliseconds since [`ViewsInner::epoch`] of the last use.
    last_used: AtomicU64,
    /// This concert's queue metrics (handles registered once, not per request).
    pub metrics: ConcertMetrics,
}

/// A concert's admission state as of `fetched`.
#[derive(Debug)]
pub struct Snapshot {
    /// The state.
    pub view: AdmissionView,
    /// When the read that produced it was sent (`None`: never read).
    fetched: Option<Instant>,
}

impl QueueViews {
    fn new(config: &Config, room: Room, ended: EndedSessions) -> Self {
        Self(Arc::new(ViewsInner {
            room,
            ended,
            entries: RwLock::default(),
            labels: ConcertLabels::default(),
            max_age: Self::max_age_for(config.queue_state_ttl),
            epoch: Instant::now(),
        }))
    }

    /// The oldest snapshot a reader accepts: three refresh intervals, so one slow refresh
    /// does not push readers onto Redis, but never more than 750 ms, which leaves the 1 s
    /// promise for ended sessions a quarter second for the round trip.
    pub fn max_age_for(refresh: Duration) -> Duration {
        (refresh * 3).min(Duration::from_millis(750))
    }

    /// The oldest snapshot a reader accepts.
    pub fn max_age(&self) -> Duration {
        self.0.max_age
    }

    /// `concert`'s watch and a snapshot at most [`Self::max_age`] old: no I/O in the common
    /// case. Starts watching the concert if this replica was not yet.
    pub async fn get(&self, concert: ConcertId) -> Result<(Arc<Watch>, Arc<Snapshot>)> {
        let watch = self.entry(concert);
        watch.last_used.store(self.elapsed_ms(), Ordering::Relaxed);
        let snapshot = watch.snapshot();
        if snapshot.is_fresh(self.0.max_age) {
            return Ok((watch, snapshot));
        }
        let snapshot = self.refresh(&watch, false).await?;
        Ok((watch, snapshot))
    }

    /// Refreshes every watched concert and forgets the idle ones; the background task calls
    /// it every `BOXOFFICE_QUEUE_STATE_TTL_MS`.
    pub async fn refresh_all(&self) {
        let now = self.elapsed_ms();
        let idle = IDLE_EVICTION.as_millis() as u64;
        let watches: Vec<Arc<Watch>> = {
            let mut entries = self
                .0
                .entries
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            entries.retain(|_, w| now.saturating_sub(w.last_used.load(Ordering::Relaxed)) < idle);
            entries.values().cloned().collect()
        };
        futures::stream::iter(watches)
            .for_each_concurrent(REFRESH_CONCURRENCY, |watch| async move {
                if let Err(e) = self.refresh(&watch, true).await {
                    tracing::warn!(concert = %watch.concert, error = %e.report(), "queue state refresh failed");
                }
            })
            .await;
    }

    fn entry(&self, concert: ConcertId) -> Arc<Watch> {
        if let Some(watch) = self
            .0
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&concert)
        {
            return watch.clone();
        }
        self.0
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(concert)
            .or_insert_with(|| {
                Arc::new(Watch {
                    concert,
                    snapshot: RwLock::new(Arc::new(Snapshot {
                        view: AdmissionView::default(),
                        fetched: None,
                    })),
                    refresh: tokio::sync::Mutex::new(None),
                    last_used: AtomicU64::new(self.elapsed_ms()),
                    metrics: ConcertMetrics::new(concert, &self.0.labels),
                })
            })
            .clone()
    }

    /// Reads the concert's state and ended tail, unless (when not `force`) another reader
    /// refreshed it while this one waited for the lock.
    async fn refresh(&self, watch: &Watch, force: bool) -> Result<Arc<Snapshot>> {
        let mut cursor = watch.refresh.lock().await;
        if !force {
            let current = watch.snapshot();
            if current.is_fresh(self.0.max_age) {
                return Ok(current);
            }
        }
        let sent = Instant::now();
        let mut view = None;
        for _ in 0..MAX_PAGES {
            let from = cursor.map_or(WatchFrom::Init, WatchFrom::Score);
            let Watched {
                view: read,
                ended,
                now_ms,
            } = self.0.room.watch(watch.concert, from, ENDED_PAGE).await?;
            view = Some(read);
            let full = ended.len() >= ENDED_PAGE;
            for &(user, at) in &ended {
                self.0.ended.record(watch.concert, user, at);
            }
            // A full page resumes at its last score (inclusive: entries sharing it are read
            // again, harmlessly); otherwise everything up to Redis's `now` has been seen.
            *cursor = Some(match (full, ended.last()) {
                (true, Some(&(_, at))) => at,
                _ => now_ms,
            });
            if !full {
                break;
            }
        }
        let snapshot = Arc::new(Snapshot {
            view: view.unwrap_or_default(),
            fetched: Some(sent),
        });
        *watch
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = snapshot.clone();
        Ok(snapshot)
    }

    fn elapsed_ms(&self) -> u64 {
        self.0.epoch.elapsed().as_millis() as u64
    }
}

impl Watch {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Snapshot {
    fn is_fresh(&self, max_age: Duration) -> bool {
        self.fetched.is_some_and(|at| at.elapsed() <= max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ended_after_admission_is_ended_and_a_later_admission_is_not() {
        let ended = EndedSessions::new();
        let (c, u) = (ConcertId::new(1), UserId::new(2));
        assert!(!ended.has_ended(c, u, 1_000));
        ended.record(c, u, 2_000);
        assert!(ended.has_ended(c, u, 1_000));
        assert!(!ended.has_ended(c, u, 3_000), "re-admitted after the end");
        assert!(
            !ended.has_ended(c, UserId::new(3), 1_000),
            "other users are unaffected"
        );
    }

    #[test]
    fn an_older_end_never_overwrites_a_newer_one() {
        let ended = EndedSessions::new();
        let (c, u) = (ConcertId::new(1), UserId::new(2));
        ended.record(c, u, 5_000);
        ended.record(c, u, 4_000);
        assert!(ended.has_ended(c, u, 4_500));
    }

    #[test]
    fn readers_accept_snapshots_well_inside_the_one_second_promise() {
        assert_eq!(
            QueueViews::max_age_for(Duration::from_millis(250)),
            Duration::from_millis(750)
        );
        assert_eq!(
            QueueViews::max_age_for(Duration::from_millis(100)),
            Duration::from_millis(300)
        );
        assert_eq!(
            QueueViews::max_age_for(Duration::from_secs(5)),
            Duration::from_millis(750)
        );
    }
}
