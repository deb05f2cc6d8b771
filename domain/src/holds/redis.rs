//! Holds in Redis: the scripts that take and give back seats and places, the general-admission
//! counter, the inventory load, the seat-owner reads and the hold-event stream.

use std::collections::HashMap;

use fred::{prelude::*, types::Value};

use super::{Footprint, HoldEvent, HoldId, Store};
use crate::{
    concerts::{ConcertId, Schedule, ScheduleId, SeatId, SectionId},
    identity::UserId,
    redis::{
        keys::SINK_GROUP,
        scripts::{int, Tagged},
        Keys, Scripts,
    },
    Error, Result,
};

/// The hot state: Redis, its scripts and its keyspace. What the worker's loops and the
/// gateway's paths share.
#[derive(Clone, Copy)]
pub struct Hot<'a> {
    pub redis: &'a Pool,
    pub scripts: &'a Scripts,
    pub keys: &'a Keys,
}

impl<'a> Store<'a> {
    /// The Redis half of the store.
    pub fn hot(self) -> Hot<'a> {
        Hot {
            redis: self.redis,
            scripts: self.scripts,
            keys: self.keys,
        }
    }
}

fn ttl_ms(store: Store<'_>) -> i64 {
    i64::try_from(store.config.hold_ttl.as_millis()).unwrap_or(i64::MAX)
}

/// One set of seats to hold, for [`hold_seats`].
pub struct SeatsWanted<'a> {
    pub hold: HoldId,
    pub user: UserId,
    pub amount: i64,
    pub seats: &'a [SeatId],
}

/// One hold of general-admission places, for [`hold_general`].
pub struct PlacesWanted {
    pub hold: HoldId,
    pub user: UserId,
    pub quantity: u32,
    pub amount: i64,
}

/// What one wanted hold got: its expiry (epoch ms), `None` when the schedule's inventory is
/// not loaded yet, or its refusal.
pub type Placed = Result<Option<i64>>;

