//! The stream sink: mirrors every concert's hold-event stream into Postgres.
//!
//! Reads with the `sink` consumer group (consumer = this worker's id), writes each batch in
//! one sqlx transaction of idempotent upserts, then acknowledges the entries and trims the
//! stream up to the first entry not yet written.
//! A crash between the commit and the acknowledgement replays the batch harmlessly; entries a
//! dead worker left pending are claimed (`XAUTOCLAIM`) once idle longer than
//! `BOXOFFICE_STREAM_CLAIM_IDLE_MS`. So every hold a client was told about reaches Postgres
//! exactly once (invariant 5).

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use boxoffice_domain::{
    holds::{
        self,
        events::{self, Entry, ReadFrom},
    },
    ids::ConcertId,
    redis::{keys::Registry, registry},
};
use tokio_util::sync::CancellationToken;

use crate::startup::Deps;

/// How often abandoned entries are looked for, and the lag gauge refreshed: a dead worker is
/// rare, so a second between looks costs little latency and saves a command per tick.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);

/// Loop state kept between ticks.
#[derive(Default)]
struct Sink {
    /// Concerts whose consumer group is known to exist.
    grouped: HashSet<ConcertId>,
    /// Concerts with entries delivered to us and not acknowledged (a failed batch).
    retry: HashSet<ConcertId>,
    last_housekeeping: Option<Instant>,
}

/// Runs until `cancel` fires; checks it only between batches.
pub async fn run(ctx: Deps, cancel: CancellationToken) {
    let mut every = tokio::time::interval(ctx.config.tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sink = Sink::default();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(e) = sink.round(&ctx, &cancel).await {
            tracing::warn!(error = %format_args!("{e:#}"), "stream sink round failed; retrying next tick");
        }
    }
}

impl Sink {
    async fn round(&mut self, ctx: &Deps, cancel: &CancellationToken) -> anyhow::Result<()> {
        let hot = &ctx.hot;
        let concerts = registry::list(hot, Registry::Sales).await?;
        let housekeeping = self
            .last_housekeeping
            .is_none_or(|at| at.elapsed() >= HOUSEKEEPING_EVERY);
        let mut lag = 0;
        for concert in concerts {
            if !self.grouped.contains(&concert) {
                events::ensure_group(hot, concert).await?;
                self.grouped.insert(concert);
            }
            if self.retry.remove(&concert) {
                self.drain(ctx, concert, ReadFrom::OwnPending, cancel)
                    .await?;
            }
            if housekeeping {
                let idle_ms =
                    u64::try_from(ctx.config.stream_claim_idle.as_millis()).unwrap_or(u64::MAX);
                let claimed = self
                    .drain(ctx, concert, ReadFrom::Abandoned { idle_ms }, cancel)
                    .await?;
                if claimed > 0 {
                    metrics::counter!("boxoffice_stream_reclaimed_total").increment(claimed);
                    tracing::info!(concert = %concert, claimed, "took over events a dead worker left pending");
                }
            }
            self.drain(ctx, concert, ReadFrom::New, cancel).await?;
            if housekeeping {
                lag += events::lag(hot, concert).await?;
            }
        }
        if housekeeping {
            metrics::gauge!("boxoffice_stream_lag_entries").set(lag as f64);
            self.last_housekeeping = Some(Instant::now());
        }
        Ok(())
    }

    /// Writes batches from `from` until one comes back short; returns entries written.
    async fn drain(
        &mut self,
        ctx: &Deps,
        concert: ConcertId,
        from: ReadFrom,
        cancel: &CancellationToken,
    ) -> anyhow::Result<u64> {
        let hot = &ctx.hot;
        let batch = ctx.config.stream_batch as u64;
        let mut total = 0;
        loop {
            let entries = match events::read(hot, concert, &ctx.config.worker_id, from, batch).await
            {
                Ok(entries) => entries,
                Err(e) => {
                    // The group vanishes with Redis's data: create it again next round.
                    self.grouped.remove(&concert);
                    return Err(e.into());
                }
            };
            if entries.is_empty() {
                return Ok(total);
            }
            let n = entries.len() as u64;
            if let Err(e) = self.write(ctx, concert, entries).await {
                self.retry.insert(concert);
                return Err(e);
            }
            total += n;
            // A full batch means more may be waiting; a short one means we are caught up.
            // (Own pending entries are read from the start each time, so one pass is enough.)
            if n < batch || from == ReadFrom::OwnPending || cancel.is_cancelled() {
                return Ok(total);
            }
        }
    }

    async fn write(
        &self,
        ctx: &Deps,
        concert: ConcertId,
        entries: Vec<Entry>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let events: Vec<_> = entries.into_iter().filter_map(|e| {
            if e.events.is_none() {
                tracing::error!(concert = %concert, id = %e.id, "unreadable hold event; acknowledged and skipped");
            }
            e.events
        }).flatten().collect();
        for event in &events {
            metrics::counter!("boxoffice_stream_events_total", "kind" => event.kind.status())
                .increment(1);
        }
        holds::pg::write_events(&ctx.pg, &events).await?;
        events::ack(&ctx.hot, concert, &ids).await?;
        metrics::histogram!("boxoffice_stream_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }
}
