//! The purchase path's read caches:
//!
//! | cache | key | TTL | why that staleness is safe |
//! |---|---|---|---|
//! | `schedules` | schedule | 30 s | concert, sale window and sections change only by an operator's edit, which then takes effect within 30 s |
//! | `seats` | schedule | 10 min | seats never change once created; the TTL only bounds memory |
//! | `concerts` | concert | 1 s | a concert's status (e.g. SOLD_OUT) may show a second late; every action re-checks it |
//! | `dates` | concert | 1 s | a date that sold out a second ago is still listed; holding from it answers SOLD_OUT or SEAT_UNAVAILABLE |
//! | `sections` | schedule | 1 s | `remaining` may be a second old; the hold is authoritative |
//! | `seat_maps` | (schedule, section) | 1 s | a seat may show AVAILABLE up to a second after another replica took it; the hold script refuses it (409) |
//!
//! Every replica evicts its own entries on each hold, release and payment it makes (one
//! section's seat map, not the whole schedule), so a buyer sees their own change at once;
//! changes made through other replicas show within the 1 s TTL. Seat status lives in Redis,
//! so a miss costs one Redis round trip (HMGET of the section's seats), never Postgres once
//! the catalogue is cached.

use std::{future::Future, hash::Hash, sync::Arc, time::Duration};

use boxoffice_domain::{
    concerts::{self, Schedule, ScheduleSeats},
    holds::{self, Footprint, Store},
    ids::{ConcertId, ScheduleId, SectionId, UserId},
    payments, Error, Result,
};
use bytes::Bytes;

use super::Caches;

/// The purchase path's caches of one replica.
#[derive(Clone)]
pub struct SalesCaches {
    schedules: Loading<ScheduleId, Arc<Schedule>>,
    seats: Loading<ScheduleId, Arc<ScheduleSeats>>,
    dates: Loading<ConcertId, View>,
    sections: Loading<ScheduleId, View>,
    seat_maps: Loading<(ScheduleId, SectionId), View>,
    concerts: Loading<ConcertId, View>,
}

/// How old a view of live inventory may be (dates, sections, seat maps): the cross-replica
/// staleness bound the issue asks for (<= 1 s).
const VIEW_TTL: Duration = Duration::from_secs(1);

/// Bytes of serialised views one replica keeps: the arena's 100 seat maps are ~3 MB; 64 MB
/// holds thousands of busy sections.
const VIEW_BYTES: u64 = 64 << 20;

impl SalesCaches {
    /// Builds the caches with their capacities and TTLs.
    pub fn new() -> Self {
        Self {
            schedules: Loading::new(
                "schedules",
                moka::future::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(Duration::from_secs(30)),
            ),
            // Weighed by seats: a million seats (~100 MB) is twenty arenas or every seat of
            // the seeded small concerts.
            seats: Loading::new(
                "seats",
                moka::future::Cache::builder()
                    .max_capacity(1_000_000)
                    .weigher(|_, v: &Arc<ScheduleSeats>| {
                        u32::try_from(v.len().max(1)).unwrap_or(u32::MAX)
                    })
                    .time_to_live(Duration::from_secs(600)),
            ),
            dates: Loading::new("dates", view_builder(VIEW_BYTES / 4)),
            sections: Loading::new("sections", view_builder(VIEW_BYTES / 4)),
            seat_maps: Loading::new("seat_maps", view_builder(VIEW_BYTES)),
            concerts: Loading::new("concerts", view_builder(VIEW_BYTES / 4)),
        }
    }
}

impl Default for SalesCaches {
    fn default() -> Self {
        Self::new()
    }
}

impl Caches {
    /// A schedule with its concert, sale window and sections.
    pub async fn schedule(
        &self,
        pg: &deadpool_postgres::Pool,
        id: ScheduleId,
    ) -> Result<Arc<Schedule>> {
        self.sales
            .schedules
            .get_or_load(id, async {
                Ok(Arc::new(concerts::pg::schedule(pg, id).await?))
            })
            .await
    }

    /// Every seat of a schedule.
    pub async fn seats(
        &self,
        pg: &deadpool_postgres::Pool,
        id: ScheduleId,
    ) -> Result<Arc<ScheduleSeats>> {
        self.sales
            .seats
            .get_or_load(id, async {
                Ok(Arc::new(concerts::pg::schedule_seats(pg, id).await?))
            })
            .await
    }

    /// `GET /concerts/{id}`, serialised: the most read page of an on-sale, one Postgres round
    /// trip per concert per second per replica instead of two per request.
    pub async fn concert(&self, pg: &deadpool_postgres::Pool, id: ConcertId) -> Result<View> {
        self.sales
            .concerts
            .get_or_load(id, async { View::of(&concerts::pg::get(pg, id).await?) })
            .await
    }

    /// `GET /concerts/{id}/schedules`, serialised.
    pub async fn dates(&self, pg: &deadpool_postgres::Pool, concert: ConcertId) -> Result<View> {
        self.sales
            .dates
            .get_or_load(concert, async {
                View::of(&concerts::pg::available_dates(pg, concert).await?)
            })
            .await
    }

    /// `GET /schedules/{id}/sections`, serialised.
    pub async fn sections(&self, store: Store<'_>, schedule: &Schedule) -> Result<View> {
        self.sales
            .sections
            .get_or_load(schedule.id, async {
                let seats = self.seats(store.pg, schedule.id).await?;
                View::of(&holds::sections(store, schedule, &seats).await?)
            })
            .await
    }