/// Takes each set of seats of `schedule` for its new hold, in order, in one script call;
/// answers each set. An `Err` of the call itself (Redis unreachable) answers none of them.
pub async fn hold_seats(
    store: Store<'_>,
    concert: ConcertId,
    schedule: ScheduleId,
    wanted: &[SeatsWanted<'_>],
) -> Result<Vec<Placed>> {
    let k = store.keys;
    let mut keys = Vec::with_capacity(6 + wanted.len());
    keys.extend([
        k.inventory_loaded(concert, schedule),
        k.seat_owners(concert, schedule),
        k.user_tickets(concert, schedule),
        k.hold_expiry(concert),
        k.hold_paying(concert),
        k.hold_events(concert),
    ]);
    keys.extend(wanted.iter().map(|w| k.hold(concert, w.hold)));
    let mut args = vec![
        schedule.to_string(),
        ttl_ms(store).to_string(),
        store.config.ticket_limit.to_string(),
    ];
    for w in wanted {
        args.extend([
            w.hold.to_string(),
            w.user.to_string(),
            w.amount.to_string(),
            w.seats.len().to_string(),
        ]);
        args.extend(w.seats.iter().map(ToString::to_string));
    }
    let replies: Vec<Vec<Value>> = store
        .scripts
        .run(store.redis, &store.scripts.hold_seats, keys, args)
        .await?;
    answers(
        "hold_seats",
        replies,
        wanted.len(),
        store.config.ticket_limit,
    )
}

/// Takes each hold's places of a general-admission section of `schedule`, in order, in one
/// script call; answers each hold.
///
/// `hold_ga.lua` takes the batch's total off the counter with `DECRBY` (seed 000's counter:
/// atomic, so concurrent batches get distinct results), records each hold that fits and gives
/// back the places of the others (sold out, over the ticket limit) with one `INCRBY`, all in
/// one script, which Redis runs as a transaction. The counter is exact after every batch, and
/// never seen below 0.
///
/// It was `MULTI; DECRBY; EVALSHA; EXEC` in a pipeline, the decrement outside the script as in
/// seed 000. fred flushes after each of those commands when nothing else is queued on the
/// connection: four syscalls per batch here and four reads in Redis, for an atomicity the
/// script alone already gives.
///
/// Sent once and never retried by fred: a retry after a lost connection could run the batch
/// twice when the first run's reply was lost (places taken twice for the same holds: an
/// undersell the audit reports, never an oversell). A `NOSCRIPT` (Redis lost its script cache)
/// means nothing ran: the script is loaded and the call made once more.
pub async fn hold_general(
    store: Store<'_>,
    concert: ConcertId,
    schedule: ScheduleId,
    section: SectionId,
    wanted: &[PlacesWanted],
) -> Result<Vec<Placed>> {
    let k = store.keys;
    let taken: i64 = wanted.iter().map(|w| i64::from(w.quantity)).sum();
    let mut keys: Vec<Key> = Vec::with_capacity(5 + wanted.len());
    keys.extend(
        [
            k.inventory_loaded(concert, schedule),
            k.user_tickets(concert, schedule),
            k.hold_expiry(concert),
            k.hold_events(concert),
            k.ga_remaining(concert, section),
        ]
        .map(Key::from),
    );
    keys.extend(wanted.iter().map(|w| Key::from(k.hold(concert, w.hold))));
    let mut args: Vec<Value> = Vec::with_capacity(5 + 4 * wanted.len());
    args.extend(
        [
            schedule.to_string(),
            section.to_string(),
            ttl_ms(store).to_string(),
            store.config.ticket_limit.to_string(),
            taken.to_string(),
        ]
        .map(Value::from),
    );
    for w in wanted {
        args.extend(
            [
                w.hold.to_string(),
                w.user.to_string(),
                w.quantity.to_string(),
                w.amount.to_string(),
            ]
            .map(Value::from),
        );
    }
    let replies: Vec<Vec<Value>> = store
        .scripts
        .run_once(store.redis, &store.scripts.hold_ga, keys, args)
        .await?;
    answers("hold_ga", replies, wanted.len(), store.config.ticket_limit)
}

/// Each hold's answer from a hold script's replies, one per hold asked for.
fn answers(
    script: &str,
    replies: Vec<Vec<Value>>,
    asked: usize,
    limit: u32,
) -> Result<Vec<Placed>> {
    if replies.len() != asked {
        let answered = replies.len();
        return Err(anyhow::anyhow!("{script} answered {answered} of {asked} holds").into());
    }
    Ok(replies.into_iter().map(|r| placed(r, limit)).collect())
}

fn placed(reply: Vec<Value>, limit: u32) -> Result<Option<i64>> {
    match Tagged::parse(reply)? {
        Tagged::Ok(data) => Ok(Some(int(&data, 0)?)),
        Tagged::Err(code) => match code.as_str() {
            "NOT_LOADED" => Ok(None),
            "SOLD_OUT" => Err(Error::SoldOut),
            "SEAT_UNAVAILABLE" => Err(Error::SeatUnavailable),
            "HOLD_LIMIT_EXCEEDED" => Err(Error::HoldLimitExceeded { limit }),
            other => Err(anyhow::anyhow!("hold script replied {other}").into()),
        },
    }
}

/// Puts `concert` on the worker's work list (or refreshes its registration), before a hold is
/// written. Replicas skip this while their own registration is younger than
/// [`super::Replica::REFRESH`], so a busy concert costs one write per second per
/// replica, not one per hold; the worker only retires concerts not registered for far longer
/// (see [`retire_if_idle`]), so a skipped refresh can never leave a live hold unlisted.
pub async fn register(store: Store<'_>, concert: ConcertId) -> Result<()> {
    if !store.replica.registration_due(concert) {
        return Ok(());
    }
    let _: i64 = store
        .redis
        .zadd(
            store.keys.sales_registry(),
            None,
            None,
            false,
            false,
            (crate::now_ms() as f64, concert.get()),
        )
        .await?;
    store.replica.registered(concert);
    Ok(())
}

/// Whether the schedule's inventory is in Redis.
pub async fn is_loaded(store: Store<'_>, schedule: &Schedule) -> Result<bool> {
    let key = store.keys.inventory_loaded(schedule.concert, schedule.id);
    Ok(store.redis.exists::<i64, _>(key).await? == 1)
}

/// A schedule's inventory as Postgres has it, in the shape `load_inventory.lua` reads. Every
/// value is a string, so Lua never reformats a large number.
#[derive(Debug, Default, serde::Serialize)]
pub struct Snapshot {
    /// Seats sold.
    pub sold: Vec<String>,
    /// Places left in each GA section, in `ga_sections` order (capacity - sold - held).
    pub ga: Vec<String>,
    /// Live holds.
    pub holds: Vec<SnapshotHold>,
    /// Tickets held or bought per user: `[userId, n]`.
    pub tickets: Vec<(String, String)>,
    /// The GA sections, for the keys.
    #[serde(skip)]
    pub ga_sections: Vec<SectionId>,
}

/// A live hold to restore.
#[derive(Debug, serde::Serialize)]
pub struct SnapshotHold {
    #[serde(skip)]
    pub hold: HoldId,
    pub id: String,
    pub user: String,
    pub schedule: String,
    pub section: String,
    pub seats: String,
    pub qty: String,
    pub amount: String,
    pub expires: String,
}

/// Runs the load script; `true` when this call loaded the schedule.
pub async fn load_inventory(
    store: Store<'_>,
    schedule: &Schedule,
    snapshot: &Snapshot,
) -> Result<bool> {
    let (k, c, s) = (store.keys, schedule.concert, schedule.id);
    let mut keys = vec![
        k.inventory_loaded(c, s),
        k.seat_owners(c, s),
        k.user_tickets(c, s),
        k.hold_expiry(c),
    ];
    keys.extend(snapshot.ga_sections.iter().map(|g| k.ga_remaining(c, *g)));
    keys.extend(snapshot.holds.iter().map(|h| k.hold(c, h.hold)));
    let json = serde_json::to_string(snapshot).map_err(anyhow::Error::from)?;
    let reply: Vec<Value> = store
        .scripts
        .run(store.redis, &store.scripts.load_inventory, keys, vec![json])
        .await?;
    match Tagged::parse(reply)? {
        Tagged::Ok(data) => Ok(int(&data, 0)? == 1),
        Tagged::Err(code) => Err(anyhow::anyhow!("load script replied {code}").into()),
    }
}

/// The owner of each of `seats` (`None` = free), or `None` when the schedule is not loaded.
pub async fn seat_owners(
    store: Store<'_>,
    schedule: &Schedule,
    seats: &[SeatId],
) -> Result<Option<Vec<Option<String>>>> {
    if seats.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let (k, c, s) = (store.keys, schedule.concert, schedule.id);
    let fields: Vec<String> = seats.iter().map(ToString::to_string).collect();
    let pipe = store.redis.next().pipeline();
    let _: () = pipe.exists(k.inventory_loaded(c, s)).await?;
    let _: () = pipe.hmget(k.seat_owners(c, s), fields).await?;
    let (loaded, owners): (i64, Vec<Option<String>>) = pipe.all().await?;
    Ok((loaded == 1).then_some(owners))
}

/// What is taken in a schedule: every held or sold seat, and each GA counter.
#[derive(Debug, Default)]
pub struct Taken {
    pub seats: Vec<SeatId>,
    pub ga: HashMap<SectionId, i64>,
}

/// Reads [`Taken`] for a loaded schedule.
pub async fn taken(store: Store<'_>, schedule: &Schedule) -> Result<Taken> {
    let (k, c, s) = (store.keys, schedule.concert, schedule.id);
    let ga: Vec<SectionId> = schedule
        .sections
        .iter()
        .filter(|x| x.kind == crate::concerts::SectionKind::Ga)
        .map(|x| x.id)
        .collect();
    let owners: Vec<String> = store.redis.hkeys(k.seat_owners(c, s)).await?;
    let counters: Vec<Option<i64>> = if ga.is_empty() {
        Vec::new()
    } else {
        let keys: Vec<String> = ga.iter().map(|g| k.ga_remaining(c, *g)).collect();
        if keys.len() == 1 {
            vec![store.redis.get(&keys[0]).await?]
        } else {
            store.redis.mget(keys).await?
        }
    };
    Ok(Taken {
        seats: owners
            .iter()
            .filter_map(|id| id.parse().ok().map(SeatId::new))
            .collect(),
        ga: ga
            .into_iter()
            .zip(counters)
            .map(|(g, n)| (g, n.unwrap_or(0)))
            .collect(),
    })
}

/// Where a hold lives: enough to name every key a script about it touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRecord {
    pub user: UserId,
    pub schedule: ScheduleId,
    pub section: Option<SectionId>,
    pub seats: Vec<SeatId>,
}

