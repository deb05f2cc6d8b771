//! The whole Redis keyspace. No other file formats a key.
//!
//! Every key starts with the configured namespace (tests use a fresh one each). Keys that one
//! Lua script touches together share the `{c<concertId>}` hash tag, so on Redis
//! Cluster a concert's waiting room, seats, counters, holds and event stream live in one slot
//! and every script stays single-slot. Registries that span concerts have no tag and are only
//! ever touched by single-key commands.

use std::sync::Arc;

use crate::ids::HoldId;
use crate::ids::{ConcertId, ScheduleId, SectionId};

/// Builds key names under one namespace. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Keys {
    ns: Arc<str>,
}

impl Keys {
    /// A keyspace under `namespace` (e.g. `bo`, or `test-1a2b` in tests).
    pub fn new(namespace: &str) -> Self {
        Self {
            ns: namespace.into(),
        }
    }

    /// The namespace itself, e.g. for the stream consumer group name.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    fn concert(&self, area: &str, concert: ConcertId, what: &str) -> String {
        format!("{}:{area}:{{c{}}}:{what}", self.ns, concert.get())
    }

    // --- waiting room -------------------------------------------------------------------------

    /// STRING: the last place handed out in this concert's line (INCR).
    pub fn queue_seq(&self, concert: ConcertId) -> String {
        self.concert("q", concert, "seq")
    }

    /// HASH userId -> place: makes joining idempotent.
    pub fn queue_places(&self, concert: ConcertId) -> String {
        self.concert("q", concert, "places")
    }

    /// ZSET userId scored by place: the users still waiting, front first.
    pub fn queue_line(&self, concert: ConcertId) -> String {
        self.concert("q", concert, "line")
    }

    /// ZSET userId scored by last-seen epoch ms: joins and (batched) polls.
    pub fn queue_heartbeats(&self, concert: ConcertId) -> String {
        self.concert("q", concert, "hb")
    }

    /// ZSET userId scored by session end epoch ms: the ACTIVE users.
    pub fn queue_active(&self, concert: ConcertId) -> String {
        self.concert("q", concert, "active")
    }

    /// HASH userId -> epoch ms of admission, for the ACTIVE users: what an ACTIVE token issued
    /// later (a poll that crosses the front, a join again) carries as its admission time.
    pub fn queue_admitted(&self, concert: ConcertId) -> String {
        self.concert("q", concert, "adm")
    }

    /// ZSET userId scored by the epoch ms (Redis clock) a place or session ended early (leave,
    /// payment, skipped as abandoned): replicas read the tail of it to refuse the user's older
    /// tokens without a round trip per request.
    pub fn queue_ended(&self, concert: ConcertId) -> String {
        self.concert("q", concert, "ended")
    }

    /// HASH: the admission state every poll is answered from (front, rate, counters).
    pub fn queue_state(&self, concert: ConcertId) -> String {
        self.concert("q", concert, "state")
    }

    /// STRING workerId with a PX expiry: the single admitter of this concert.
    pub fn queue_lease(&self, concert: ConcertId) -> String {
        self.concert("q", concert, "lease")
    }

    // --- seats, counters and holds ------------------------------------------------------------

    /// HASH seatId -> holdId, or `sold`: who has each seat of a schedule. Absent means free.
    pub fn seat_owners(&self, concert: ConcertId, schedule: ScheduleId) -> String {
        self.concert("s", concert, &format!("seats:{}", schedule.get()))
    }

    /// STRING: general-admission places left in a section (DECRBY).
    pub fn ga_remaining(&self, concert: ConcertId, section: SectionId) -> String {
        self.concert("s", concert, &format!("ga:{}", section.get()))
    }

    /// HASH userId -> tickets held or bought for a schedule: the per-user ticket limit.
    pub fn user_tickets(&self, concert: ConcertId, schedule: ScheduleId) -> String {
        self.concert("s", concert, &format!("tickets:{}", schedule.get()))
    }

    /// HASH: one hold (owner, schedule, section, seats, quantity, amount, state, expiry).
    pub fn hold(&self, concert: ConcertId, hold: HoldId) -> String {
        self.concert("s", concert, &format!("hold:{}", hold.get()))
    }

    /// ZSET holdId scored by expiry epoch ms: the HELD holds, which the worker releases on
    /// time. A hold leaves it when it is claimed for payment or ends.
    pub fn hold_expiry(&self, concert: ConcertId) -> String {
        self.concert("s", concert, "expiry")
    }

    /// ZSET holdId scored by claim epoch ms: holds being paid (state PAYING). Their seats stay
    /// taken whatever the clock says; the reconciler settles claims that grow old.
    pub fn hold_paying(&self, concert: ConcertId) -> String {
        self.concert("s", concert, "paying")
    }

    /// STREAM of hold events (held, released, expired, paid) for the worker's sink.
    pub fn hold_events(&self, concert: ConcertId) -> String {
        self.concert("s", concert, "events")
    }

    /// STRING marker: the schedule's inventory (sold seats, live holds, GA counters, ticket
    /// counts) has been loaded from Postgres into the keys above. Scripts refuse to sell from a
    /// schedule without it, so a Redis that lost its data is rebuilt before it sells again.
    pub fn inventory_loaded(&self, concert: ConcertId, schedule: ScheduleId) -> String {
        self.concert("s", concert, &format!("loaded:{}", schedule.get()))
    }

    /// ZSET of concert ids scored by when a gateway last registered the concert (epoch ms):
    /// one of the worker's work lists (see [`Registry`]).
    pub fn registry(&self, registry: Registry) -> String {
        match registry {
            // `q:rooms`, not the `q:concerts` SET of earlier versions, so an old keyspace
            // cannot meet the new type.
            Registry::Rooms => format!("{}:q:rooms", self.ns),
            Registry::Sales => format!("{}:s:concerts", self.ns),
        }
    }

    // There is no holdId -> concertId index: a [`HoldId`] carries its concert in its own bits,
    // which saves a write per hold and a read per payment, and leaves nothing to clean up.
}

