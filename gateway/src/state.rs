//! What every handler can reach: pools, scripts, token issuers, caches.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use boxoffice_domain::{
    identity::AccessTokens,
    queue::{QueueTokens, Room},
    redis::Hot,
    Config,
};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::cache::Caches;

/// Shared application state; cloned per request (one `Arc`).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The fields of [`AppState`].
pub struct Inner {
    pub config: Config,
    pub pg: deadpool_postgres::Pool,
    /// Redis: the pool, the scripts and the keyspace.
    pub hot: Hot,
    pub access: AccessTokens,
    pub queue_tokens: QueueTokens,
    /// The waiting room (join, poll, leave, heartbeats).
    pub room: Room,
    pub caches: Caches,
    /// What this replica remembers between requests about holds (registrations, loads).
    pub replica: boxoffice_domain::holds::Replica,
    /// This replica's holds, sent to Redis in batches (see `holds::batch`).
    pub holds: boxoffice_domain::holds::batch::Batcher,
    /// This replica's payments, recorded in batches (see `payments::batch`).
    pub payments: boxoffice_domain::payments::batch::Batcher,
    /// Per-user request rate, per replica.
    pub limiter: DefaultKeyedRateLimiter<i64>,
    /// Cleared at the start of shutdown so `/readyz` turns 503 before the listener closes.
    ready: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Assembles the state from its parts.
    pub fn new(
        config: Config,
        pg: deadpool_postgres::Pool,
        hot: Hot,
        access: AccessTokens,
        queue_tokens: QueueTokens,
    ) -> Self {
        let quota = Quota::per_second(config.user_rate_per_sec).allow_burst(config.user_rate_burst);
        let room = Room::new(hot.clone(), queue_tokens.clone());
        let caches = Caches::new(&config, room.clone());
        Self(Arc::new(Inner {
            pg,
            hot,
            access,
            queue_tokens,
            room,
            caches,
            replica: Default::default(),
            holds: Default::default(),
            payments: Default::default(),
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            ready: AtomicBool::new(true),
            config,
        }))
    }

    /// Whether the replica still wants traffic.
    pub fn is_accepting(&self) -> bool {
        self.0.ready.load(Ordering::Relaxed)
    }

    /// What the purchase path's domain operations reach.
    pub fn store(&self) -> boxoffice_domain::holds::Store<'_> {
        boxoffice_domain::holds::Store {
            pg: &self.pg,
            hot: &self.hot,
            config: &self.config,
            replica: &self.replica,
            batches: &self.holds,
        }
    }

    /// Marks the replica as draining.
    pub fn stop_accepting(&self) {
        self.0.ready.store(false, Ordering::Relaxed);
    }
}