impl HoldRecord {
    /// The inventory this hold touches.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            schedule: self.schedule,
            section: self.section,
            seats: self.seats.clone(),
        }
    }
}

/// Reads a hold's record, or `None` when Redis has no such hold.
pub async fn record(store: Store<'_>, hold: HoldId) -> Result<Option<HoldRecord>> {
    read_record(store.hot(), hold).await
}

/// [`record`] for callers without a Postgres pool (the worker).
pub async fn read_record(hot: Hot<'_>, hold: HoldId) -> Result<Option<HoldRecord>> {
    let key = hot.keys.hold(hold.concert(), hold);
    let fields: Vec<Option<String>> = hot
        .redis
        .hmget(key, vec!["user", "schedule", "section", "seats"])
        .await?;
    let [Some(user), Some(schedule), section, seats] = <[Option<String>; 4]>::try_from(fields)
        .map_err(|_| anyhow::anyhow!("HMGET of four fields returned another count"))?
    else {
        return Ok(None);
    };
    let parse = |raw: &str| raw.parse::<i64>().map_err(anyhow::Error::from);
    Ok(Some(HoldRecord {
        user: UserId::new(parse(&user)?),
        schedule: ScheduleId::new(parse(&schedule)?),
        section: match section.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(SectionId::new(parse(raw)?)),
        },
        seats: match seats.as_deref() {
            None | Some("") => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(|id| parse(id).map(SeatId::new))
                .collect::<anyhow::Result<_>>()?,
        },
    }))
}

