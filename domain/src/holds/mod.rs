//! Holds: seats and general-admission places set aside for one user for a few minutes.
//!
//! Owns invariants 1 (no oversell, no double sale) and 3 (holds expire) on the Redis side:
//!
//! - A numbered seat is taken by one Lua script that checks every seat before writing any
//!   ([`redis::hold_seats`]); a general-admission place is taken from a counter with
//!   `DECRBY` and given back when the counter went below zero, both in one script
//!   ([`redis::hold_general`]).
//!   A replica sends its concurrent holds of a schedule together ([`batch`]).
//! - Every hold expires after the configured TTL. The worker's sweep ends due holds whether or
//!   not anyone reads them; until it runs, an expired hold already counts as free.
//! - Each change appends an event to the concert's stream; the worker mirrors it into Postgres.
//!
//! Postgres stays the last line: a seat is in at most one reservation (UNIQUE) and a section
//! never sells past its capacity (CHECK). A schedule's inventory is loaded into Redis from
//! Postgres the first time it is used ([`ensure_loaded`]), so a Redis that lost its data is
//! rebuilt from the truth before it sells again.

pub mod batch;
pub mod pg;
pub mod redis;

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    concerts::{ConcertId, Schedule, ScheduleId, ScheduleSeats, SeatId, SectionId, SectionKind},
    identity::UserId,
    redis::{Keys, Scripts},
    Config, Error, Result,
};

/// A hold's id: a UUID (version 8) whose first 48 bits are the concert id and whose other 74
/// bits are random.
///
/// Carrying the concert lets `DELETE /holds/{id}` and payment find the hold's Redis slot from
/// the id alone, with no index to write on every hold or to clean up afterwards. The random
/// part keeps ids unguessable; the concert id they reveal is one the holder already knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HoldId(Uuid);

impl HoldId {
    /// A fresh id for a hold in `concert`.
    pub fn generate(concert: ConcertId) -> Self {
        let mut bytes: [u8; 16] = rand::random();
        bytes[..6].copy_from_slice(&concert.get().to_be_bytes()[2..]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// Wraps a stored id.
    pub fn new(id: Uuid) -> Self {
        Self(id)
    }

    /// Parses an id from a request path. Anything that is not one of our ids names no hold.
    pub fn parse(raw: &str) -> Result<Self> {
        Uuid::parse_str(raw)
            .ok()
            .filter(|id| id.get_version_num() == 8)
            .map(Self)
            .ok_or(Error::HoldNotFound)
    }

    /// The UUID.
    pub fn get(self) -> Uuid {
        self.0
    }

    /// The concert the hold belongs to.
    pub fn concert(self) -> ConcertId {
        let b = self.0.as_bytes();
        ConcertId::new(i64::from_be_bytes([
            0, 0, b[0], b[1], b[2], b[3], b[4], b[5],
        ]))
    }

    /// The key of the Postgres advisory lock that serialises everything that settles this
    /// hold's payment (the saga and the reconciler). Built from random bits only, so holds of
    /// one concert do not share a lock.
    pub fn lock_key(self) -> i64 {
        let b = self.0.as_bytes();
        i64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]])
    }
}

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a client asks to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldRequest {
    /// These numbered seats, all or none.
    Seats(Vec<SeatId>),
    /// `quantity` places of a general-admission section.
    General { section: SectionId, quantity: u32 },
}

impl HoldRequest {
    /// The most seats or places one request may name. The ticket limit is usually far lower;
    /// this only bounds the work one request can ask of a script.
    pub const MAX_ITEMS: usize = 50;

