//! The waiting room as one gateway replica runs it: join, poll and leave.
//!
//! The replica's caches (the concert's sale window, its admission state, the ended log) live
//! in the gateway and are handed in: this type decides, the gateway remembers. A poll does no
//! Redis I/O unless the token's place has reached the front or the line was shuffled since
//! the token was issued (one read, then a fresh token that makes the next polls free again).

use std::{sync::Arc, time::Duration};

use super::{
    heartbeat::Heartbeats,
    line::{
        active_poll_after_ms, poll_after_ms, AdmissionView, Joined, QueuePolicy, SaleWindow,
        Standing,
    },
    redis::{self as queue_redis, Left, PlaceReply, WatchFrom, Watched},
    token::{QueuePass, QueueStatus, QueueTokens},
};
use crate::{
    ids::{ConcertId, UserId},
    now_ms,
    redis::{keys::Registry, registry::Registrations, Hot},
    Error, Result,
};

/// How often a replica re-registers a concert it takes joins for. It keeps the registration
/// newer than the worker's retirement cutoff for every room in use (see
/// [`crate::redis::registry::retire`]), and heals a Redis that restarted empty, at the cost of
/// one `ZADD` per concert per replica per 30 s.
pub const REGISTRATION_REFRESH: Duration = Duration::from_secs(30);

/// The waiting room of one replica. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Room {
    hot: Hot,
    tokens: QueueTokens,
    heartbeats: Arc<Heartbeats>,
    /// This replica's registrations of the rooms it takes joins for: one `ZADD` per concert
    /// per [`REGISTRATION_REFRESH`], not per join.
    registrations: Arc<Registrations>,
}

impl Room {
    /// A room over `hot`, issuing tokens with `tokens`.
    pub fn new(hot: Hot, tokens: QueueTokens) -> Self {
        Self {
            hot,
            tokens,
            heartbeats: Arc::default(),
            registrations: Arc::new(Registrations::new(Registry::Rooms, REGISTRATION_REFRESH)),
        }
    }

    /// The token issuer.
    pub fn tokens(&self) -> &QueueTokens {
        &self.tokens
    }

    /// Puts `user` in `concert`'s line, or returns the standing they already have. `window`
    /// and `view` come from the replica's caches.
    pub async fn join(
        &self,
        concert: ConcertId,
        window: SaleWindow,
        user: UserId,
        view: &AdmissionView,
    ) -> Result<Joined> {
        window.check_joinable(now_ms())?;
        // Before the admitter's first tick the state does not know the opening yet; the
        // window does, and the ETA of a pre-queue join must count the wait for it.
        let with_opening;
        let view = if view.opens_ms.is_none() {
            with_opening = AdmissionView {
                opens_ms: Some(window.opens_ms),
                ..view.clone()
            };
            &with_opening
        } else {
            view
        };
        self.registrations.keep(&self.hot, concert).await?;
        let reply = queue_redis::join(&self.hot, concert, user, window.opens_ms).await?;
        let created = matches!(reply, PlaceReply::Waiting { created: true, .. });
        Ok(Joined {
            created,
            standing: self.standing(concert, user, reply, view)?,
        })
    }

    /// Answers a poll of `pass` (verified, raw form `token`) on `concert`. `ended` says whether
    /// the replica's copy of the ended log spends the token.
    pub async fn poll(
        &self,
        concert: ConcertId,
        pass: &QueuePass,
        token: &str,
        view: &AdmissionView,
        ended: bool,
    ) -> Result<Standing> {
        if pass.concert != concert {
            return Err(Error::QueueTokenMismatch);
        }
        if ended {
            return Err(Error::QueuePlaceLost);
        }
        let now = now_ms();
        match pass.status {
            QueueStatus::Active => {
                let until_ms = pass.active_until_ms();
                Ok(Standing::Active {
                    token: token.to_owned(),
                    until_ms,
                    poll_after_ms: active_poll_after_ms(until_ms, now),
                })
            }
            QueueStatus::Waiting if pass.gen >= view.gen && pass.place > view.front => {
                self.heartbeats.record(concert, pass.user, now);
                Ok(self.waiting(token.to_owned(), pass.place - view.front, view, now))
            }
            QueueStatus::Waiting => {
                // The place reached the front (admitted or skipped) or may have moved in the
                // shuffle: read the truth once.
                let reply = queue_redis::status(&self.hot, concert, pass.user).await?;
                self.standing(concert, pass.user, reply, view)
            }
        }
    }

    /// `user` gives up their place or session in `concert`, with a token for that concert.
    pub async fn leave(&self, concert: ConcertId, pass: &QueuePass) -> Result<Left> {
        if pass.concert != concert {
            return Err(Error::QueueTokenMismatch);
        }
        queue_redis::leave(&self.hot, concert, pass.user).await
    }

    /// Reads `concert`'s admission state and ended log for the replica's caches.
    pub async fn watch(
        &self,
        concert: ConcertId,
        from: WatchFrom,
        limit: usize,
    ) -> Result<Watched> {
        queue_redis::watch(
            &self.hot,
            concert,
            from,
            limit,
            QueuePolicy::DEFAULT.session_ms(),
        )
        .await
    }

    /// Writes the buffered poll heartbeats (see [`Heartbeats::flush`]).
    pub async fn flush_heartbeats(&self) -> Result<usize> {
        self.heartbeats.flush(&self.hot).await
    }

    fn standing(
        &self,
        concert: ConcertId,
        user: UserId,
        reply: PlaceReply,
        view: &AdmissionView,
    ) -> Result<Standing> {
        let now = now_ms();
        match reply {
            PlaceReply::None => Err(Error::QueuePlaceLost),
            PlaceReply::Waiting {
                place,
                since_ms,
                gen,
                front,
                ..
            } => {
                self.heartbeats.record(concert, user, now);
                let token = self
                    .tokens
                    .issue_waiting(user, concert, place, since_ms, gen);
                // The script read the front in the same instant as the place, so it is at
                // least as fresh as the cached one.
                let front = front.max(view.front);
                Ok(self.waiting(token, (place - front).max(1), view, now))
            }
            PlaceReply::Active {
                place,
                admitted_ms,
                until_ms,
            } => Ok(Standing::Active {
                token: self
                    .tokens
                    .issue_active(user, concert, place, admitted_ms, until_ms),
                until_ms,
                poll_after_ms: active_poll_after_ms(until_ms, now),
            }),
        }
    }

    fn waiting(&self, token: String, position: i64, view: &AdmissionView, now: i64) -> Standing {
        let eta_ms = view.eta_ms(position, now);
        let jitter = 0.9 + 0.2 * rand::random::<f64>();
        Standing::Waiting {
            token,
            position,
            eta_ms,
            poll_after_ms: poll_after_ms(eta_ms, view.grace_ms, jitter),
        }
    }
}