/// Why holds are being ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndMode {
    /// The owner releases them (only their own).
    Release(UserId),
    /// The worker's sweep ends those that are due.
    Expire,
}

/// What `end_holds.lua` did with one hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// This call released it.
    Released,
    /// This call ended it as expired.
    Expired,
    /// Expire mode: not due yet.
    NotDue,
    /// It had ended before.
    AlreadyEnded,
    /// It is being paid or is paid.
    Paid,
    /// No such hold (or, on release, another user's).
    Missing,
}

/// Ends holds of one concert (all of `holds` must share it).
pub async fn end_holds(
    store: Store<'_>,
    mode: EndMode,
    holds: &[(HoldId, &HoldRecord)],
) -> Result<Vec<Ended>> {
    end(store.hot(), mode, holds).await
}

/// [`end_holds`] for callers without a Postgres pool (the worker).
pub async fn end(
    hot: Hot<'_>,
    mode: EndMode,
    holds: &[(HoldId, &HoldRecord)],
) -> Result<Vec<Ended>> {
    let Some((first, _)) = holds.first() else {
        return Ok(Vec::new());
    };
    let c = first.concert();
    let k = hot.keys;
    let mut keys = Vec::with_capacity(2 + holds.len() * 4);
    keys.extend([k.hold_expiry(c), k.hold_events(c)]);
    let (mode_arg, user_arg) = match mode {
        EndMode::Release(user) => ("release", user.to_string()),
        EndMode::Expire => ("expire", String::new()),
    };
    let mut args = vec![
        mode_arg.to_owned(),
        user_arg,
        super::ENDED_HOLD_RETENTION_MS.to_string(),
    ];
    for (hold, record) in holds {
        debug_assert_eq!(hold.concert(), c, "end_holds takes holds of one concert");
        keys.extend([
            k.hold(c, *hold),
            k.seat_owners(c, record.schedule),
            k.user_tickets(c, record.schedule),
            // A seated hold never touches this key; section 0 names none.
            k.ga_remaining(c, record.section.unwrap_or(SectionId::new(0))),
        ]);
        args.push(hold.to_string());
    }
    let reply: Vec<Value> = hot
        .scripts
        .run(hot.redis, &hot.scripts.end_holds, keys, args)
        .await?;
    reply
        .iter()
        .map(|v| {
            Ok(match v.as_str().as_deref() {
                Some("released") => Ended::Released,
                Some("expired") => Ended::Expired,
                Some("live") => Ended::NotDue,
                Some("ended") => Ended::AlreadyEnded,
                Some("paid") => Ended::Paid,
                Some("missing") => Ended::Missing,
                other => return Err(anyhow::anyhow!("end_holds replied {other:?}").into()),
            })
        })
        .collect()
}