    /// Validates the two body shapes of `POST /holds`: `{seatIds}` or `{sectionId, quantity}`.
    pub fn parse(
        seat_ids: Option<Vec<i64>>,
        section_id: Option<i64>,
        quantity: Option<i64>,
    ) -> Result<Self> {
        let invalid = |m: &str| Error::InvalidInput(m.to_owned());
        match (seat_ids, section_id, quantity) {
            (Some(ids), None, None) => {
                if ids.is_empty() || ids.len() > Self::MAX_ITEMS {
                    return Err(Error::InvalidInput(format!(
                        "seatIds must name 1 to {} seats",
                        Self::MAX_ITEMS
                    )));
                }
                let mut seen = HashSet::with_capacity(ids.len());
                if !ids.iter().all(|id| *id > 0 && seen.insert(*id)) {
                    return Err(invalid("seatIds must be distinct positive ids"));
                }
                Ok(Self::Seats(ids.into_iter().map(SeatId::new).collect()))
            }
            (None, Some(section), Some(quantity)) => {
                let quantity = u32::try_from(quantity)
                    .ok()
                    .filter(|q| (1..=Self::MAX_ITEMS as u32).contains(q))
                    .ok_or_else(|| {
                        Error::InvalidInput(format!(
                            "quantity must be an integer from 1 to {}",
                            Self::MAX_ITEMS
                        ))
                    })?;
                if section <= 0 {
                    return Err(invalid("sectionId must be a positive id"));
                }
                Ok(Self::General {
                    section: SectionId::new(section),
                    quantity,
                })
            }
            _ => Err(invalid(
                "send either {\"seatIds\": [...]} or {\"sectionId\": ..., \"quantity\": ...}",
            )),
        }
    }
}

/// A seat of a hold, as the client sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HeldSeat {
    pub seat_id: SeatId,
    pub seat_no: String,
}

/// A placed hold (`201` of `POST /holds`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub hold_id: HoldId,
    pub schedule_id: ScheduleId,
    pub expires_at: DateTime<Utc>,
    pub seats: Vec<HeldSeat>,
    pub quantity: u32,
    pub amount: i64,
}

/// Where a change to holds touched the inventory, so a replica can evict exactly the cached
/// views it made stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    pub schedule: ScheduleId,
    /// The general-admission section, for a GA hold.
    pub section: Option<SectionId>,
    /// The numbered seats, for a seat hold.
    pub seats: Vec<SeatId>,
}

/// The lifecycle events the worker mirrors into Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldEventKind {
    Held,
    Released,
    Expired,
    Paid,
}

impl HoldEventKind {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "held" => Self::Held,
            "released" => Self::Released,
            "expired" => Self::Expired,
            "paid" => Self::Paid,
            _ => return None,
        })
    }

    /// The `holds.status` this event leads to.
    pub fn status(self) -> &'static str {
        match self {
            Self::Held => "HELD",
            Self::Released => "RELEASED",
            Self::Expired => "EXPIRED",
            Self::Paid => "PAID",
        }
    }

    /// Precedence of the status: a row only ever moves to a higher rank, so replayed or
    /// reordered events cannot move a hold backwards (HELD < RELEASED = EXPIRED < PAID).
    pub fn rank(self) -> u8 {
        match self {
            Self::Held => 0,
            Self::Released | Self::Expired => 1,
            Self::Paid => 2,
        }
    }
}

/// One entry of a concert's hold-event stream. Every event carries the whole hold, so the
/// sink can write any of them first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldEvent {
    pub kind: HoldEventKind,
    pub hold: HoldId,
    pub user: UserId,
    pub schedule: ScheduleId,
    pub section: Option<SectionId>,
    pub seats: Vec<SeatId>,
    pub quantity: i32,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
}

