//! Balances and the ledger in Postgres.

use deadpool_postgres::Pool;

use super::{request_fingerprint, Balance, IdempotencyKey, Points};
use crate::{ids::UserId, Error, Result};

const CHARGE: &str = "points.charge";

/// The balance of `user`. A valid token for a user that does not exist (a wiped database) is
/// treated as unauthorised rather than as a zero balance.
pub async fn balance(pool: &Pool, user: UserId) -> Result<Balance> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT balance FROM point_balances WHERE user_id = $1")
        .await?;
    let row = client
        .query_opt(&stmt, &[&user.get()])
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok(Balance {
        user_id: user.get(),
        balance: row.get(0),
    })
}

/// Adds `amount` to `user`'s balance with a ledger row, once per idempotency key.
///
/// With a key, the key row is inserted first in the same transaction: a concurrent request
/// with the same key blocks on its primary key until this transaction ends, then finds the
/// stored response. Reusing a key with a different amount is refused.
pub async fn charge(
    pool: &Pool,
    user: UserId,
    amount: Points,
    key: Option<&IdempotencyKey>,
) -> Result<Balance> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let fingerprint = request_fingerprint(&[&amount.get().to_string()]);
    if let Some(key) = key {
        let claimed = tx
            .query_opt(
                "INSERT INTO idempotency_keys (user_id, operation, key, request_hash, status_code, response) \
                 VALUES ($1, $2, $3, $4, 0, 'null') ON CONFLICT DO NOTHING RETURNING 1",
                &[&user.get(), &CHARGE, &key.as_str(), &fingerprint],
            )
            .await?;
        if claimed.is_none() {
            let row = tx
                .query_one(
                    "SELECT request_hash, response FROM idempotency_keys \
                     WHERE user_id = $1 AND operation = $2 AND key = $3",
                    &[&user.get(), &CHARGE, &key.as_str()],
                )
                .await?;
            if row.get::<_, String>(0) != fingerprint {
                return Err(Error::IdempotencyKeyReused);
            }
            let stored: serde_json::Value = row.get(1);
            let balance = stored["balance"]
                .as_i64()
                .ok_or_else(|| anyhow::anyhow!("stored charge response has no balance"))?;
            return Ok(Balance {
                user_id: user.get(),
                balance,
            });
        }
    }
    let row = tx
        .query_opt(
            "UPDATE point_balances SET balance = balance + $2, updated_at = now() \
             WHERE user_id = $1 RETURNING balance",
            &[&user.get(), &amount.get()],
        )
        .await?
        .ok_or(Error::Unauthorized)?;
    let balance = Balance {
        user_id: user.get(),
        balance: row.get(0),
    };
    tx.execute(
        "INSERT INTO point_ledger (user_id, delta, reason) VALUES ($1, $2, 'CHARGE')",
        &[&user.get(), &amount.get()],
    )
    .await?;
    if let Some(key) = key {
        let response = serde_json::to_value(balance).map_err(anyhow::Error::from)?;
        tx.execute(
            "UPDATE idempotency_keys SET status_code = 200, response = $4 \
             WHERE user_id = $1 AND operation = $2 AND key = $3",
            &[&user.get(), &CHARGE, &key.as_str(), &response],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(balance)
}