/// Up to `limit` holds of `concert` whose expiry is at or before `now_ms`.
pub async fn due(hot: Hot<'_>, concert: ConcertId, now_ms: i64, limit: i64) -> Result<Vec<HoldId>> {
    let ids: Vec<String> = hot
        .redis
        .zrangebyscore(
            hot.keys.hold_expiry(concert),
            "-inf",
            now_ms,
            false,
            Some((0, limit)),
        )
        .await?;
    Ok(ids
        .iter()
        .filter_map(|id| uuid::Uuid::parse_str(id).ok().map(HoldId::new))
        .collect())
}

/// The concerts on the worker's work list.
pub async fn registered(hot: Hot<'_>) -> Result<Vec<ConcertId>> {
    let ids: Vec<i64> = hot
        .redis
        .zrange(hot.keys.sales_registry(), 0, -1, None, false, None, false)
        .await?;
    Ok(ids.into_iter().map(ConcertId::new).collect())
}

async fn is_idle(hot: Hot<'_>, concert: ConcertId) -> Result<bool> {
    let k = hot.keys;
    let pipe = hot.redis.next().pipeline();
    let _: () = pipe.zcard(k.hold_expiry(concert)).await?;
    let _: () = pipe.zcard(k.hold_paying(concert)).await?;
    let _: () = pipe.xlen(k.hold_events(concert)).await?;
    let (held, paying, events): (i64, i64, i64) = pipe.all().await?;
    Ok(held == 0 && paying == 0 && events == 0)
}

/// Takes `concert` off the work list when it has no live hold, no claim and no unwritten
/// event, and no gateway registered it since `cutoff_ms`.
///
/// Why no hold can be left unlisted: every hold is followed by a registration or comes within
/// a replica's refresh interval of one, so a hold placed after the idle check either
/// registers the concert after the removal (listed again) or finds a registration younger
/// than the cutoff (not removed). A last look after the removal puts it back regardless.
pub async fn retire_if_idle(hot: Hot<'_>, concert: ConcertId, cutoff_ms: i64) -> Result<bool> {
    if !is_idle(hot, concert).await? {
        return Ok(false);
    }
    let registry = hot.keys.sales_registry();
    let removed: i64 = hot
        .scripts
        .run(
            hot.redis,
            &hot.scripts.retire_concert,
            vec![registry.clone()],
            vec![concert.get(), cutoff_ms],
        )
        .await?;
    if removed == 0 {
        return Ok(false);
    }
    if is_idle(hot, concert).await? {
        return Ok(true);
    }
    let _: i64 = hot
        .redis
        .zadd(
            &registry,
            None,
            None,
            false,
            false,
            (crate::now_ms() as f64, concert.get()),
        )
        .await?;
    Ok(false)
}

// --- the hold-event stream ------------------------------------------------------------------

/// One stream entry: its id, and its events when it parses (a batch of holds granted
/// together is one entry).
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub events: Option<Vec<HoldEvent>>,
}