impl HoldEvent {
    /// Parses one stream entry's field/value pairs: either a batch of holds granted together
    /// (`t held sc se x n`, then `h` per hold; see `hold_ga.lua`) or a single event
    /// ([`Self::from_fields`]). `None` when any part does not parse.
    pub fn parse_entry<'a>(fields: &[(&'a str, &'a str)]) -> Option<Vec<Self>> {
        let get = |name: &str| fields.iter().find(|(f, _)| *f == name).map(|(_, v)| *v);
        let Some(count) = get("n") else {
            return Self::from_fields(fields.iter().copied()).map(|e| vec![e]);
        };
        let kind = HoldEventKind::parse(get("t")?)?;
        let schedule = ScheduleId::new(get("sc")?.parse().ok()?);
        let section = parse_section(get("se")?)?;
        let expires_at = DateTime::from_timestamp_millis(get("x")?.parse().ok()?)?;
        let events = fields
            .iter()
            .filter(|(f, _)| *f == "h")
            .map(|(_, packed)| {
                let mut parts = packed.split('|');
                let (h, u, q, a, s) = (
                    parts.next()?,
                    parts.next()?,
                    parts.next()?,
                    parts.next()?,
                    parts.next()?,
                );
                Some(Self {
                    kind,
                    hold: HoldId::new(Uuid::parse_str(h).ok()?),
                    user: UserId::new(u.parse().ok()?),
                    schedule,
                    section,
                    seats: parse_seats(s)?,
                    quantity: q.parse().ok()?,
                    amount: a.parse().ok()?,
                    expires_at,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        // A count that disagrees means a malformed entry, not a shorter batch.
        (events.len() == count.parse::<usize>().ok()?).then_some(events)
    }

    /// Parses the field/value pairs of a single event (`t h u sc se s q a x`).
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        let (mut t, mut h, mut u, mut sc, mut se, mut s, mut q, mut a, mut x) =
            (None, None, None, None, None, None, None, None, None);
        for (field, value) in fields {
            let slot = match field {
                "t" => &mut t,
                "h" => &mut h,
                "u" => &mut u,
                "sc" => &mut sc,
                "se" => &mut se,
                "s" => &mut s,
                "q" => &mut q,
                "a" => &mut a,
                "x" => &mut x,
                _ => continue,
            };
            *slot = Some(value);
        }
        Some(Self {
            kind: HoldEventKind::parse(t?)?,
            hold: HoldId::new(Uuid::parse_str(h?).ok()?),
            user: UserId::new(u?.parse().ok()?),
            schedule: ScheduleId::new(sc?.parse().ok()?),
            section: parse_section(se?)?,
            seats: parse_seats(s?)?,
            quantity: q?.parse().ok()?,
            amount: a?.parse().ok()?,
            expires_at: DateTime::from_timestamp_millis(x?.parse().ok()?)?,
        })
    }
}

/// A stream entry's section: empty for a seated hold; `None` when it does not parse.
fn parse_section(raw: &str) -> Option<Option<SectionId>> {
    match raw {
        "" => Some(None),
        raw => raw.parse().ok().map(|id| Some(SectionId::new(id))),
    }
}

/// A stream entry's comma-separated seat ids, empty for a GA hold; `None` when one does not
/// parse.
fn parse_seats(raw: &str) -> Option<Vec<SeatId>> {
    if raw.is_empty() {
        return Some(Vec::new());
    }
    raw.split(',')
        .map(|id| id.parse().ok().map(SeatId::new))
        .collect()
}

/// A seat's state in the seat map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeatStatus {
    Available,
    Held,
    Sold,
}

impl SeatStatus {
    /// The status of a seat from its `seat_owners` value.
    pub fn from_owner(owner: Option<&str>) -> Self {
        match owner {
            None => Self::Available,
            Some("sold") => Self::Sold,
            Some(_) => Self::Held,
        }
    }
}

/// One seat of the seat map.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatView {
    pub seat_id: SeatId,
    pub seat_no: String,
    pub price: i64,
    pub status: SeatStatus,
}

/// `GET /schedules/{id}/seats?section=ID`.
#[derive(Debug, Clone, Serialize)]
pub struct SeatMap {
    pub items: Vec<SeatView>,
}

/// One section of `GET /schedules/{id}/sections`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SectionView {
    #[serde(flatten)]
    pub section: crate::concerts::Section,
    /// Tickets neither held nor sold.
    pub remaining: i64,
}

/// `GET /schedules/{id}/sections`.
#[derive(Debug, Clone, Serialize)]
pub struct Sections {
    pub items: Vec<SectionView>,
}

/// What the purchase path's operations reach: both stores, the scripts, the settings and what
/// this replica remembers.
#[derive(Clone, Copy)]
pub struct Store<'a> {
    pub pg: &'a deadpool_postgres::Pool,
    pub redis: &'a fred::prelude::Pool,
    pub scripts: &'a Scripts,
    pub keys: &'a Keys,
    pub config: &'a Config,
    pub replica: &'a Replica,
    pub batches: &'a batch::Batcher,
}

