//! Ending an ACTIVE session early (leave, payment).

use fred::prelude::*;

use crate::{concerts::ConcertId, identity::UserId, now_ms, redis::Keys, Result};

/// Ends `user`'s ACTIVE session in `concert`, freeing its capacity at once and recording the
/// end so that every replica refuses the user's ACTIVE token within its refresh interval.
///
/// Both writes go in one `MULTI` (same hash tag): no reader sees the capacity freed without
/// the end recorded. Ending a session that is not active is a no-op apart from the record.
pub async fn end_session(
    redis: &Pool,
    keys: &Keys,
    concert: ConcertId,
    user: UserId,
) -> Result<()> {
    let client = redis.next();
    let tx = client.multi();
    let _: () = tx.zrem(keys.queue_active(concert), user.get()).await?;
    let _: () = tx
        .zadd(
            keys.queue_ended(concert),
            None,
            None,
            false,
            false,
            (now_ms() as f64, user.get()),
        )
        .await?;
    let _: () = tx.exec(true).await?;
    Ok(())
}
