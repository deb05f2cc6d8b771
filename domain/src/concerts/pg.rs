//! Concert reads from Postgres (the gateway's hot reads, through deadpool-postgres).

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::{
    encode_cursor, AvailableDate, AvailableDates, Concert, ConcertDetail, ConcertPage,
    ConcertStatus, PageRequest, Schedule, ScheduleRef, ScheduleSeats, Seat, Section, SectionKind,
};
use crate::{
    ids::{ConcertId, ScheduleId, SeatId, SectionId},
    Error, Result,
};

fn concert_from_row(row: &Row, now: DateTime<Utc>) -> Concert {
    let opens: DateTime<Utc> = row.get("sale_opens_at");
    let closes: DateTime<Utc> = row.get("sale_closes_at");
    Concert {
        concert_id: ConcertId::new(row.get("id")),
        title: row.get("title"),
        venue: row.get("venue"),
        status: ConcertStatus::at(now, opens, closes, row.get("sold_out")),
        sale_opens_at: opens,
        sale_closes_at: closes,
    }
}

/// Concerts on sale or upcoming, by id, after the page's cursor.
pub async fn list(pool: &Pool, page: PageRequest) -> Result<ConcertPage> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT id, title, venue, sale_opens_at, sale_closes_at, sold_out FROM concerts \
             WHERE id > $1 AND sale_closes_at > now() ORDER BY id LIMIT $2",
        )
        .await?;
    // One extra row tells whether another page exists without a COUNT.
    let rows = client
        .query(&stmt, &[&page.after.get(), &(page.limit + 1)])
        .await?;
    let now = Utc::now();
    let mut items: Vec<Concert> = rows.iter().map(|r| concert_from_row(r, now)).collect();
    let next_cursor = if items.len() as i64 > page.limit {
        items.truncate(page.limit as usize);
        items.last().map(|c| encode_cursor(c.concert_id))
    } else {
        None
    };
    Ok(ConcertPage { items, next_cursor })
}

/// One concert with its schedules, whatever its status.
pub async fn get(pool: &Pool, id: ConcertId) -> Result<ConcertDetail> {
    let client = pool.get().await?;
    let concert_stmt = client
        .prepare_cached(
            "SELECT id, title, venue, sale_opens_at, sale_closes_at, sold_out FROM concerts WHERE id = $1",
        )
        .await?;
    let schedules_stmt = client
        .prepare_cached(
            "SELECT id, starts_at FROM schedules WHERE concert_id = $1 ORDER BY starts_at, id",
        )
        .await?;
    let id = id.get();
    let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] = &[&id];
    // Both statements go out on one connection back to back (tokio-postgres pipelines them).
    let (concert, schedules) = futures::try_join!(
        client.query_opt(&concert_stmt, params),
        client.query(&schedules_stmt, params),
    )?;
    let concert = concert.ok_or(Error::ConcertNotFound)?;
    Ok(ConcertDetail {
        concert: concert_from_row(&concert, Utc::now()),
        schedules: schedules
            .iter()
            .map(|r| ScheduleRef {
                schedule_id: ScheduleId::new(r.get(0)),
                starts_at: r.get(1),
            })
            .collect(),
    })
}

/// A schedule with its sections, or `ScheduleNotFound`.
pub async fn schedule(pool: &Pool, id: ScheduleId) -> Result<Schedule> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT sc.concert_id, sc.starts_at, sc.sale_opens_at, sc.sale_closes_at, \
                    se.id, se.name, se.kind, se.price, se.capacity \
             FROM schedules sc LEFT JOIN sections se ON se.schedule_id = sc.id \
             WHERE sc.id = $1 ORDER BY se.id",
        )
        .await?;
    let rows = client.query(&stmt, &[&id.get()]).await?;
    let first = rows.first().ok_or(Error::ScheduleNotFound)?;
    let sections = rows
        .iter()
        .filter_map(|r| {
            let section: Option<i64> = r.get(4);
            Some(Section {
                id: SectionId::new(section?),
                name: r.get(5),
                kind: if r.get::<_, &str>(6) == "GA" {
                    SectionKind::Ga
                } else {
                    SectionKind::Seated
                },
                price: r.get(7),
                capacity: r.get(8),
            })
        })
        .collect();
    Ok(Schedule {
        id,
        concert: ConcertId::new(first.get(0)),
        starts_at: first.get(1),
        sale_opens_at: first.get(2),
        sale_closes_at: first.get(3),
        sections,
    })
}

/// Every seat of a schedule, grouped by section.
pub async fn schedule_seats(pool: &Pool, id: ScheduleId) -> Result<ScheduleSeats> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT id, section_id, seat_no, price FROM seats WHERE schedule_id = $1 \
             ORDER BY section_id, id",
        )
        .await?;
    let rows = client.query(&stmt, &[&id.get()]).await?;
    Ok(ScheduleSeats::new(
        rows.iter()
            .map(|r| Seat {
                id: SeatId::new(r.get(0)),
                section: SectionId::new(r.get(1)),
                seat_no: r.get(2),
                price: r.get(3),
            })
            .collect(),
    ))
}

/// The concert's schedules whose sale is open now and that have tickets left, by date.
///
/// Tickets left = capacity - GA places sold (`sections.sold`) - seats sold. Seated sections
/// keep no count of their own (see `payments::pg::record`); their seats sold are the
/// quantities of the schedule's seated reservations (`section_id` NULL), read through
/// `reservations_by_schedule`. Counting reservation items joined to the schedule's seats
/// instead made the planner hash the whole `reservation_items` table: 340 ms per call once
/// benchmarks had sold 340,000 seats elsewhere, and a payment makes the next dates read
/// recompute.
pub async fn available_dates(pool: &Pool, concert: ConcertId) -> Result<AvailableDates> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT id, starts_at, available FROM ( \
                SELECT sc.id, sc.starts_at, \
                       (SELECT COALESCE(SUM(se.capacity - se.sold), 0) FROM sections se \
                        WHERE se.schedule_id = sc.id)::bigint \
                     - (SELECT COALESCE(SUM(r.quantity), 0) FROM reservations r \
                        WHERE r.schedule_id = sc.id AND r.section_id IS NULL)::bigint AS available \
                FROM schedules sc \
                WHERE sc.concert_id = $1 AND sc.sale_opens_at <= now() AND sc.sale_closes_at > now() \
             ) d WHERE available > 0 ORDER BY starts_at, id",
        )
        .await?;
    let rows = client.query(&stmt, &[&concert.get()]).await?;
    Ok(AvailableDates {
        items: rows
            .iter()
            .map(|r| AvailableDate {
                schedule_id: ScheduleId::new(r.get(0)),
                starts_at: r.get(1),
                available_seats: r.get(2),
            })
            .collect(),
    })
}