/// What one gateway process remembers between requests about holds: when it last registered
/// each concert on the worker's work list, and which schedules it is loading into Redis.
#[derive(Debug, Default)]
pub struct Replica {
    registrations: Mutex<HashMap<ConcertId, Instant>>,
    loads: Mutex<HashMap<ScheduleId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Replica {
    /// How often a replica refreshes a busy concert's registration. Far below the worker's
    /// retirement age (a minute), which is what makes skipping refreshes safe.
    pub const REFRESH: Duration = Duration::from_secs(1);

    // The std Mutexes below are held for one map lookup or insert, never across an await.

    fn registration_due(&self, concert: ConcertId) -> bool {
        let map = self.registrations.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&concert)
            .is_none_or(|at| at.elapsed() >= Self::REFRESH)
    }

    fn registered(&self, concert: ConcertId) {
        let mut map = self.registrations.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(concert, Instant::now());
    }

    /// The gate one replica's loads of `schedule` queue on, so that a burst of first requests
    /// reads one Postgres snapshot, not one each (which would drain the pool).
    fn load_gate(&self, schedule: ScheduleId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.loads.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(schedule).or_default().clone()
    }
}

/// How long an ended (released, expired or paid) hold's record stays in Redis to answer late
/// requests (a payment after expiry gets 410 from it). An hour covers any client retry; after
/// that, the hold's Postgres row gives the same answer.
pub const ENDED_HOLD_RETENTION_MS: i64 = 3_600_000;

/// Places a hold for `user` on `schedule` (whose seats are `seats`).
///
/// Checks the sale window first (403 SALE_NOT_OPEN), prices the request from the catalogue,
/// and takes the seats or places in one atomic Redis step. A schedule used for the first time
/// is loaded from Postgres and the step retried once.
pub async fn place(
    store: Store<'_>,
    schedule: &Schedule,
    seats: &ScheduleSeats,
    user: UserId,
    request: HoldRequest,
) -> Result<(Hold, Footprint)> {
    let kind = match request {
        HoldRequest::Seats(_) => "seats",
        HoldRequest::General { .. } => "ga",
    };
    let result = place_inner(store, schedule, seats, user, request).await;
    let outcome = match &result {
        Ok(_) => "held",
        Err(e) => e.code(),
    };
    metrics::counter!("boxoffice_holds_total", "kind" => kind, "outcome" => outcome).increment(1);
    result
}

