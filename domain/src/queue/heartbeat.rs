//! Poll heartbeats, buffered per replica and written in batches.
//!
//! Every WAITING poll is a sign of life, and the admitter skips users whose last sign of life
//! is older than the grace period. Writing one `ZADD` per poll would put Redis back on the
//! poll path, so a replica only notes (concert, user) -> time in memory and flushes every
//! `BOXOFFICE_QUEUE_HEARTBEAT_FLUSH_MS` with one `ZADD XX GT` per concert, all pipelined: only
//! the latest time per user matters, and a user polling every second costs one write per
//! flush interval at most, however many replicas it hits.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use fred::{
    prelude::*,
    types::{sorted_sets::Ordering, SetOptions},
};

use crate::{
    ids::{ConcertId, UserId},
    redis::Hot,
    Result,
};

/// Shards of the buffer: polls from different users rarely contend for one lock. Eight is a
/// few times the core count of the machines we run on (2 to 4).
const SHARDS: usize = 8;

type Shard = HashMap<(ConcertId, UserId), i64>;

/// The in-memory buffer of one replica.
#[derive(Debug)]
pub struct Heartbeats {
    shards: [Mutex<Shard>; SHARDS],
}

impl Default for Heartbeats {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }
}

impl Heartbeats {
    /// Notes that `user` polled `concert` at `now_ms`. A std `Mutex` is right here: the
    /// critical section is one hash insert, never held across an await.
    pub fn record(&self, concert: ConcertId, user: UserId, now_ms: i64) {
        let shard = &self.shards[(user.get().unsigned_abs() as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = map.entry((concert, user)).or_insert(now_ms);
        *seen = (*seen).max(now_ms);
    }

    /// Takes everything buffered so far, grouped by concert.
    pub fn drain(&self) -> HashMap<ConcertId, Vec<(UserId, i64)>> {
        let mut out: HashMap<ConcertId, Vec<(UserId, i64)>> = HashMap::new();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            for ((concert, user), at) in taken {
                out.entry(concert).or_default().push((user, at));
            }
        }
        out
    }

    /// Writes the buffer to Redis: one `ZADD XX GT` per concert in one pipeline. `XX` because
    /// a user who left or was skipped must not come back to life through a late heartbeat;
    /// `GT` because another replica may already have written a later time. Returns how many
    /// heartbeats were written. On failure the batch is dropped: the next polls refill it
    /// long before any grace period runs out.
    pub async fn flush(&self, hot: &Hot) -> Result<usize> {
        let batch = self.drain();
        if batch.is_empty() {
            return Ok(0);
        }
        let client = hot.pool.next();
        let pipeline = client.pipeline();
        let mut written = 0;
        for (concert, beats) in batch {
            written += beats.len();
            let values: Vec<(f64, i64)> = beats
                .into_iter()
                .map(|(user, at)| (at as f64, user.get()))
                .collect();
            let _: () = pipeline
                .zadd(
                    hot.keys.queue_heartbeats(concert),
                    Some(SetOptions::XX),
                    Some(Ordering::GreaterThan),
                    false,
                    false,
                    values,
                )
                .await?;
        }
        let _: Vec<Value> = pipeline.all().await?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_polls_of_one_user_become_one_heartbeat_with_the_latest_time() {
        let beats = Heartbeats::default();
        let (c, u) = (ConcertId::new(1), UserId::new(7));
        for at in [5, 9, 3] {
            beats.record(c, u, at);
        }
        beats.record(c, UserId::new(8), 4);
        beats.record(ConcertId::new(2), u, 1);
        let mut drained = beats.drain();
        let mut first = drained.remove(&c).unwrap();
        first.sort();
        assert_eq!(first, vec![(u, 9), (UserId::new(8), 4)]);
        assert_eq!(drained.remove(&ConcertId::new(2)).unwrap(), vec![(u, 1)]);
        assert!(beats.drain().is_empty(), "drained means empty");
    }
}
