//! Holds in Redis: the scripts that take and give back seats and places, the general-admission
//! counter, the inventory load and the reads of seat owners and hold records. The hold-event
//! stream is [`super::events`]; a hold's payment steps are [`super::claim`].

use std::collections::HashMap;

use fred::{prelude::*, types::Value};

use super::{
    hold::{HoldRecord, ENDED_HOLD_RETENTION_MS},
    snapshot::Snapshot,
};
use crate::{
    concerts::{Schedule, SectionKind},
    ids::{ConcertId, HoldId, ScheduleId, SeatId, SectionId, UserId},
    redis::{
        scripts::{int, Tagged},
        Hot,
    },
    Error, Result,
};

/// The terms every new hold is placed on, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Terms {
    /// How long a hold lives, in ms.
    pub ttl_ms: i64,
    /// The most tickets one user may hold or buy for one schedule.
    pub ticket_limit: u32,
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
    hot: &Hot,
    terms: Terms,
    concert: ConcertId,
    schedule: ScheduleId,
    wanted: &[SeatsWanted<'_>],
) -> Result<Vec<Placed>> {
    let k = &hot.keys;
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
        terms.ttl_ms.to_string(),
        terms.ticket_limit.to_string(),
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
    let replies: Vec<Vec<Value>> = hot.run(&hot.scripts.hold_seats, keys, args).await?;
    answers("hold_seats", replies, wanted.len(), terms.ticket_limit)
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
    hot: &Hot,
    terms: Terms,
    concert: ConcertId,
    schedule: ScheduleId,
    section: SectionId,
    wanted: &[PlacesWanted],
) -> Result<Vec<Placed>> {
    let k = &hot.keys;
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
            terms.ttl_ms.to_string(),
            terms.ticket_limit.to_string(),
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
    let replies: Vec<Vec<Value>> = hot.run_once(&hot.scripts.hold_ga, keys, args).await?;
    answers("hold_ga", replies, wanted.len(), terms.ticket_limit)
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

/// Whether the schedule's inventory is in Redis.
pub async fn is_loaded(hot: &Hot, schedule: &Schedule) -> Result<bool> {
    let key = hot.keys.inventory_loaded(schedule.concert, schedule.id);
    Ok(hot.pool.next().exists::<i64, _>(key).await? == 1)
}

/// Runs the load script; `true` when this call loaded the schedule.
pub async fn load_inventory(hot: &Hot, schedule: &Schedule, snapshot: &Snapshot) -> Result<bool> {
    let (k, c, s) = (&hot.keys, schedule.concert, schedule.id);
    let mut keys = vec![
        k.inventory_loaded(c, s),
        k.seat_owners(c, s),
        k.user_tickets(c, s),
        k.hold_expiry(c),
    ];
    keys.extend(snapshot.ga_sections.iter().map(|g| k.ga_remaining(c, *g)));
    keys.extend(snapshot.holds.iter().map(|h| k.hold(c, h.hold)));
    let json = serde_json::to_string(snapshot).map_err(anyhow::Error::from)?;
    let reply: Vec<Value> = hot
        .run(&hot.scripts.load_inventory, keys, vec![json])
        .await?;
    match Tagged::parse(reply)? {
        Tagged::Ok(data) => Ok(int(&data, 0)? == 1),
        Tagged::Err(code) => Err(anyhow::anyhow!("load script replied {code}").into()),
    }
}

/// The owner of each of `seats` (`None` = free), or `None` when the schedule is not loaded.
pub async fn seat_owners(
    hot: &Hot,
    schedule: &Schedule,
    seats: &[SeatId],
) -> Result<Option<Vec<Option<String>>>> {
    if seats.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let (k, c, s) = (&hot.keys, schedule.concert, schedule.id);
    let fields: Vec<String> = seats.iter().map(ToString::to_string).collect();
    let pipe = hot.pool.next().pipeline();
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
pub async fn taken(hot: &Hot, schedule: &Schedule) -> Result<Taken> {
    let (k, c, s) = (&hot.keys, schedule.concert, schedule.id);
    let ga: Vec<SectionId> = schedule
        .sections
        .iter()
        .filter(|x| x.kind == SectionKind::Ga)
        .map(|x| x.id)
        .collect();
    let owners: Vec<String> = hot.pool.next().hkeys(k.seat_owners(c, s)).await?;
    let counters: Vec<Option<i64>> = if ga.is_empty() {
        Vec::new()
    } else {
        let keys: Vec<String> = ga.iter().map(|g| k.ga_remaining(c, *g)).collect();
        if keys.len() == 1 {
            vec![hot.pool.next().get(&keys[0]).await?]
        } else {
            hot.pool.next().mget(keys).await?
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

/// Reads a hold's record, or `None` when Redis has no such hold.
pub async fn read_record(hot: &Hot, hold: HoldId) -> Result<Option<HoldRecord>> {
    let key = hot.keys.hold(hold.concert(), hold);
    let fields: Vec<Option<String>> = hot
        .pool
        .next()
        .hmget(key, vec!["user", "schedule", "section", "seats"])
        .await?;
    let [Some(user), Some(schedule), section, seats] = <[Option<String>; 4]>::try_from(fields)
        .map_err(|_| anyhow::anyhow!("HMGET of four fields returned another count"))?
    else {
        return Ok(None);
    };
    let parse = |raw: &str| raw.parse::<i64>().map_err(anyhow::Error::from);
    let (section, seats) = (section.unwrap_or_default(), seats.unwrap_or_default());
    Ok(Some(HoldRecord {
        user: UserId::new(parse(&user)?),
        schedule: ScheduleId::new(parse(&schedule)?),
        section: SectionId::parse_optional(&section)
            .ok_or_else(|| anyhow::anyhow!("hold {hold} has section {section:?}"))?,
        seats: SeatId::parse_list(&seats)
            .ok_or_else(|| anyhow::anyhow!("hold {hold} has seats {seats:?}"))?,
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

/// Ends holds of one concert (all of `holds` must share it) with `end_holds.lua`.
pub async fn end(hot: &Hot, mode: EndMode, holds: &[(HoldId, &HoldRecord)]) -> Result<Vec<Ended>> {
    let Some((first, _)) = holds.first() else {
        return Ok(Vec::new());
    };
    let c = first.concert();
    let k = &hot.keys;
    let mut keys = Vec::with_capacity(2 + holds.len() * 4);
    keys.extend([k.hold_expiry(c), k.hold_events(c)]);
    let (mode_arg, user_arg) = match mode {
        EndMode::Release(user) => ("release", user.to_string()),
        EndMode::Expire => ("expire", String::new()),
    };
    let mut args = vec![
        mode_arg.to_owned(),
        user_arg,
        ENDED_HOLD_RETENTION_MS.to_string(),
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
    let reply: Vec<Value> = hot.run(&hot.scripts.end_holds, keys, args).await?;
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
pub async fn due(hot: &Hot, concert: ConcertId, now_ms: i64, limit: i64) -> Result<Vec<HoldId>> {
    let ids: Vec<String> = hot
        .pool
        .next()
        .zrangebyscore(
            hot.keys.hold_expiry(concert),
            "-inf",
            now_ms,
            false,
            Some((0, limit)),
        )
        .await?;
    Ok(ids.iter().filter_map(|id| HoldId::parse(id)).collect())
}

/// Whether `concert` has no live hold, no claim and no unwritten event.
pub async fn is_idle(hot: &Hot, concert: ConcertId) -> Result<bool> {
    let k = &hot.keys;
    let pipe = hot.pool.next().pipeline();
    let _: () = pipe.zcard(k.hold_expiry(concert)).await?;
    let _: () = pipe.zcard(k.hold_paying(concert)).await?;
    let _: () = pipe.xlen(k.hold_events(concert)).await?;
    let (held, paying, events): (i64, i64, i64) = pipe.all().await?;
    Ok(held == 0 && paying == 0 && events == 0)
}