async fn place_inner(
    store: Store<'_>,
    schedule: &Schedule,
    seats: &ScheduleSeats,
    user: UserId,
    request: HoldRequest,
) -> Result<(Hold, Footprint)> {
    schedule.check_sale_open(Utc::now())?;
    // Before the hold, not after: a request dropped in between (the client went away) then
    // leaves a registration and no hold, never a hold the worker does not know to expire.
    redis::register(store, schedule.concert).await?;
    let id = HoldId::generate(schedule.concert);
    let take = |amount, wanted| {
        store.batches.hold(batch::Order {
            concert: schedule.concert,
            schedule: schedule.id,
            hold: id,
            user,
            amount,
            wanted,
        })
    };
    let (expires_ms, held, quantity, amount, footprint) = match request {
        HoldRequest::Seats(ids) => {
            let chosen = ids
                .iter()
                .map(|id| {
                    seats.get(*id).ok_or_else(|| {
                        Error::InvalidInput(format!("seat {id} is not in this schedule"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let amount = chosen.iter().map(|s| s.price).sum();
            let expires_ms = loaded_then(store, schedule, || {
                take(amount, batch::Wanted::Seats(ids.clone()))
            })
            .await?;
            let held = chosen
                .iter()
                .map(|s| HeldSeat {
                    seat_id: s.id,
                    seat_no: s.seat_no.clone(),
                })
                .collect();
            let quantity = ids.len() as u32;
            let footprint = Footprint {
                schedule: schedule.id,
                section: None,
                seats: ids,
            };
            (expires_ms, held, quantity, amount, footprint)
        }
        HoldRequest::General { section, quantity } => {
            let section = schedule.section(section)?;
            if section.kind != SectionKind::Ga {
                return Err(Error::InvalidInput(
                    "this section has numbered seats: hold them with seatIds".into(),
                ));
            }
            let amount = section.price * i64::from(quantity);
            let expires_ms = loaded_then(store, schedule, || {
                take(
                    amount,
                    batch::Wanted::Places {
                        section: section.id,
                        quantity,
                    },
                )
            })
            .await?;
            let footprint = Footprint {
                schedule: schedule.id,
                section: Some(section.id),
                seats: Vec::new(),
            };
            (expires_ms, Vec::new(), quantity, amount, footprint)
        }
    };
    let hold = Hold {
        hold_id: id,
        schedule_id: schedule.id,
        expires_at: DateTime::from_timestamp_millis(expires_ms)
            .ok_or_else(|| anyhow::anyhow!("hold expiry {expires_ms} out of range"))?,
        seats: held,
        quantity,
        amount,
    };
    Ok((hold, footprint))
}

/// Runs a Redis step that answers `None` when the schedule is not loaded; loads it and runs
/// the step once more in that case.
async fn loaded_then<T, F, Fut>(store: Store<'_>, schedule: &Schedule, step: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    if let Some(value) = step().await? {
        return Ok(value);
    }
    ensure_loaded(store, schedule).await?;
    // Loaded a moment ago, so a second `None` means the data vanished again (Redis restarted
    // between the two calls): a dependency failure, safe to retry.
    step().await?.ok_or(Error::Unavailable("redis"))
}

/// Releases `user`'s hold early (`DELETE /holds/{id}`).
///
/// Idempotent: releasing a hold that already ended (released or expired) succeeds. A paid or
/// being-paid hold cannot be released (409); another user's hold does not exist for this one
/// (404), whatever its state.
pub async fn release(store: Store<'_>, user: UserId, hold: HoldId) -> Result<Footprint> {
    let Some(record) = redis::record(store, hold).await? else {
        return match pg::settled(store.pg, user, hold).await? {
            pg::Settled::Ended => Err(Error::HoldNotFound),
            pg::Settled::Refused(e) => Err(e),
            pg::Settled::Live(schedule) => {
                // Redis lost the hold (its data was wiped): rebuild the schedule, then retry.
                let schedule = crate::concerts::pg::schedule(store.pg, schedule).await?;
                ensure_loaded(store, &schedule).await?;
                match redis::record(store, hold).await? {
                    Some(record) => release_record(store, user, hold, record).await,
                    None => Err(Error::HoldNotFound),
                }
            }
        };
    };
    release_record(store, user, hold, record).await
}

async fn release_record(
    store: Store<'_>,
    user: UserId,
    hold: HoldId,
    record: redis::HoldRecord,
) -> Result<Footprint> {
    if record.user != user {
        return Err(Error::HoldNotFound);
    }
    let outcome = redis::end_holds(store, redis::EndMode::Release(user), &[(hold, &record)])
        .await?
        .pop()
        .unwrap_or(redis::Ended::Missing);
    match outcome {
        redis::Ended::Released | redis::Ended::Expired => {
            let reason = if outcome == redis::Ended::Released {
                "released"
            } else {
                "expired"
            };
            metrics::counter!("boxoffice_holds_ended_total", "reason" => reason).increment(1);
            Ok(record.footprint())
        }
        redis::Ended::AlreadyEnded | redis::Ended::NotDue => Ok(record.footprint()),
        redis::Ended::Paid => Err(Error::HoldAlreadyPaid),
        redis::Ended::Missing => Err(Error::HoldNotFound),
    }
}

/// What one sweep of a concert did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Holds ended as expired.
    pub expired: usize,
}

/// Ends every hold of `concert` whose expiry has passed, `batch` at a time, giving their seats
/// and places back. Run by the worker on every tick, so seats come back on time whether or not
/// anyone reads them.
pub async fn expire_due(hot: redis::Hot<'_>, concert: ConcertId, batch: i64) -> Result<Sweep> {
    let mut sweep = Sweep::default();
    loop {
        let due = redis::due(hot, concert, crate::now_ms(), batch).await?;
        if due.is_empty() {
            return Ok(sweep);
        }
        let records =
            futures::future::try_join_all(due.iter().map(|id| redis::read_record(hot, *id)))
                .await?;
        // A due id without a record is dropped from the set by the script; it needs no keys
        // beyond the set, so a placeholder record names them.
        let placeholder = redis::HoldRecord {
            user: UserId::new(0),
            schedule: ScheduleId::new(0),
            section: None,
            seats: Vec::new(),
        };
        let pairs: Vec<(HoldId, &redis::HoldRecord)> = due
            .iter()
            .zip(&records)
            .map(|(id, record)| (*id, record.as_ref().unwrap_or(&placeholder)))
            .collect();
        let ended = redis::end(hot, redis::EndMode::Expire, &pairs).await?;
        let expired = ended
            .iter()
            .filter(|e| **e == redis::Ended::Expired)
            .count();
        sweep.expired += expired;
        // Stop at a short batch, or when nothing moved: holds that are due by this worker's
        // clock but not yet by Redis's (the scripts' clock) wait for the next tick.
        let dropped = ended
            .iter()
            .filter(|e| **e == redis::Ended::Missing)
            .count();
        if (due.len() as i64) < batch || expired + dropped == 0 {
            return Ok(sweep);
        }
    }
}

/// Loads `schedule`'s inventory into Redis from Postgres unless it is there already.
///
/// Safe to call concurrently from every replica: within a replica the loads queue on one gate
/// per schedule; across replicas the load script runs once per schedule and the others find
/// the marker and do nothing. The snapshot is taken before the script runs;
/// nothing is sold from the schedule in between (every selling path requires the marker), so
/// it cannot go stale in that window.
pub async fn ensure_loaded(store: Store<'_>, schedule: &Schedule) -> Result<()> {
    if redis::is_loaded(store, schedule).await? {
        return Ok(());
    }
    let gate = store.replica.load_gate(schedule.id);
    let _loading = gate.lock().await;
    // Whoever held the gate before us has probably loaded it.
    if redis::is_loaded(store, schedule).await? {
        return Ok(());
    }
    let snapshot = pg::snapshot(store.pg, schedule).await?;
    if redis::load_inventory(store, schedule, &snapshot).await? {
        tracing::info!(schedule = %schedule.id, sold = snapshot.sold.len(), holds = snapshot.holds.len(), "inventory loaded from postgres");
        metrics::counter!("boxoffice_holds_inventory_loads_total").increment(1);
    }
    Ok(())
}

/// The seat map of one section: the static seats merged with their live status in Redis.
pub async fn seat_map(
    store: Store<'_>,
    schedule: &Schedule,
    seats: &ScheduleSeats,
    section: SectionId,
) -> Result<SeatMap> {
    let section = schedule.section(section)?;
    let in_section = seats.in_section(section.id);
    let ids: Vec<SeatId> = in_section.iter().map(|s| s.id).collect();
    let owners = loaded_then(store, schedule, || {
        redis::seat_owners(store, schedule, &ids)
    })
    .await?;
    Ok(SeatMap {
        items: in_section
            .iter()
            .zip(owners)
            .map(|(seat, owner)| SeatView {
                seat_id: seat.id,
                seat_no: seat.seat_no.clone(),
                price: seat.price,
                status: SeatStatus::from_owner(owner.as_deref()),
            })
            .collect(),
    })
}

/// The sections of a schedule with what is left in each.
///
/// A seated section's `remaining` is its capacity less its held and sold seats (one `HGETALL`
/// of the schedule's owners); a GA section's is its Redis counter, which already counts holds.
pub async fn sections(
    store: Store<'_>,
    schedule: &Schedule,
    seats: &ScheduleSeats,
) -> Result<Sections> {
    ensure_loaded(store, schedule).await?;
    let taken = redis::taken(store, schedule).await?;
    let mut taken_by_section: HashMap<SectionId, i64> = HashMap::new();
    for seat in &taken.seats {
        if let Some(seat) = seats.get(*seat) {
            *taken_by_section.entry(seat.section).or_default() += 1;
        }
    }
    let items = schedule
        .sections
        .iter()
        .map(|section| {
            let remaining = match section.kind {
                SectionKind::Ga => taken.ga.get(&section.id).copied().unwrap_or(0),
                SectionKind::Seated => {
                    i64::from(section.capacity)
                        - taken_by_section.get(&section.id).copied().unwrap_or(0)
                }
            };
            SectionView {
                section: section.clone(),
                remaining: remaining.max(0),
            }
        })
        .collect();
    Ok(Sections { items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_id_carries_its_concert_and_parses_back() {
        for concert in [1, 42, 10_001, (1 << 47) - 1] {
            let id = HoldId::generate(ConcertId::new(concert));
            assert_eq!(id.concert(), ConcertId::new(concert));
            assert_eq!(HoldId::parse(&id.to_string()).unwrap(), id);
        }
        assert_ne!(
            HoldId::generate(ConcertId::new(1)),
            HoldId::generate(ConcertId::new(1))
        );
    }

    #[test]
    fn foreign_hold_ids_name_no_hold() {
        for raw in ["nope", "", &Uuid::new_v4().to_string()] {
            assert!(
                matches!(HoldId::parse(raw), Err(Error::HoldNotFound)),
                "{raw}"
            );
        }
    }

    #[test]
    fn hold_requests_take_exactly_one_shape() {
        assert_eq!(
            HoldRequest::parse(Some(vec![3, 4]), None, None).unwrap(),
            HoldRequest::Seats(vec![SeatId::new(3), SeatId::new(4)])
        );
        assert_eq!(
            HoldRequest::parse(None, Some(9), Some(2)).unwrap(),
            HoldRequest::General {
                section: SectionId::new(9),
                quantity: 2
            }
        );
        for (seats, section, quantity) in [
            (None, None, None),
            (Some(vec![]), None, None),
            (Some(vec![1, 1]), None, None),
            (Some(vec![-1]), None, None),
            (Some(vec![1]), Some(2), Some(1)),
            (None, Some(2), None),
            (None, Some(2), Some(0)),
            (None, Some(2), Some(-1)),
            (None, Some(2), Some(51)),
        ] {
            assert!(
                matches!(
                    HoldRequest::parse(seats.clone(), section, quantity),
                    Err(Error::InvalidInput(_))
                ),
                "{seats:?} {section:?} {quantity:?}"
            );
        }
    }

    #[test]
    fn events_parse_from_stream_fields() {
        let hold = HoldId::generate(ConcertId::new(5));
        let h = hold.to_string();
        let fields = [
            ("t", "expired"),
            ("h", h.as_str()),
            ("u", "7"),
            ("sc", "3"),
            ("se", ""),
            ("s", "10,11"),
            ("q", "2"),
            ("a", "200"),
            ("x", "1700000000000"),
        ];
        let event = HoldEvent::from_fields(fields).unwrap();
        assert_eq!(event.kind, HoldEventKind::Expired);
        assert_eq!(event.hold, hold);
        assert_eq!(event.seats, vec![SeatId::new(10), SeatId::new(11)]);
        assert_eq!(event.section, None);
        assert!(HoldEvent::from_fields(fields.into_iter().filter(|(f, _)| *f != "u")).is_none());
    }

    #[test]
    fn a_batch_entry_gives_one_event_per_hold_and_nothing_when_its_count_disagrees() {
        let (a, b) = (
            HoldId::generate(ConcertId::new(5)),
            HoldId::generate(ConcertId::new(5)),
        );
        let (ha, hb) = (format!("{a}|7|2|200|10,11"), format!("{b}|8|1|100|12"));
        let fields = [
            ("t", "held"),
            ("sc", "3"),
            ("se", ""),
            ("x", "1700000000000"),
            ("n", "2"),
            ("h", ha.as_str()),
            ("h", hb.as_str()),
        ];
        let events = HoldEvent::parse_entry(&fields).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].hold, events[1].hold), (a, b));
        assert_eq!(events[0].seats, vec![SeatId::new(10), SeatId::new(11)]);
        assert_eq!(
            (events[1].user, events[1].quantity, events[1].amount),
            (UserId::new(8), 1, 100)
        );
        assert!(events.iter().all(|e| e.kind == HoldEventKind::Held
            && e.schedule == ScheduleId::new(3)
            && e.section.is_none()
            && e.expires_at.timestamp_millis() == 1_700_000_000_000));

        let mut short = fields;
        short[4] = ("n", "3");
        assert!(HoldEvent::parse_entry(&short).is_none());
        let mut garbled = fields;
        garbled[6] = ("h", "not-a-hold|8|1|100|");
        assert!(HoldEvent::parse_entry(&garbled).is_none());
    }

    #[test]
    fn status_precedence_never_moves_a_hold_backwards() {
        use HoldEventKind::*;
        assert!(Held.rank() < Released.rank());
        assert_eq!(Released.rank(), Expired.rank());
        assert!(Expired.rank() < Paid.rank());
    }
}
