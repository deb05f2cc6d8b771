//! Concert reads from Postgres (the gateway's hot reads, through deadpool-postgres).

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::{
    encode_cursor, Concert, ConcertDetail, ConcertId, ConcertPage, ConcertStatus, PageRequest,
    ScheduleId, ScheduleRef,
};
use crate::{Error, Result};

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
