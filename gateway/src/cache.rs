//! In-process moka caches. Each cache states its TTL and why serving data that old is safe.

use std::time::Duration;

use boxoffice_domain::{concerts::ConcertId, identity::UserId, Config};
use moka::sync::Cache;

/// Every cache of one gateway replica.
#[derive(Clone)]
pub struct Caches {
    /// Waiting-room sessions that ended early (leave, payment), per (concert, user), with the
    /// epoch ms they ended.
    pub ended_sessions: EndedSessions,
}

impl Caches {
    /// Builds the caches with their configured capacities and TTLs.
    pub fn new(_config: &Config) -> Self {
        Self {
            ended_sessions: EndedSessions::new(),
        }
    }
}

/// Sessions that ended before their token expired. An ACTIVE token is refused when its
/// session ended at or after its admission time.
///
/// TTL 2 h: no session lasts longer (the longest policy is far below it), so an entry older
/// than that can only refer to a token that has expired anyway.
#[derive(Clone)]
pub struct EndedSessions(Cache<(ConcertId, UserId), i64>);

impl EndedSessions {
    fn new() -> Self {
        Self(
            Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(2 * 3600))
                .build(),
        )
    }

    /// Records that `user`'s session in `concert` ended at `ended_at_ms`.
    pub fn record(&self, concert: ConcertId, user: UserId, ended_at_ms: i64) {
        let key = (concert, user);
        match self.0.get(&key) {
            Some(known) if known >= ended_at_ms => {}
            _ => self.0.insert(key, ended_at_ms),
        }
    }

    /// Whether a session admitted at `admitted_at_ms` has since ended.
    pub fn has_ended(&self, concert: ConcertId, user: UserId, admitted_at_ms: i64) -> bool {
        self.0
            .get(&(concert, user))
            .is_some_and(|ended| ended >= admitted_at_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ended_after_admission_is_ended_and_a_later_admission_is_not() {
        let ended = EndedSessions::new();
        let (c, u) = (ConcertId::new(1), UserId::new(2));
        assert!(!ended.has_ended(c, u, 1_000));
        ended.record(c, u, 2_000);
        assert!(ended.has_ended(c, u, 1_000));
        assert!(!ended.has_ended(c, u, 3_000), "re-admitted after the end");
        assert!(
            !ended.has_ended(c, UserId::new(3), 1_000),
            "other users are unaffected"
        );
    }
}
