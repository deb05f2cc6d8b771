//! Holds in Postgres: the snapshot a schedule's Redis inventory is loaded from (gateway,
//! deadpool), the answer for holds Redis no longer has (gateway), and the sink's idempotent
//! writes of hold events (worker, sqlx).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use super::{
    events::{HoldEvent, HoldEventKind},
    snapshot::{Snapshot, SnapshotHold},
};
use crate::{
    concerts::Schedule,
    ids::{HoldId, ScheduleId, SectionId, UserId},
    Error, Result,
};

/// Reads what `load_inventory.lua` needs for `schedule`: sold seats, live holds, the places
/// left in each GA section and each user's ticket count.
///
/// Live holds are those Postgres has as HELD and not expired. Holds acknowledged in the last
/// moments before Redis lost its data may not have reached Postgres; they are gone, and the
/// unique constraints still refuse any double sale that could follow.
pub async fn snapshot(pool: &Pool, schedule: &Schedule) -> Result<Snapshot> {
    let client = pool.get().await?;
    // Through the schedule's reservations (`reservations_by_schedule`), then each one's items
    // (their primary key). Joining the items to the schedule's seats instead let the planner
    // hash the whole `reservation_items` table once it held 700,000 rows: 118 ms per load
    // alone, 800 ms under a k6 run that loads thousands of schedules.
    let sold_stmt = client
        .prepare_cached(
            "SELECT ri.seat_id FROM reservations r \
             JOIN reservation_items ri ON ri.reservation_id = r.id WHERE r.schedule_id = $1",
        )
        .await?;
    let ga_stmt = client
        .prepare_cached(
            "SELECT id, capacity - sold FROM sections WHERE schedule_id = $1 AND kind = 'GA' \
             ORDER BY id",
        )
        .await?;
    let holds_stmt = client
        .prepare_cached(
            "SELECT h.id, h.user_id, h.section_id, h.quantity, h.amount, \
                    (extract(epoch FROM h.expires_at) * 1000)::bigint, \
                    COALESCE(string_agg(hs.seat_id::text, ',' ORDER BY hs.seat_id), '') \
             FROM holds h LEFT JOIN hold_seats hs ON hs.hold_id = h.id \
             WHERE h.schedule_id = $1 AND h.status = 'HELD' AND h.expires_at > now() \
             GROUP BY h.id",
        )
        .await?;
    let bought_stmt = client
        .prepare_cached(
            "SELECT user_id, SUM(quantity)::bigint FROM reservations WHERE schedule_id = $1 \
             GROUP BY user_id",
        )
        .await?;
    let id = schedule.id.get();
    let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] = &[&id];
    // One connection, four statements pipelined.
    let (sold, ga, holds, bought) = futures::try_join!(
        client.query(&sold_stmt, params),
        client.query(&ga_stmt, params),
        client.query(&holds_stmt, params),
        client.query(&bought_stmt, params),
    )?;
    let mut tickets: BTreeMap<i64, i64> = bought
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
        .collect();
    let mut held_ga: HashMap<i64, i64> = HashMap::new();
    let holds: Vec<SnapshotHold> = holds
        .iter()
        .map(|r| {
            let hold = HoldId::new(r.get(0));
            let user: i64 = r.get(1);
            let section: Option<i64> = r.get(2);
            let quantity: i32 = r.get(3);
            *tickets.entry(user).or_default() += i64::from(quantity);
            if let Some(section) = section {
                *held_ga.entry(section).or_default() += i64::from(quantity);
            }
            SnapshotHold {
                hold,
                id: hold.to_string(),
                user: user.to_string(),
                schedule: id.to_string(),
                section: section.map(|s| s.to_string()).unwrap_or_default(),
                seats: r.get(6),
                qty: quantity.to_string(),
                amount: r.get::<_, i64>(4).to_string(),
                expires: r.get::<_, i64>(5).to_string(),
            }
        })
        .collect();
    Ok(Snapshot {
        sold: sold
            .iter()
            .map(|r| r.get::<_, i64>(0).to_string())
            .collect(),
        ga: ga
            .iter()
            .map(|r| {
                let section: i64 = r.get(0);
                let unsold = i64::from(r.get::<_, i32>(1));
                (unsold - held_ga.get(&section).copied().unwrap_or(0)).to_string()
            })
            .collect(),
        ga_sections: ga.iter().map(|r| SectionId::new(r.get(0))).collect(),
        holds,
        tickets: tickets
            .into_iter()
            .map(|(user, n)| (user.to_string(), n.to_string()))
            .collect(),
    })
}

/// What Postgres says about a hold Redis does not have.
#[derive(Debug)]
pub enum Settled {
    /// It ended (released) or never was this user's: nothing to act on.
    Ended,
    /// A definite refusal: expired (410) or already paid (409).
    Refused(Error),
    /// Still HELD and unexpired: Redis lost it; rebuilding the schedule restores it.
    Live(ScheduleId),
}

/// Looks a hold up in Postgres for `user`. Another user's hold reads as [`Settled::Ended`],
/// which callers answer with 404, the same as a hold that never existed.
pub async fn settled(pool: &Pool, user: UserId, hold: HoldId) -> Result<Settled> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT status, expires_at <= now(), schedule_id FROM holds \
             WHERE id = $1 AND user_id = $2",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&hold.get(), &user.get()]).await? else {
        return Ok(Settled::Ended);
    };
    let expired: bool = row.get(1);
    Ok(match (row.get::<_, &str>(0), expired) {
        ("PAID", _) => Settled::Refused(Error::HoldAlreadyPaid),
        ("EXPIRED", _) | ("HELD", true) => Settled::Refused(Error::HoldExpired),
        ("HELD", false) => Settled::Live(ScheduleId::new(row.get(2))),
        _ => Settled::Ended,
    })
}

