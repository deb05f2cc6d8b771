//! Hold batching: a replica's concurrent holds of one schedule share one Redis call.
//!
//! Why: a hold is one script, but each call has a fixed price besides the script's work: the
//! client's framing, routing and reply handling, and Redis's read, dispatch and reply. At an
//! on-sale the same schedule takes hundreds of holds at once, so that price is paid once per
//! batch instead of once per hold.
//!
//! How: each hold is a `Job` on the replica's queue. A few loops ([`Batcher::run`]) each take
//! whatever is queued (up to [`MAX_BATCH`]), group it by schedule and by what it takes (seats,
//! or the places of one general-admission section), and send each group as one call: one
//! `hold_seats.lua` for every set of seats, or one `hold_ga.lua` with one `DECRBY` of the
//! section's counter ([`redis::hold_seats`], [`redis::hold_general`]). Nothing
//! waits for a batch to fill: a batch is what queued while the previous one was in Redis, so a
//! lone hold goes at once.
//!
//! The guarantees are each hold's own: Redis decides the holds of a group one after the other,
//! each seeing what the ones before it took, exactly as if they had come one by one in that
//! order, and each gets its own answer. Only a failure of the call itself (Redis unreachable)
//! answers every hold of its group with that error, which is what each would have got alone.

use std::collections::BTreeMap;

use futures::future::join_all;
use tokio::sync::{mpsc, oneshot, watch, Mutex};

use super::redis::{self, Placed, PlacesWanted, SeatsWanted, Terms};
use crate::{
    batching,
    ids::{ConcertId, HoldId, ScheduleId, SeatId, SectionId, UserId},
    redis::Hot,
    Dependency, Error,
};

/// The most holds one batch takes.
pub const MAX_BATCH: usize = 64;

/// How many batches one replica runs at once: one is gathered while another is in Redis.
pub const LOOPS: usize = 4;

/// What a hold takes.
pub enum Wanted {
    Seats(Vec<SeatId>),
    Places { section: SectionId, quantity: u32 },
}

/// A new hold, for [`Batcher::hold`].
pub struct Order {
    pub concert: ConcertId,
    pub schedule: ScheduleId,
    pub hold: HoldId,
    pub user: UserId,
    pub amount: i64,
    pub wanted: Wanted,
}

/// One hold waiting for its batch.
struct Job {
    order: Order,
    reply: oneshot::Sender<Placed>,
}

/// A replica's hold queue and the loops that drain it.
pub struct Batcher {
    jobs: mpsc::Sender<Job>,
    queue: Mutex<mpsc::Receiver<Job>>,
    /// Set by [`Batcher::close`]. The batcher owns a sender, so the queue never closes on its
    /// own.
    closed: watch::Sender<bool>,
}

impl Default for Batcher {
    fn default() -> Self {
        // Bounded by the requests in flight anyway (each waits for its answer); the bound is
        // there so that a stalled Redis turns into waiting senders, not memory.
        let (tx, rx) = mpsc::channel(4096);
        Self {
            jobs: tx,
            queue: Mutex::new(rx),
            closed: watch::Sender::new(false),
        }
    }
}

impl Batcher {
    /// Takes what `order` wants for its new hold, in the next batch: its expiry (epoch ms),
    /// `None` when the schedule's inventory is not loaded yet, or its refusal. Runs to the end
    /// even if the caller stops waiting: the batch is not the request's task.
    pub async fn hold(&self, order: Order) -> Placed {
        let (reply, answer) = oneshot::channel();
        let job = Job { order, reply };
        match self.jobs.send(job).await {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("hold batch dropped").into())),
            Err(_) => Err(Error::unavailable(
                Dependency::Redis,
                "the hold batcher has stopped",
            )),
        }
    }

    /// Shuts the queue: holds sent from now on are refused (`Unavailable`), the holds already
    /// queued are still sent and answered, and then every [`Batcher::run`] returns. For the
    /// end of a graceful shutdown, once no request is left to send one.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Drains the queue, one batch at a time, until [`Batcher::close`] and the queue is empty.
    /// A replica runs [`LOOPS`] of these.
    pub async fn run(&self, hot: &Hot, terms: Terms) {
        loop {
            // The lock is held while gathering only, so another loop gathers the next batch
            // while this one is in Redis.
            let closed = self.closed.subscribe();
            let Some(batch) = gather(&mut *self.queue.lock().await, closed).await else {
                return;
            };
            let size = batch.len();
            batching::run(
                "boxoffice_hold_batch_size",
                size,
                hold_batch(hot, terms, batch),
            )
            .await;
        }
    }
}

/// Waits for a first job, then takes what else is queued, up to [`MAX_BATCH`]. `None` once
/// `closed` and nothing is left queued.
async fn gather(
    jobs: &mut mpsc::Receiver<Job>,
    mut closed: watch::Receiver<bool>,
) -> Option<Vec<Job>> {
    let first = tokio::select! {
        // A queued job first: closing never drops one.
        biased;
        job = jobs.recv() => job,
        () = async { let _ = closed.wait_for(|closed| *closed).await; } => {
            // Refuses new jobs; `recv` still yields what is queued, then `None`.
            jobs.close();
            jobs.recv().await
        }
    };
    let mut batch = vec![first?];
    while batch.len() < MAX_BATCH {
        let Ok(job) = jobs.try_recv() else { break };
        batch.push(job);
    }
    Some(batch)
}

/// Sends each group of a batch (one schedule, and one general-admission section or seats) as
/// one call, the groups at once, and answers every job.
async fn hold_batch(hot: &Hot, terms: Terms, batch: Vec<Job>) {
    let mut groups: BTreeMap<(ScheduleId, Option<SectionId>), Vec<Job>> = BTreeMap::new();
    for job in batch {
        let section = match job.order.wanted {
            Wanted::Places { section, .. } => Some(section),
            Wanted::Seats(_) => None,
        };
        groups
            .entry((job.order.schedule, section))
            .or_default()
            .push(job);
    }
    join_all(
        groups
            .into_iter()
            .map(|((_, section), jobs)| hold_group(hot, terms, section, jobs)),
    )
    .await;
}

/// One call for `jobs`: general-admission holds of `section`, or (`None`) sets of seats.
async fn hold_group(hot: &Hot, terms: Terms, section: Option<SectionId>, jobs: Vec<Job>) {
    let (concert, schedule) = (jobs[0].order.concert, jobs[0].order.schedule);
    let orders = jobs.iter().map(|j| &j.order);
    let results = match section {
        None => {
            let wanted: Vec<SeatsWanted<'_>> = orders
                .filter_map(|o| match &o.wanted {
                    Wanted::Seats(seats) => Some(SeatsWanted {
                        hold: o.hold,
                        user: o.user,
                        amount: o.amount,
                        seats,
                    }),
                    Wanted::Places { .. } => None,
                })
                .collect();
            redis::hold_seats(hot, terms, concert, schedule, &wanted).await
        }
        Some(section) => {
            let wanted: Vec<PlacesWanted> = orders
                .filter_map(|o| match o.wanted {
                    Wanted::Places { quantity, .. } => Some(PlacesWanted {
                        hold: o.hold,
                        user: o.user,
                        quantity,
                        amount: o.amount,
                    }),
                    Wanted::Seats(_) => None,
                })
                .collect();
            redis::hold_general(hot, terms, concert, schedule, section, &wanted).await
        }
    };
    match results {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                // A caller that stopped waiting is not an error: its hold stands, and expires.
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e.report(), holds = jobs.len(), "a hold batch failed");
            for job in jobs {
                let _ = job.reply.send(Err(e.repeat()));
            }
        }
    }
}