    /// `GET /schedules/{id}/seats?section=`, serialised.
    pub async fn seat_map(
        &self,
        store: Store<'_>,
        schedule: &Schedule,
        section: SectionId,
    ) -> Result<View> {
        self.sales
            .seat_maps
            .get_or_load((schedule.id, section), async {
                let seats = self.seats(store.pg, schedule.id).await?;
                View::of(&holds::seat_map(store, schedule, &seats, section).await?)
            })
            .await
    }

    /// Evicts the views this replica's own change to `footprint` made stale: the seat map of
    /// each section it touched (only those), the schedule's sections, and, when tickets were
    /// sold, the concert's dates.
    pub async fn evict(&self, concert: ConcertId, footprint: &Footprint, sold: bool) {
        // (A GA footprint names no seat: no seat map to look up.)
        let seats = if footprint.seats.is_empty() {
            None
        } else {
            self.sales.seats.cache.get(&footprint.schedule).await
        };
        if let Some(seats) = seats {
            let mut touched: Vec<SectionId> = footprint
                .seats
                .iter()
                .filter_map(|id| seats.get(*id).map(|s| s.section))
                .collect();
            touched.sort_unstable();
            touched.dedup();
            for section in touched {
                self.sales
                    .seat_maps
                    .cache
                    .invalidate(&(footprint.schedule, section))
                    .await;
            }
        }
        self.sales
            .sections
            .cache
            .invalidate(&footprint.schedule)
            .await;
        if sold {
            self.sales.dates.cache.invalidate(&concert).await;
        }
    }
}

impl Caches {
    /// What this replica learns from a payment it made: the buyer's ACTIVE session has ended
    /// (refused here at once; other replicas learn it from Redis within their refresh), and
    /// the views of what was sold are stale.
    pub async fn after_payment(&self, user: UserId, paid: &payments::Paid) {
        if let Some(footprint) = &paid.footprint {
            self.ended_sessions
                .record(paid.concert, user, boxoffice_domain::now_ms());
            self.evict(paid.concert, footprint, true).await;
        }
    }
}

/// A cache of serialised views: weighed by bytes, [`VIEW_TTL`] old at most.
fn view_builder<K>(
    max_bytes: u64,
) -> moka::future::CacheBuilder<K, View, moka::future::Cache<K, View>>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    moka::future::Cache::builder()
        .max_capacity(max_bytes)
        .weigher(|_: &K, v: &View| u32::try_from(v.bytes()).unwrap_or(u32::MAX))
        .time_to_live(VIEW_TTL)
}

/// A view serialised once per cache fill: its JSON, and the same JSON gzipped when it is large
/// enough to be worth it. A 500-seat map is ~33 KB of JSON and ~3 KB gzipped; moving the
/// JSON through nginx was most of what a seat-map read cost, and browsers all accept gzip.
/// Compressing costs once per fill, not per read.
#[derive(Clone, Debug)]
pub struct View {
    pub json: Bytes,
    pub gzip: Option<Bytes>,
}

impl View {
    /// Below this many bytes, gzip saves less than its header and the client's work cost.
    const GZIP_FROM: usize = 1024;

    /// Serialises `value`, and gzips it when it is large.
    pub fn of<T: serde::Serialize>(value: &T) -> Result<Self> {
        let json = serde_json::to_vec(value).map_err(anyhow::Error::from)?;
        let gzip = if json.len() >= Self::GZIP_FROM {
            // Level 1: the views are repetitive JSON, so the fastest level already gets ~10x.
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(json.len() / 8),
                flate2::Compression::fast(),
            );
            std::io::Write::write_all(&mut encoder, &json).map_err(anyhow::Error::from)?;
            Some(Bytes::from(encoder.finish().map_err(anyhow::Error::from)?))
        } else {
            None
        };
        Ok(Self {
            json: Bytes::from(json),
            gzip,
        })
    }

    fn bytes(&self) -> usize {
        self.json.len() + self.gzip.as_ref().map_or(0, Bytes::len)
    }
}

/// A moka cache that loads misses once (concurrent misses of one key wait for the same load)
/// and counts hits and misses as `boxoffice_cache_requests_total{cache,result}`.
#[derive(Clone)]
struct Loading<K, V> {
    name: &'static str,
    cache: moka::future::Cache<K, V>,
}

impl<K, V> Loading<K, V>
where
    K: Hash + Eq + Send + Sync + Clone + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(
        name: &'static str,
        builder: moka::future::CacheBuilder<K, V, moka::future::Cache<K, V>>,
    ) -> Self {
        Self {
            name,
            cache: builder.build(),
        }
    }

    async fn get_or_load(&self, key: K, load: impl Future<Output = Result<V>>) -> Result<V> {
        if let Some(value) = self.cache.get(&key).await {
            metrics::counter!("boxoffice_cache_requests_total", "cache" => self.name, "result" => "hit")
                .increment(1);
            return Ok(value);
        }
        metrics::counter!("boxoffice_cache_requests_total", "cache" => self.name, "result" => "miss")
            .increment(1);
        self.cache
            .entry(key)
            .or_try_insert_with(load)
            .await
            .map(|entry| entry.into_value())
            .map_err(shared)
    }
}

/// A load error shared by every waiter of the load, as an owned error. Contract errors keep
/// their code; anything else is reported as the dependency or internal failure it was.
fn shared(error: Arc<Error>) -> Error {
    Arc::try_unwrap(error).unwrap_or_else(|shared| shared.repeat())
}