/// Writes a batch of hold events in one transaction, idempotently.
///
/// Events are folded per hold to the one of highest precedence, then upserted: a hold's row
/// only moves up (HELD < RELEASED = EXPIRED < PAID), so a replayed batch (a worker died after
/// the commit and before its acknowledgement) or a reordered one (entries reclaimed from a
/// dead worker) changes nothing it should not. Rows are written in hold-id order so two
/// workers writing overlapping batches lock them in the same order and cannot deadlock.
///
/// A batch of nothing but new holds (what an on-sale's sink writes almost always) is first
/// tried as plain inserts: the upsert's conflict check costs a third more Postgres CPU per
/// row. Only a replay finds a row already there; its unique violation rolls that attempt
/// back whole and the batch is written again as upserts.
pub async fn write_events(pg: &sqlx::PgPool, events: &[HoldEvent]) -> Result<u64> {
    let mut latest: BTreeMap<HoldId, &HoldEvent> = BTreeMap::new();
    for event in events {
        latest
            .entry(event.hold)
            .and_modify(|e| {
                if event.kind.rank() > e.kind.rank() {
                    *e = event;
                }
            })
            .or_insert(event);
    }
    let rows = Rows::new(&latest);
    if latest.values().all(|e| e.kind == HoldEventKind::Held) {
        match rows.write(pg, false).await {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            other => return Ok(other?),
        }
    }
    Ok(rows.write(pg, true).await?)
}

/// A folded batch as the column arrays `UNNEST` takes.
struct Rows {
    ids: Vec<uuid::Uuid>,
    users: Vec<i64>,
    schedules: Vec<i64>,
    sections: Vec<Option<i64>>,
    quantities: Vec<i32>,
    amounts: Vec<i64>,
    statuses: Vec<&'static str>,
    expiries: Vec<DateTime<Utc>>,
    seat_holds: Vec<uuid::Uuid>,
    seat_ids: Vec<i64>,
}

impl Rows {
    fn new(latest: &BTreeMap<HoldId, &HoldEvent>) -> Self {
        let n = latest.len();
        let mut rows = Self {
            ids: Vec::with_capacity(n),
            users: Vec::with_capacity(n),
            schedules: Vec::with_capacity(n),
            sections: Vec::with_capacity(n),
            quantities: Vec::with_capacity(n),
            amounts: Vec::with_capacity(n),
            statuses: Vec::with_capacity(n),
            expiries: Vec::with_capacity(n),
            seat_holds: Vec::new(),
            seat_ids: Vec::new(),
        };
        for (hold, event) in latest {
            rows.ids.push(hold.get());
            rows.users.push(event.user.get());
            rows.schedules.push(event.schedule.get());
            rows.sections.push(event.section.map(|s| s.get()));
            rows.quantities.push(event.quantity);
            rows.amounts.push(event.amount);
            rows.statuses.push(event.kind.status());
            rows.expiries.push(event.expires_at);
            for seat in &event.seats {
                rows.seat_holds.push(hold.get());
                rows.seat_ids.push(seat.get());
            }
        }
        rows
    }

    /// Writes the rows in one transaction: as upserts, or as plain inserts that fail on any
    /// row already there. Returns the holds rows written.
    async fn write(&self, pg: &sqlx::PgPool, upsert: bool) -> sqlx::Result<u64> {
        // One statement per mode, so each is prepared once per connection.
        macro_rules! holds_insert {
            ($tail:literal) => {
                concat!(
                    "INSERT INTO holds (id, user_id, schedule_id, section_id, quantity, amount, \
                     status, expires_at) \
                     SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], \
                     $5::int[], $6::bigint[], $7::text[], $8::timestamptz[])",
                    $tail
                )
            };
        }
        let (holds_sql, seats_sql) = if upsert {
            (
                holds_insert!(
                    " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, updated_at = now() \
                     WHERE (CASE holds.status WHEN 'HELD' THEN 0 WHEN 'PAID' THEN 2 ELSE 1 END) \
                     < (CASE EXCLUDED.status WHEN 'HELD' THEN 0 WHEN 'PAID' THEN 2 ELSE 1 END)"
                ),
                "INSERT INTO hold_seats (hold_id, seat_id) \
                 SELECT * FROM UNNEST($1::uuid[], $2::bigint[]) ON CONFLICT DO NOTHING",
            )
        } else {
            (
                holds_insert!(""),
                "INSERT INTO hold_seats (hold_id, seat_id) \
                 SELECT * FROM UNNEST($1::uuid[], $2::bigint[])",
            )
        };
        let mut tx = pg.begin().await?;
        let written = sqlx::query(holds_sql)
            .bind(&self.ids)
            .bind(&self.users)
            .bind(&self.schedules)
            .bind(&self.sections)
            .bind(&self.quantities)
            .bind(&self.amounts)
            .bind(&self.statuses)
            .bind(&self.expiries)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if !self.seat_ids.is_empty() {
            sqlx::query(seats_sql)
                .bind(&self.seat_holds)
                .bind(&self.seat_ids)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(written)
    }
}
