//! The outbox in Postgres (worker, sqlx).

use std::time::Duration;

use sqlx::PgPool;

use super::Notification;
use crate::Result;

/// Leases up to `limit` due rows for `lease`: they are not due again until it runs out, so
/// concurrent workers (SKIP LOCKED) and a worker that dies mid-delivery never lose a row, and
/// no transaction stays open across an HTTP call.
pub async fn lease_due(pg: &PgPool, limit: i64, lease: Duration) -> Result<Vec<Notification>> {
    let rows: Vec<(i64, String, serde_json::Value, i32)> = sqlx::query_as(
        "UPDATE outbox SET next_attempt_at = now() + make_interval(secs => $2) \
         WHERE id IN (SELECT id FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= now() \
                      ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, topic, payload, attempts",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pg)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, topic, payload, attempts)| Notification {
            id,
            topic,
            payload,
            attempts,
        })
        .collect())
}

/// Marks rows delivered.
pub async fn delivered(pg: &PgPool, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE outbox SET delivered_at = now(), last_error = NULL WHERE id = ANY($1)")
        .bind(ids)
        .execute(pg)
        .await?;
    Ok(())
}

/// Records a failed attempt and when to try again.
pub async fn failed(pg: &PgPool, id: i64, retry_in: Duration, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, last_error = left($3, 500), \
         next_attempt_at = now() + make_interval(secs => $2) WHERE id = $1",
    )
    .bind(id)
    .bind(retry_in.as_secs_f64())
    .bind(error)
    .execute(pg)
    .await?;
    Ok(())
}

/// Rows not delivered yet, for the backlog gauge.
pub async fn pending(pg: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
            .fetch_one(pg)
            .await?,
    )
}
