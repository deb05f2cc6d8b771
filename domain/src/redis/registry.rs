//! The worker's work lists of concerts in use ([`Registry`]): the rooms the admitter ticks, and
//! the concerts whose holds the expiry sweep, the stream sink and the reconciler visit.
//!
//! Gateways register a concert before they write anything of it (a join, a hold), and refresh
//! the registration while they keep using it; the worker retires a concert that has been idle
//! and unregistered for far longer than any refresh interval. That ordering is what makes
//! skipping refreshes safe: a concert in use always has a registration newer than the
//! worker's cutoff.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use fred::prelude::*;

use super::{keys::Registry, Hot};
use crate::{ids::ConcertId, Result};

/// Puts `concert` on `registry` or refreshes its registration time (the one `ZADD` of a
/// registration). A single-key command: the registry spans concerts and has no hash tag.
pub async fn register(hot: &Hot, registry: Registry, concert: ConcertId) -> Result<()> {
    let _: i64 = hot
        .pool
        .next()
        .zadd(
            hot.keys.registry(registry),
            None,
            None,
            false,
            false,
            (crate::now_ms() as f64, concert.get()),
        )
        .await?;
    Ok(())
}

/// The concerts on `registry`.
pub async fn list(hot: &Hot, registry: Registry) -> Result<Vec<ConcertId>> {
    let ids: Vec<i64> = hot
        .pool
        .next()
        .zrange(hot.keys.registry(registry), 0, -1, None, false, None, false)
        .await?;
    Ok(ids.into_iter().map(ConcertId::new).collect())
}

/// Takes `concert` off `registry` unless a gateway registered it since `cutoff_ms`; `true`
/// when removed. One script (`retire_concert.lua`), so a registration that lands between the
/// check and the removal is never lost.
pub async fn retire(
    hot: &Hot,
    registry: Registry,
    concert: ConcertId,
    cutoff_ms: i64,
) -> Result<bool> {
    let removed: i64 = hot
        .run(
            &hot.scripts.retire_concert,
            vec![hot.keys.registry(registry)],
            vec![concert.get(), cutoff_ms],
        )
        .await?;
    Ok(removed == 1)
}

/// Takes `concert` off `registry` whatever its registration time (its sale closed and there
/// is nothing left of it to work on).
pub async fn remove(hot: &Hot, registry: Registry, concert: ConcertId) -> Result<()> {
    let _: i64 = hot
        .pool
        .next()
        .zrem(hot.keys.registry(registry), concert.get())
        .await?;
    Ok(())
}

/// What one gateway process remembers of its own registrations on one registry, so that a
/// busy concert costs one `ZADD` per `refresh` per replica instead of one per request.
#[derive(Debug)]
pub struct Registrations {
    registry: Registry,
    refresh: Duration,
    /// When this replica last registered each concert. A std `Mutex`: held for one map lookup
    /// or insert, never across an await.
    last: Mutex<HashMap<ConcertId, Instant>>,
}

impl Registrations {
    /// Registrations on `registry`, refreshed at most every `refresh`. `refresh` must stay far
    /// below the worker's retirement cutoff for that registry.
    pub fn new(registry: Registry, refresh: Duration) -> Self {
        Self {
            registry,
            refresh,
            last: Mutex::default(),
        }
    }

    /// Registers `concert` unless this replica did so less than `refresh` ago.
    pub async fn keep(&self, hot: &Hot, concert: ConcertId) -> Result<()> {
        let due = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&concert)
            .is_none_or(|at| at.elapsed() >= self.refresh);
        if due {
            register(hot, self.registry, concert).await?;
            self.last
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(concert, Instant::now());
        }
        Ok(())
    }
}