/// Where to read a concert's stream from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// Entries never delivered to any consumer (`>`).
    New,
    /// Entries delivered to this consumer and not acknowledged (a batch that failed).
    OwnPending,
    /// Entries another consumer left pending longer than `idle_ms` (it died): `XAUTOCLAIM`.
    Abandoned { idle_ms: u64 },
}

/// Creates the sink's consumer group on `concert`'s stream (and the stream), from the start,
/// so no event written before the group existed is missed. Idempotent.
pub async fn ensure_group(hot: Hot<'_>, concert: ConcertId) -> Result<()> {
    let created: Result<(), _> = hot
        .redis
        .xgroup_create(hot.keys.hold_events(concert), SINK_GROUP, "0", true)
        .await;
    match created {
        Err(e) if e.details().starts_with("BUSYGROUP") => Ok(()),
        other => Ok(other?),
    }
}

/// Reads up to `count` entries for `consumer`.
pub async fn read_events(
    hot: Hot<'_>,
    concert: ConcertId,
    consumer: &str,
    from: ReadFrom,
    count: u64,
) -> Result<Vec<Entry>> {
    let key = hot.keys.hold_events(concert);
    let value: Value = match from {
        ReadFrom::New | ReadFrom::OwnPending => {
            let id = if from == ReadFrom::New { ">" } else { "0" };
            let reply: Value = hot
                .redis
                .xreadgroup(SINK_GROUP, consumer, Some(count), None, false, &key, id)
                .await?;
            // [[key, entries]] under RESP2 (the protocol we speak); nil when there are none.
            match reply {
                Value::Array(streams) => streams
                    .into_iter()
                    .next()
                    .map(|s| s.into_array().into_iter().nth(1).unwrap_or(Value::Null))
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            }
        }
        ReadFrom::Abandoned { idle_ms } => {
            let reply: Value = hot
                .redis
                .xautoclaim(
                    &key,
                    SINK_GROUP,
                    consumer,
                    idle_ms,
                    "0-0",
                    Some(count),
                    false,
                )
                .await?;
            // [next-cursor, entries, deleted-ids]
            reply.into_array().into_iter().nth(1).unwrap_or(Value::Null)
        }
    };
    Ok(parse_entries(value))
}

fn parse_entries(value: Value) -> Vec<Entry> {
    if value.is_null() {
        return Vec::new();
    }
    value
        .into_array()
        .into_iter()
        .filter_map(|entry| {
            let mut parts = entry.into_array().into_iter();
            let id = parts.next()?.as_string()?;
            // An entry deleted while pending comes back with nil fields: nothing to write.
            let fields: Vec<String> = parts
                .next()
                .filter(|f| !f.is_null())
                .map(|f| f.into_array().iter().filter_map(Value::as_string).collect())
                .unwrap_or_default();
            let pairs: Vec<(&str, &str)> = fields
                .chunks_exact(2)
                .map(|pair| (pair[0].as_str(), pair[1].as_str()))
                .collect();
            let events = HoldEvent::parse_entry(&pairs);
            Some(Entry { id, events })
        })
        .collect()
}

/// Acknowledges entries written to Postgres and trims the stream up to the first entry not yet
/// written (`ack_events.lua`), so the stream's length is the sink's lag.
pub async fn ack(hot: Hot<'_>, concert: ConcertId, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut args = Vec::with_capacity(1 + ids.len());
    args.push(SINK_GROUP.to_owned());
    args.extend_from_slice(ids);
    let _: Vec<Value> = hot
        .scripts
        .run(
            hot.redis,
            &hot.scripts.ack_events,
            hot.keys.hold_events(concert),
            args,
        )
        .await?;
    Ok(())
}

/// Entries of `concert`'s stream not yet written to Postgres (see [`ack`]).
pub async fn lag(hot: Hot<'_>, concert: ConcertId) -> Result<i64> {
    Ok(hot.redis.xlen(hot.keys.hold_events(concert)).await?)
}
