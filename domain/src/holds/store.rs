//! [`Store`]: what the purchase path's operations reach, and [`Replica`]: what one gateway
//! process remembers between them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use super::{batch::Batcher, redis::Terms};
use crate::{
    ids::ScheduleId,
    redis::{keys::Registry, registry::Registrations, Hot},
    Config,
};

/// What the purchase path's operations reach: both stores, the settings and what this replica
/// remembers. Built per request from the gateway's state (a handful of references).
#[derive(Clone, Copy)]
pub struct Store<'a> {
    pub pg: &'a deadpool_postgres::Pool,
    pub hot: &'a Hot,
    pub config: &'a Config,
    pub replica: &'a Replica,
    pub batches: &'a Batcher,
}

impl Store<'_> {
    /// The terms new holds are placed on.
    pub fn terms(&self) -> Terms {
        Terms {
            ttl_ms: i64::try_from(self.config.hold_ttl.as_millis()).unwrap_or(i64::MAX),
            ticket_limit: self.config.ticket_limit,
        }
    }
}

/// What one gateway process remembers between requests about holds: its registrations of the
/// concerts it sells on the worker's work list, and which schedules it is loading into Redis.
#[derive(Debug)]
pub struct Replica {
    pub(super) registrations: Registrations,
    loads: Mutex<HashMap<ScheduleId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Replica {
    /// How often a replica refreshes a busy concert's registration. Far below the worker's
    /// retirement age (a minute), which is what makes skipping refreshes safe.
    pub const REFRESH: Duration = Duration::from_secs(1);

    /// The gate one replica's loads of `schedule` queue on, so that a burst of first requests
    /// reads one Postgres snapshot, not one each (which would drain the pool).
    pub(super) fn load_gate(&self, schedule: ScheduleId) -> Arc<tokio::sync::Mutex<()>> {
        // A std Mutex: held for one map lookup or insert, never across an await.
        let mut map = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(schedule).or_default().clone()
    }
}

impl Default for Replica {
    fn default() -> Self {
        Self {
            registrations: Registrations::new(Registry::Sales, Self::REFRESH),
            loads: Mutex::default(),
        }
    }
}
