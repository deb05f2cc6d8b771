//! Ending an ACTIVE session early (leave, payment).

use crate::{
    ids::{ConcertId, UserId},
    redis::Hot,
    Result,
};

/// Ends `user`'s ACTIVE session in `concert` (or gives up their place, if they are still
/// waiting), freeing its capacity at once and logging the end so that every replica refuses
/// the user's ACTIVE token within a second. The hook the payment path calls.
///
/// One script (`queue_leave.lua`): no reader sees the capacity freed without the end logged,
/// and the end is stamped by Redis's clock, the one the replicas tail the log by. Ending a
/// session that is not active is harmless.
pub async fn end_session(hot: &Hot, concert: ConcertId, user: UserId) -> Result<()> {
    super::redis::leave(hot, concert, user).await?;
    Ok(())
}
