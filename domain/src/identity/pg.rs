//! Users in Postgres.

use deadpool_postgres::Pool;

use super::{UserId, UserName};
use crate::Result;

/// Creates a user with a zero balance, in one statement so no user exists without a balance.
pub async fn create_user(pool: &Pool, name: &UserName) -> Result<UserId> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "WITH u AS (INSERT INTO users (name) VALUES ($1) RETURNING id) \
             INSERT INTO point_balances (user_id) SELECT id FROM u RETURNING user_id",
        )
        .await?;
    let row = client.query_one(&stmt, &[&name.as_str()]).await?;
    Ok(UserId::new(row.get(0)))
}