/// The worker's work lists: concerts in use, each kept by the gateways that use it and retired
/// by the worker when idle ([`super::registry`]). They span concerts, so they have no hash tag
/// and are only touched by single-key commands and single-key scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// Concerts with a waiting room in use: the admitter's work list.
    Rooms,
    /// Concerts with holds in Redis: the expiry, sink and reconciler's work list.
    Sales,
}

/// The consumer group of the worker's stream sink on every hold-event stream.
pub const SINK_GROUP: &str = "sink";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_concert_share_a_hash_tag() {
        let keys = Keys::new("bo");
        let c = ConcertId::new(42);
        let tag = |k: String| k[k.find('{').unwrap()..=k.find('}').unwrap()].to_owned();
        let expected = "{c42}".to_owned();
        for key in [
            keys.queue_seq(c),
            keys.queue_places(c),
            keys.queue_line(c),
            keys.queue_heartbeats(c),
            keys.queue_active(c),
            keys.queue_admitted(c),
            keys.queue_ended(c),
            keys.queue_state(c),
            keys.queue_lease(c),
            keys.seat_owners(c, ScheduleId::new(7)),
            keys.ga_remaining(c, SectionId::new(9)),
            keys.user_tickets(c, ScheduleId::new(7)),
            keys.hold(c, HoldId::generate(c)),
            keys.hold_expiry(c),
            keys.hold_paying(c),
            keys.hold_events(c),
            keys.inventory_loaded(c, ScheduleId::new(7)),
        ] {
            assert!(key.starts_with("bo:"), "{key}");
            assert_eq!(tag(key), expected);
        }
    }

    #[test]
    fn namespaces_do_not_collide() {
        let c = ConcertId::new(1);
        assert_ne!(Keys::new("a").queue_seq(c), Keys::new("b").queue_seq(c));
    }
}
