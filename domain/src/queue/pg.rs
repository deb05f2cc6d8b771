//! The waiting room in Postgres: policies (`queue_policies`) and the sale windows the room
//! needs. The gateway reads and writes through deadpool-postgres, the worker reads through
//! sqlx.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use sqlx::Row;

use super::line::{QueuePolicy, SaleWindow};
use crate::{ids::ConcertId, Error, Result};

fn window(opens: DateTime<Utc>, closes: DateTime<Utc>, sold_out: bool) -> SaleWindow {
    SaleWindow {
        opens_ms: opens.timestamp_millis(),
        closes_ms: closes.timestamp_millis(),
        sold_out,
    }
}

fn to_u32(value: i32) -> u32 {
    // The table's CHECKs keep every policy column positive.
    u32::try_from(value).unwrap_or(1)
}

/// The sale window of `concert`, or `None` when there is no such concert.
pub async fn sale_window(pool: &Pool, concert: ConcertId) -> Result<Option<SaleWindow>> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT sale_opens_at, sale_closes_at, sold_out FROM concerts WHERE id = $1",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&concert.get()]).await?;
    Ok(row.map(|r| window(r.get(0), r.get(1), r.get(2))))
}

/// The policy in force for `concert`: its row, or [`QueuePolicy::DEFAULT`] (second value
/// `true`). `ConcertNotFound` when there is no such concert.
pub async fn policy(pool: &Pool, concert: ConcertId) -> Result<(QueuePolicy, bool)> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT p.admit_per_second, p.max_active, p.session_seconds, p.grace_seconds, \
             p.shuffle_at_open FROM concerts c \
             LEFT JOIN queue_policies p ON p.concert_id = c.id WHERE c.id = $1",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&concert.get()])
        .await?
        .ok_or(Error::ConcertNotFound)?;
    let rate: Option<i32> = row.get(0);
    Ok(match rate {
        None => (QueuePolicy::DEFAULT, true),
        Some(rate) => (
            QueuePolicy {
                admit_per_second: to_u32(rate),
                max_active: to_u32(row.get(1)),
                session_seconds: to_u32(row.get(2)),
                grace_seconds: to_u32(row.get(3)),
                shuffle_at_open: row.get(4),
            },
            false,
        ),
    })
}

/// Stores `policy` for `concert` (insert or replace). `ConcertNotFound` when there is no such
/// concert: the `EXISTS` makes that one statement instead of a read then a write.
pub async fn put_policy(pool: &Pool, concert: ConcertId, policy: &QueuePolicy) -> Result<()> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO queue_policies \
             (concert_id, admit_per_second, max_active, session_seconds, grace_seconds, shuffle_at_open) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM concerts WHERE id = $1) \
             ON CONFLICT (concert_id) DO UPDATE SET admit_per_second = EXCLUDED.admit_per_second, \
             max_active = EXCLUDED.max_active, session_seconds = EXCLUDED.session_seconds, \
             grace_seconds = EXCLUDED.grace_seconds, shuffle_at_open = EXCLUDED.shuffle_at_open, \
             updated_at = now()",
        )
        .await?;
    let int = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let written = client
        .execute(
            &stmt,
            &[
                &concert.get(),
                &int(policy.admit_per_second),
                &int(policy.max_active),
                &int(policy.session_seconds),
                &int(policy.grace_seconds),
                &policy.shuffle_at_open,
            ],
        )
        .await?;
    if written == 0 {
        return Err(Error::ConcertNotFound);
    }
    Ok(())
}

/// What the admitter needs to run one concert's ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionPlan {
    pub concert: ConcertId,
    pub window: SaleWindow,
    pub policy: QueuePolicy,
}

/// The plans of `concerts` (those that exist), for the worker, in one query.
pub async fn admission_plans(
    pg: &sqlx::PgPool,
    concerts: &[ConcertId],
) -> Result<Vec<AdmissionPlan>> {
    let ids: Vec<i64> = concerts.iter().map(|c| c.get()).collect();
    let rows = sqlx::query(
        "SELECT c.id, c.sale_opens_at, c.sale_closes_at, c.sold_out, p.admit_per_second, \
         p.max_active, p.session_seconds, p.grace_seconds, p.shuffle_at_open FROM concerts c \
         LEFT JOIN queue_policies p ON p.concert_id = c.id WHERE c.id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pg)
    .await?;
    rows.iter()
        .map(|row| {
            let rate: Option<i32> = row.try_get(4)?;
            let policy = match rate {
                None => QueuePolicy::DEFAULT,
                Some(rate) => QueuePolicy {
                    admit_per_second: to_u32(rate),
                    max_active: to_u32(row.try_get(5)?),
                    session_seconds: to_u32(row.try_get(6)?),
                    grace_seconds: to_u32(row.try_get(7)?),
                    shuffle_at_open: row.try_get(8)?,
                },
            };
            Ok(AdmissionPlan {
                concert: ConcertId::new(row.try_get(0)?),
                window: window(row.try_get(1)?, row.try_get(2)?, row.try_get(3)?),
                policy,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Error::from)
}
